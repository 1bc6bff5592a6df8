"""CSV replay files: the one rule a file is read by, at ``--check`` and when the gateway starts.

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
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Sequence

from zmqtrade.errors import ResourceError

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
