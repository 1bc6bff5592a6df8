"""Price and news sources for the gateway: seeded and repeatable, or replayed from CSV.

A price feed yields ``(offset_ns, slot, bid, ask, last, size)``; ``offset_ns`` is None when
the gateway paces by its configured rate, or the tick's time since the first row when a CSV
replays at its own timestamps. Random numbers are drawn in numpy blocks and consumed as
Python floats: per-tick numpy scalar math would cost more than the tick itself.
"""
from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from zmqtrade.topology import Feed

BLOCK = 4096


class FeedError(ValueError):
    """A replay file that cannot be used; the message names the file and line."""


class PriceRow(NamedTuple):
    offset_ns: int | None
    slot: int
    bid: float
    ask: float
    last: float
    size: int


def quote_around(last: float, spread_bps: float) -> tuple[float, float, float]:
    """bid, ask, last rounded to cents with a spread of ``spread_bps`` (at least one cent)."""
    half = last * spread_bps / 20_000.0
    bid = round(last - half, 2)
    ask = round(last + half, 2)
    if ask <= bid:
        ask = bid + 0.01
    return bid, ask, round(last, 2)


class RandomWalk:
    """Geometric Brownian motion per symbol, symbols taking turns."""

    def __init__(self, symbols: Sequence[str], cfg: Feed) -> None:
        self._rng = np.random.default_rng(cfg.seed)
        self._n = len(symbols)
        self._prices = (cfg.start_price * np.exp(self._rng.normal(0.0, 0.5, self._n))).tolist()
        self._vol = cfg.volatility
        self._drift = -0.5 * cfg.volatility ** 2
        self._spread = cfg.spread_bps
        self._k = 0
        self._z: list[float] = []
        self._sizes: list[int] = []

    def __iter__(self) -> Iterator[PriceRow]:
        return self

    def __next__(self) -> PriceRow:
        if not self._z:
            self._z = self._rng.standard_normal(BLOCK).tolist()
            self._sizes = (self._rng.integers(1, 20, BLOCK) * 100).tolist()
        i = self._k % self._n
        self._k += 1
        p = self._prices[i] * math.exp(self._drift + self._vol * self._z.pop())
        self._prices[i] = p
        bid, ask, last = quote_around(p, self._spread)
        return PriceRow(None, i, bid, ask, last, self._sizes.pop())


def _parse_ts(text: str) -> int:
    """A row timestamp in ns: epoch seconds (int or float) or ISO 8601."""
    try:
        return int(float(text) * 1e9)
    except ValueError:
        return int(datetime.fromisoformat(text).timestamp() * 1e9)


def load_csv(path: str | Path, symbols: Sequence[str]) -> tuple[list[tuple[int, int, float]], int]:
    """Rows ``(ts_ns, slot, price)`` of a replay file, and how many were skipped.

    Rule: a row for a symbol the topology does not publish is skipped and counted; a row that
    is malformed (missing column, bad timestamp, price not a finite number > 0) is an error
    naming the file and line, because replaying half a file silently would mislead.
    """
    index = {s: i for i, s in enumerate(symbols)}
    rows: list[tuple[int, int, float]] = []
    skipped = 0
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise FeedError(f"{path}: cannot be read ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:3]] != ["timestamp", "symbol", "price"]:
            raise FeedError(f"{path}:1: the header must be timestamp,symbol,price")
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 3:
                raise FeedError(f"{path}:{line}: expected timestamp,symbol,price, got {len(row)} columns")
            ts_text, sym, price_text = (c.strip() for c in row[:3])
            try:
                ts = _parse_ts(ts_text)
            except ValueError:
                raise FeedError(f"{path}:{line}: timestamp {ts_text!r} is neither epoch seconds nor ISO 8601") from None
            try:
                price = float(price_text)
            except ValueError:
                price = math.nan
            if not math.isfinite(price) or price <= 0:
                raise FeedError(f"{path}:{line}: price {price_text!r} must be a finite number > 0")
            if sym not in index:
                skipped += 1
                continue
            rows.append((ts, index[sym], price))
    if not rows:
        raise FeedError(f"{path}: no rows for the published symbols ({', '.join(symbols)})")
    return rows, skipped


class CsvReplay:
    """Replays a file's rows, paced by rate or by the file's own timestamps."""

    def __init__(self, symbols: Sequence[str], cfg: Feed) -> None:
        assert cfg.path is not None
        self.rows, self.skipped = load_csv(cfg.path, symbols)
        self._by_ts = cfg.pace == "timestamps"
        self._speed = cfg.speed
        self._loop = cfg.loop
        self._spread = cfg.spread_bps
        self._sizes = (np.random.default_rng(cfg.seed).integers(1, 20, BLOCK) * 100).tolist()
        self._i = 0
        self._base_ns = 0  # offset added each time the file loops, so time keeps moving forward

    def __iter__(self) -> Iterator[PriceRow]:
        return self

    def __next__(self) -> PriceRow:
        if self._i == len(self.rows):
            if not self._loop:
                raise StopIteration
            first, last = self.rows[0][0], self.rows[-1][0]
            self._base_ns += int((last - first) / self._speed) + 1
            self._i = 0
        ts, slot, price = self.rows[self._i]
        offset = self._base_ns + int((ts - self.rows[0][0]) / self._speed) if self._by_ts else None
        bid, ask, last = quote_around(price, self._spread)
        size = self._sizes[self._i % BLOCK]
        self._i += 1
        return PriceRow(offset, slot, bid, ask, last, size)


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
