"""Price and news sources: repeatable random walks, CSV replay and its error rule."""
from __future__ import annotations

import pytest

import numpy as np

from zmqtrade import feeds
from zmqtrade.feeds import CsvReplay, FeedError, NewsFeed, RandomWalk, load_csv, quotes_around
from zmqtrade.topology import Feed

SYMS = ["AAA", "BBB"]


def ticks(feed, n: int, k: int = 7) -> list[tuple]:
    """The first ``n`` ticks of a feed as rows, taken ``k`` at a time (across block edges)."""
    rows: list[tuple] = []
    while len(rows) < n:
        b = feed.take(min(k, n - len(rows)))
        if b is None:
            break
        offs = b.offsets or [None] * len(b)
        rows += list(zip(b.slots, b.bids, b.asks, b.lasts, b.sizes, offs))
    return rows


def test_random_walk_is_repeatable_per_seed_and_round_robin():
    r1 = ticks(RandomWalk(SYMS, Feed(seed=3)), 9000)
    assert r1 == ticks(RandomWalk(SYMS, Feed(seed=3)), 9000, k=512)  # same seed, any slicing
    assert r1 != ticks(RandomWalk(SYMS, Feed(seed=4)), 9000)
    assert [r[0] for r in r1[:4]] == [0, 1, 0, 1]
    assert all(0 < bid < ask and bid <= last <= ask and size > 0 and off is None
               for _, bid, ask, last, size, off in r1)
    moves = [abs(b[3] / a[3] - 1) for a, b in zip(r1[0::2], r1[2::2])]  # symbol 0, tick to tick
    assert max(moves) < 0.01 and sum(moves) > 0


def reference_walk(symbols, cfg: Feed, blocks: int) -> list[tuple]:
    """The random walk written plainly, a symbol at a time: the stream a seed stands for."""
    rng = np.random.default_rng(cfg.seed)
    n = len(symbols)
    last = cfg.start_price * np.exp(rng.normal(0.0, 0.5, n))
    rows: list[tuple] = []
    for b in range(blocks):
        slots = (b * feeds.BLOCK + np.arange(feeds.BLOCK)) % n
        steps = -0.5 * cfg.volatility ** 2 + cfg.volatility * rng.standard_normal(feeds.BLOCK)
        prices = np.empty(feeds.BLOCK)
        for s in range(n):
            path = last[s] * np.exp(np.cumsum(steps[slots == s]))
            prices[slots == s], last[s] = path, path[-1]
        bid, ask, lasts = quotes_around(prices, cfg.spread_bps)
        sizes = rng.integers(1, 20, feeds.BLOCK) * 100
        rows += zip(slots.tolist(), bid.tolist(), ask.tolist(), lasts.tolist(), sizes.tolist(), [None] * feeds.BLOCK)
    return rows


@pytest.mark.parametrize("symbols", [SYMS, ["A", "B", "C", "D", "E", "F"], ["A", "B", "C", "D", "E"], ["A"]])
def test_blocks_made_ahead_in_stages_hold_the_seeds_stream(symbols):
    """Whether the gateway made a block ahead (a stage per prepare()) or when a tick needed it,
    a seed gives the same ticks: those of the walk written plainly."""
    cfg = Feed(seed=11)
    ahead, inline, stages = RandomWalk(symbols, cfg), RandomWalk(symbols, cfg), 0
    rows: list[tuple] = []
    while len(rows) < 3 * feeds.BLOCK:
        rows += ticks(ahead, 100)
        while ahead.prepare():
            stages += 1
    assert stages >= 3 * 2  # the blocks after the first were made ahead, in stages
    assert rows == ticks(inline, len(rows), k=100) == reference_walk(symbols, cfg, 4)[:len(rows)]


def test_quotes_keep_a_spread():
    bid, ask, last = quotes_around(np.array([100.0, 1.0]), 2.0)
    assert (bid[0], ask[0], last[0]) == (99.99, 100.01, 100.0)
    bid, ask, _ = quotes_around(np.array([1.0]), 0.0)
    assert ask[0] > bid[0]


def test_news_stays_in_range():
    feed = NewsFeed(3, seed=1)
    items = [feed.next() for _ in range(3000)]
    assert {i for i, _ in items} == {0, 1, 2}
    assert all(0 <= s <= 100 for _, s in items)
    assert len({s for _, s in items}) > 20


def write(tmp_path, text):
    p = tmp_path / "ticks.csv"
    p.write_text(text)
    return p


def test_csv_replay_by_timestamps_skips_unknown_symbols_and_loops(tmp_path):
    p = write(tmp_path, "timestamp,symbol,price\n0,AAA,10\n0.5,ZZZ,1\n1.0,BBB,20\n2,AAA,11\n")
    feed = CsvReplay(SYMS, Feed(kind="csv", path=str(p), pace="timestamps", speed=2.0, loop=True))
    assert feed.skipped == 1
    assert feed.count_due(600_000_000, 10) == 2  # rows at 0 and 0.5 s (1.0 s in the file / speed 2)
    rows = ticks(feed, 4, k=2)
    assert [(r[0], r[3], r[5]) for r in rows] == [
        (0, 10.0, 0), (1, 20.0, 500_000_000), (0, 11.0, 1_000_000_000), (0, 10.0, 1_000_000_001)]


def test_csv_replay_without_loop_ends(tmp_path):
    p = write(tmp_path, "timestamp,symbol,price\n2024-01-02T10:00:00,AAA,10\n2024-01-02T10:00:01,BBB,20\n")
    feed = CsvReplay(SYMS, Feed(kind="csv", path=str(p), loop=False))
    assert [(r[0], r[3], r[5]) for r in ticks(feed, 10)] == [(0, 10.0, None), (1, 20.0, None)]
    assert feed.take(1) is None and feed.exhausted


@pytest.mark.parametrize("body, where, what", [
    ("time,sym,px\n0,AAA,1\n", ":1:", "header"),
    ("timestamp,symbol,price\n0,AAA\n", ":2:", "got 2 columns"),
    ("timestamp,symbol,price\n0,AAA,1\nyesterday,AAA,2\n", ":3:", "timestamp 'yesterday'"),
    ("timestamp,symbol,price\n0,AAA,nan\n", ":2:", "finite number > 0"),
    ("timestamp,symbol,price\n0,AAA,-5\n", ":2:", "finite number > 0"),
    ("timestamp,symbol,price\n0,AAA,inf\n", ":2:", "finite number > 0"),
    ("timestamp,symbol,price\n0,ZZZ,5\n", "", "no rows for the published symbols"),
])
def test_csv_errors_name_file_and_line(tmp_path, body, where, what):
    p = write(tmp_path, body)
    with pytest.raises(FeedError) as exc:
        load_csv(p, SYMS)
    assert f"{p}{where}" in str(exc.value) and what in str(exc.value)
