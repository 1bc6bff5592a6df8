"""Price and news sources for the gateway: seeded and repeatable, or replayed from CSV.

A price feed hands out ticks in columns (:class:`Block`): symbol slots, bid, ask, last, size
and, for a CSV replayed at its own pace, each tick's offset from the start. Blocks are made
with numpy a few thousand ticks at a time and kept as Python lists, so taking the next ``k``
ticks is a slice: the gateway's cost per tick stays far below a microsecond, which is what
lets it feed the book at over a million ticks a second in batch mode.

CSV replay files (:func:`load_csv`) follow one rule: a row that is well formed but for a symbol
the topology does not publish is skipped and counted; anything else that is wrong is an error
naming the file and line, and nothing starts (replaying part of a file without saying so would
mislead). In full:

- The file is UTF-8 (a byte-order mark is allowed). Line 1 is the header, whose first three
  columns are ``timestamp,symbol,price`` (any case, spaces around a name allowed). Further
  columns are ignored, in the header and in every row.
- Blank lines (nothing but spaces and commas) are ignored wherever they are, and not counted.
- Every other row is checked the same way, whatever its symbol. It is an error if
  - it has fewer than three columns;
  - its ``timestamp`` is not epoch seconds (an integer or decimal, read exactly to the
    nanosecond) or ISO 8601 (without a zone: local time), or lies outside 1970-01-01 to
    2262-04-11 (nanoseconds in a signed 64-bit integer), or is earlier than the row above
    (a replay by timestamps cannot go backwards; equal timestamps are fine);
  - its ``symbol`` is empty;
  - its ``price`` is not a number, is NaN or infinite, or is outside ``MIN_PRICE`` (0.01: quotes
    are rounded to cents, so less would quote 0) to ``MAX_PRICE`` (1e12: float64 still resolves a
    cent there). So zero and negative prices are errors.
- A row for a symbol the topology does not publish is then skipped and counted: the gateway
  reports the count as ``csv_rows_skipped``.
- A file with no rows left for the published symbols is an error (naming the symbols and how
  many rows were skipped).

Line numbers are the file's own, from 1 at the header; a row whose quoted field spans lines is
named by its first line. The same rule runs at ``--check`` (topology validation) and when the
gateway starts, so a bad file is refused before anything runs.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

import numpy as np

from zmqtrade.errors import ResourceError
from zmqtrade.topology import Feed

BLOCK = 4096
MIN_PRICE = 0.01
"""Smallest replay price: quotes are rounded to cents, so anything less would quote a zero bid."""
MAX_PRICE = 1e12
"""Largest replay price: float64 still resolves a cent (to 1/80) up to here."""
MAX_TS_NS = 2**63
"""Timestamps (ns since the epoch) must be in [0, MAX_TS_NS): what a signed 64-bit integer holds."""
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_TS_S = Decimal(MAX_TS_NS) / 1_000_000_000  # exact: 9223372036.854775808


class FeedError(ResourceError, ValueError):
    """A replay file that cannot be used; the message names the file and line."""


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


def _parse_ts(text: str) -> int:
    """A row timestamp in ns since the epoch: epoch seconds (int or decimal, exact) or ISO 8601.

    ValueError, with the reason, for anything else or anything outside [0, MAX_TS_NS).
    """
    try:
        sec = Decimal(text)  # exact: float(text) * 1e9 is off by up to a few hundred ns for today's dates
    except InvalidOperation:
        sec = None
    if sec is not None:
        if not sec.is_finite():
            raise ValueError("is not finite")
        if not 0 <= sec < _MAX_TS_S:  # checked first: 1e999999999 would overflow, or never end in int()
            raise ValueError("is outside 1970-01-01 .. 2262-04-11")
        return int(sec * 1_000_000_000)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is neither epoch seconds nor ISO 8601") from None
    try:
        stamp = stamp.astimezone(timezone.utc)  # a naive time is local time
    except (ValueError, OverflowError, OSError):  # year 1 in a zone east of UTC, and the like
        raise ValueError("is outside 1970-01-01 .. 2262-04-11") from None
    ns = (stamp - _EPOCH) // timedelta(microseconds=1) * 1000  # exact, unlike .timestamp()
    if not 0 <= ns < MAX_TS_NS:
        raise ValueError("is outside 1970-01-01 .. 2262-04-11")
    return ns


def _read_text(path: str | Path) -> str:
    """The file as text; a FeedError naming the line of the first byte that is not UTF-8."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise FeedError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise FeedError(f"{path}:{line}: not UTF-8 (byte {raw[exc.start]:#04x})") from None


def load_csv(path: str | Path, symbols: Sequence[str]) -> tuple[list[tuple[int, int, float]], int]:
    """Rows ``(ts_ns, slot, price)`` of a replay file, and how many were skipped for unknown symbols.

    The rule (what is skipped, what is an error) is in this module's docstring.
    """
    index = {s: i for i, s in enumerate(symbols)}
    rows: list[tuple[int, int, float]] = []
    skipped = 0
    text = _read_text(path)
    if not text:
        raise FeedError(f"{path}:1: empty file; the header timestamp,symbol,price is missing")
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    prev_ts, prev_line = 0, 0
    try:
        header = next(reader, None) or []
        if [h.strip().lower() for h in header[:3]] != ["timestamp", "symbol", "price"]:
            raise FeedError(f"{path}:1: the header must be timestamp,symbol,price")
        while True:
            line = reader.line_num + 1  # the record's first line
            row = next(reader, None)
            if row is None:
                break
            if all(not c.strip() for c in row):
                continue
            if len(row) < 3:
                raise FeedError(f"{path}:{line}: expected timestamp,symbol,price, got {len(row)} columns")
            ts_text, sym, price_text = (c.strip() for c in row[:3])
            try:
                ts = _parse_ts(ts_text)
            except ValueError as exc:
                raise FeedError(f"{path}:{line}: timestamp {ts_text[:40]!r} {exc}") from None
            if ts < prev_ts:
                raise FeedError(f"{path}:{line}: timestamp {ts_text[:40]!r} is earlier than line {prev_line}'s; "
                                f"rows must be in time order")
            prev_ts, prev_line = ts, line
            if not sym:
                raise FeedError(f"{path}:{line}: the symbol is empty")
            try:
                price = float(price_text)
            except ValueError:
                price = math.nan
            if not MIN_PRICE <= price <= MAX_PRICE:  # NaN fails every comparison
                raise FeedError(f"{path}:{line}: price {price_text[:40]!r} must be a finite number > 0, "
                                f"from {MIN_PRICE:g} to {MAX_PRICE:g}")
            slot = index.get(sym)
            if slot is None:
                skipped += 1
                continue
            rows.append((ts, slot, price))
    except csv.Error as exc:  # a field above csv's size limit, or (before Python 3.13) a NUL byte
        raise FeedError(f"{path}:{line}: not readable as CSV ({exc})") from None
    if not rows:
        raise FeedError(f"{path}: no rows for the published symbols ({', '.join(symbols)}); "
                        f"{skipped} row(s) for other symbols skipped")
    return rows, skipped


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
