"""Price and news sources for the gateway: seeded and repeatable, or replayed from CSV.

A price feed hands out ticks in columns (:class:`Block`): symbol slots, bid, ask, last, size
and, for a CSV replayed at its own pace, each tick's offset from the start. Blocks are made
with numpy a few thousand ticks at a time and kept as Python lists, so taking the next ``k``
ticks is a slice: the gateway's cost per tick stays far below a microsecond, which is what
lets it feed the book at over a million ticks a second in batch mode.

Making a block costs ~0.5 ms (over 1 ms on a vCPU that was idle), and a tick that had to wait
for one was that much late: every 4 s at 1k ticks/s, every 0.4 s at 10k. So the gateway makes
the next block ahead, one stage of tens of microseconds at a time between ticks
(:meth:`PriceFeed.prepare`), once the current one is half used; a block still unfinished when
it is needed is finished then. Stages and the inline path draw from the seeded generator in
the same order, so a seed gives the same ticks however the block was made.

CSV replay files follow the rule in :mod:`zmqtrade.csvfile`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Sequence

import numpy as np

from zmqtrade.csvfile import FeedError, load_csv
from zmqtrade.topology.schema import Feed

BLOCK = 4096
Making = Generator[None, None, "Block | None"]
"""A block being made: a generator that yields between its stages and returns the block (None: the feed has ended)."""
_NONE_AHEAD = object()


@dataclass
class Block:
    """Ticks in columns; ``offsets`` is None when the gateway paces by rate."""

    slots: list[int]
    bids: list[float]
    asks: list[float]
    lasts: list[float]
    sizes: list[int]
    offsets: list[int] | None = None

    def __len__(self) -> int:
        return len(self.slots)


def quotes_around(prices: np.ndarray, spread_bps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bid, ask, last rounded to cents with a spread of ``spread_bps`` (at least one cent)."""
    half = prices * (spread_bps / 20_000.0)
    bid = np.round(prices - half, 2)
    ask = np.maximum(np.round(prices + half, 2), bid + 0.01)
    return bid, ask, np.round(prices, 2)


