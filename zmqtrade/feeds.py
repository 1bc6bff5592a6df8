"""Price and news sources for the gateway: seeded and repeatable, or replayed from CSV.

A price feed hands out ticks in columns (:class:`Block`): symbol slots, bid, ask, last, size
and, for a CSV replayed at its own pace, each tick's offset from the start. Blocks are made
with numpy a few thousand ticks at a time and kept as Python lists, so taking the next ``k``
ticks is a slice: the gateway's cost per tick stays far below a microsecond, which is what
lets it feed the book at over a million ticks a second in batch mode.

CSV replay files follow the rule in :mod:`zmqtrade.csvfile`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from zmqtrade.csvfile import FeedError, load_csv
from zmqtrade.topology.schema import Feed

BLOCK = 4096
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
    """Hands out ticks in order; subclasses make blocks."""

    def __init__(self) -> None:
        self._block: Block | None = None
        self._i = 0
        self.exhausted = False

    def _next_block(self) -> Block | None:
        raise NotImplementedError

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

    def _next_block(self) -> Block:
        slots = (self._k + np.arange(BLOCK)) % self._n
        self._k += BLOCK
        steps = self._drift + self._vol * self._rng.standard_normal(BLOCK)
        prices = np.empty(BLOCK)
        for s in range(self._n):
            mask = slots == s
            path = self._prices[s] * np.exp(np.cumsum(steps[mask]))
            prices[mask] = path
            if len(path):
                self._prices[s] = path[-1]
        bid, ask, last = quotes_around(prices, self._spread)
        sizes = self._rng.integers(1, 20, BLOCK) * 100
        return Block(slots.tolist(), bid.tolist(), ask.tolist(), last.tolist(), sizes.tolist())


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

    def _next_block(self) -> Block | None:
        if self._passes and not self._loop:
            return None
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
