"""Price and news sources: repeatable random walks, CSV replay and its error rule."""
from __future__ import annotations

import pytest

from zmqtrade.feeds import CsvReplay, FeedError, NewsFeed, RandomWalk, load_csv, quote_around
from zmqtrade.topology import Feed

SYMS = ["AAA", "BBB"]


def test_random_walk_is_repeatable_per_seed_and_round_robin():
    a = [next(RandomWalk(SYMS, Feed(seed=3))) for _ in range(1)]
    w1, w2, w3 = RandomWalk(SYMS, Feed(seed=3)), RandomWalk(SYMS, Feed(seed=3)), RandomWalk(SYMS, Feed(seed=4))
    r1 = [next(w1) for _ in range(5000)]
    assert r1 == [next(w2) for _ in range(5000)]
    assert r1 != [next(w3) for _ in range(5000)]
    assert [r.slot for r in r1[:4]] == [0, 1, 0, 1] and a[0] == r1[0]
    assert all(0 < r.bid < r.ask and r.offset_ns is None and r.size > 0 for r in r1)


def test_quote_around_keeps_a_spread():
    assert quote_around(100.0, 2.0) == (99.99, 100.01, 100.0)
    bid, ask, _ = quote_around(1.0, 0.0)
    assert ask > bid


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
    rows = [next(feed) for _ in range(4)]
    assert [(r.slot, r.last, r.offset_ns) for r in rows] == [
        (0, 10.0, 0), (1, 20.0, 500_000_000), (0, 11.0, 1_000_000_000), (0, 10.0, 1_000_000_001)]


def test_csv_replay_without_loop_ends(tmp_path):
    p = write(tmp_path, "timestamp,symbol,price\n2024-01-02T10:00:00,AAA,10\n2024-01-02T10:00:01,BBB,20\n")
    feed = CsvReplay(SYMS, Feed(kind="csv", path=str(p), loop=False))
    assert [r.offset_ns for r in feed] == [None, None]


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