class PriceFeed:
    """Hands out ticks in order; subclasses make blocks (:meth:`_make`)."""

    def __init__(self) -> None:
        self._block: Block | None = None
        self._i = 0
        self.exhausted = False
        self._making: Making | None = None  # the next block, part made by prepare()
        self._ahead: object = _NONE_AHEAD   # the next block, made: a Block, or None at the feed's end

    def _make(self) -> Making:
        raise NotImplementedError

    def prepare(self) -> bool:
        """One stage of making the next block, once the current one is half used; whether there
        was one. The gateway calls it between ticks, so no tick waits for a block to be made."""
        b = self._block
        if self.exhausted or self._ahead is not _NONE_AHEAD or (b is not None and self._i < len(b) // 2):
            return False
        if self._making is None:
            self._making = self._make()
        try:
            next(self._making)
        except StopIteration as done:
            self._ahead, self._making = done.value, None
        return True

    def _next_block(self) -> Block | None:
        """The next block: made ahead, or finished (or made whole) now."""
        if self._ahead is not _NONE_AHEAD:
            block, self._ahead = self._ahead, _NONE_AHEAD
            return block  # type: ignore[return-value]
        making, self._making = self._making or self._make(), None
        try:
            while True:
                next(making)
        except StopIteration as done:
            return done.value

    def _ensure(self) -> Block | None:
        if self._block is None or self._i >= len(self._block):
            self._block = None if self.exhausted else self._next_block()
            self._i = 0
            if self._block is None:
                self.exhausted = True
        return self._block

    def next_offset(self) -> int | None:
        """The next tick's offset (timestamp pacing), None when paced by rate or exhausted."""
        b = self._ensure()
        return b.offsets[self._i] if b is not None and b.offsets is not None else None

    def offset_ahead(self, n: int) -> int:
        """The offset of the ``n``-th next tick (1: the next one), timestamp pacing, within the
        block :meth:`count_due` counted in."""
        b = self._ensure()
        assert b is not None and b.offsets is not None
        return b.offsets[self._i + n - 1]

    def take(self, k: int) -> Block | None:
        """Up to ``k`` next ticks (fewer at a block's end), or None when the feed is done."""
        b = self._ensure()
        if b is None:
            return None
        i, j = self._i, min(self._i + k, len(b))
        self._i = j
        return Block(b.slots[i:j], b.bids[i:j], b.asks[i:j], b.lasts[i:j], b.sizes[i:j],
                     b.offsets[i:j] if b.offsets is not None else None)

    def take_one(self) -> tuple[int, float, float, float, int, int | None] | None:
        """The next tick as (slot, bid, ask, last, size, offset or None), without making a Block:
        the common case at low rates, where one tick is due at a time."""
        b = self._ensure()
        if b is None:
            return None
        i = self._i
        self._i = i + 1
        return (b.slots[i], b.bids[i], b.asks[i], b.lasts[i], b.sizes[i],
                b.offsets[i] if b.offsets is not None else None)

    def count_due(self, offset_limit: int, k_max: int) -> int:
        """How many of the next ticks have offsets <= ``offset_limit`` (timestamp pacing)."""
        b = self._ensure()
        if b is None or b.offsets is None:
            return 0
        n = 0
        offs, i = b.offsets, self._i
        while n < k_max and i + n < len(offs) and offs[i + n] <= offset_limit:
            n += 1
        return n


class RandomWalk(PriceFeed):
    """Geometric Brownian motion per symbol, symbols taking turns."""

    def __init__(self, symbols: Sequence[str], cfg: Feed) -> None:
        super().__init__()
        self._rng = np.random.default_rng(cfg.seed)
        self._n = len(symbols)
        self._prices = cfg.start_price * np.exp(self._rng.normal(0.0, 0.5, self._n))
        self._vol = cfg.volatility
        self._drift = -0.5 * cfg.volatility ** 2
        self._spread = cfg.spread_bps
        self._k = 0

    def _make(self) -> Making:
        n, k = self._n, self._k
        self._k += BLOCK
        slots = (k + np.arange(BLOCK)) % n
        steps = self._drift + self._vol * self._rng.standard_normal(BLOCK)
        # Each symbol's walk is the running sum of its own steps: with the ticks laid out in rows
        # of n (padded with zero steps to start at slot 0), a symbol is a column.
        lead = k % n
        grid = np.zeros(-(-(lead + BLOCK) // n) * n)
        grid[lead:lead + BLOCK] = steps
        walks = self._prices * np.exp(np.cumsum(grid.reshape(-1, n), axis=0))
        self._prices = walks[-1].copy()  # a padded tail holds each symbol's last price unchanged
        prices = walks.reshape(-1)[lead:lead + BLOCK]
        yield
        bid, ask, last = quotes_around(prices, self._spread)
        sizes = self._rng.integers(1, 20, BLOCK) * 100
        yield
        columns = []
        for column in (slots, bid, ask, last):
            columns.append(column.tolist())
            yield
        return Block(*columns, sizes.tolist())


class CsvReplay(PriceFeed):
    """Replays a file's rows, paced by rate or by the file's own timestamps; one block per pass."""

    def __init__(self, symbols: Sequence[str], cfg: Feed) -> None:
        super().__init__()
        assert cfg.path is not None
        rows, self.skipped = load_csv(cfg.path, symbols)
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        bid, ask, last = quotes_around(np.array([r[2] for r in rows]), cfg.spread_bps)
        sizes = np.random.default_rng(cfg.seed).integers(1, 20, len(rows)) * 100
        self._pass = Block([r[1] for r in rows], bid.tolist(), ask.tolist(), last.tolist(), sizes.tolist())
        span = (int(ts[-1]) - int(ts[0])) / cfg.speed
        if span >= 2**62:  # offsets must stay in int64, with room for looped passes
            raise FeedError(f"{cfg.path}: at speed {cfg.speed:g} one pass would last {span / 3.15e16:.3g} years")
        self._rel = ((ts - ts[0]) / cfg.speed).astype(np.int64)
        self._span = int(self._rel[-1]) + 1  # a looped pass starts this much later than the one before
        self._by_ts = cfg.pace == "timestamps"
        self._loop = cfg.loop
        self._passes = 0

    def _make(self) -> Making:
        if self._passes and not self._loop:
            return None
        yield  # a pass's offsets (a long file's) are the cost: made at the next stage
        p = self._pass
        offsets = (self._rel + self._passes * self._span).tolist() if self._by_ts else None
        self._passes += 1
        return Block(p.slots, p.bids, p.asks, p.lasts, p.sizes, offsets)


def price_feed(symbols: Sequence[str], cfg: Feed) -> RandomWalk | CsvReplay:
    return CsvReplay(symbols, cfg) if cfg.kind == "csv" else RandomWalk(symbols, cfg)


class NewsFeed:
    """Mean-reverting sentiment (0-100) per symbol, symbols taking turns."""

    def __init__(self, n_symbols: int, seed: int) -> None:
        self._rng = np.random.default_rng(seed + 7919)
        self._n = n_symbols
        self._level = [50.0] * n_symbols
        self._k = 0
        self._z: list[float] = []

    def next(self) -> tuple[int, int]:
        if not self._z:
            self._z = self._rng.standard_normal(BLOCK).tolist()
        i = self._k % self._n
        self._k += 1
        level = 50.0 + 0.8 * (self._level[i] - 50.0) + 15.0 * self._z.pop()
        self._level[i] = min(100.0, max(0.0, level))
        return i, int(round(self._level[i]))
