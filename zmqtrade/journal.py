"""The order journal: one JSON line per filled order, appended before the ack is sent.

Records are written with ``os.write`` on an ``O_APPEND`` descriptor, one commit at a time:
once the call returns the lines are in the kernel (the page cache) and survive a SIGKILL of any
process, the order manager's and the launcher's included. ``fsync`` (the topology's
``ordermanager.fsync``) decides whether they also survive a power cut: ``off`` (the default, as
Kafka's, Chronicle Queue's and QuickFIX/J's file store's) leaves the flush to the kernel;
``batch`` and ``order`` flush them to disk (``fdatasync``) before any of their acks go out.

Opening a journal recovers it: a torn last record (the writer died mid-line, or a power cut
left a partial or zero-filled tail) is cut off, so new records never glue onto it; the
complete records are returned for the order manager to rebuild its state from. A damaged
record anywhere else is not guessed at: opening fails, naming the line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from zmqtrade.errors import ResourceError
from zmqtrade.wire import Order

FILENAME = "journal.jsonl"
FsyncPolicy = Literal["order", "batch", "off"]


class JournalError(ResourceError):
    """A journal that cannot be trusted to rebuild from."""


class Journal:
    """An append-only journal; opening it recovers it, handing each complete record to ``replay``
    one at a time (a long run's journal is never held in memory whole)."""

    def __init__(self, path: str | Path, fsync: FsyncPolicy = "off",
                 replay: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self.recovered, self.torn_bytes = self._recover(replay or (lambda rec: None))
        except BaseException:
            self.close()
            raise

    def _recover(self, replay: Callable[[dict[str, Any]], None]) -> tuple[int, int]:
        """Replay the complete records and cut a torn tail off the file; (records, bytes cut)."""
        good = records = 0  # bytes and records of complete lines so far
        torn_at = 0         # line number of an unreadable line, which must be the last
        with open(self.path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                if torn_at:
                    raise JournalError(f"{self.path}: line {torn_at} is not a complete record; the journal is "
                                       f"damaged before its end, so it is not replayed (move it aside to start afresh)")
                if not line.endswith(b"\n"):
                    torn_at = n  # what follows the last newline is torn by definition
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    torn_at = n  # torn inside (a power cut can leave zeros before a newline), if last
                    continue
                replay(rec)
                records += 1
                good += len(line)
            size = fh.tell()
        if good < size:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        return records, size - good

    def append_lines(self, lines: list[str]) -> None:
        """Append complete records (from :func:`record`) with one write; flushed to disk per policy."""
        data = "".join(lines).encode()
        while data:  # a regular file takes it all at once; loop only for the pathological case
            data = data[os.write(self._fd, data):]
        if self.fsync != "off":
            os.fdatasync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def record(order_id: int, o: Order, fill: float, recv_ts: int) -> str:
    """One journal line. Formatted by hand, about 4x faster than json.dumps: every string in
    it (strategy, symbol, side) was validated against the topology's name rules first, and
    floats are finite, so it is valid JSON without escaping."""
    return (f'{{"order_id":{order_id},"clordid":{o.clordid},"strategy":"{o.strategy}","symbol":"{o.symbol}",'
            f'"side":"{o.side}","qty":{o.qty},"limit":{_number(o.price)},"price":{_number(fill)},'
            f'"decide_ts":{o.decide_ts},"recv_ts":{recv_ts}}}\n')


_TEXT: dict[float, str] = {}


def _number(x: float) -> str:
    """repr of a price, remembered: prices repeat (quotes are in cents) and a float's repr costs
    a shortest-round-trip conversion, the journal line's dearest part. Exact as repr itself."""
    if type(x) is not float:
        return repr(x)
    text = _TEXT.get(x)
    if text is None:
        if len(_TEXT) >= 4096:
            _TEXT.clear()
        text = _TEXT[x] = repr(x)
    return text


def as_order(rec: dict[str, Any]) -> Order:
    """A record's order, as the order manager decided it (for rebuilding positions)."""
    return Order(rec["clordid"], rec["strategy"], rec["symbol"], rec["side"], rec["qty"], rec["limit"], 0, 0, 0, 0)


def read(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete record of a journal file, in order (a torn last one is left out)."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # torn last record: the writer died mid-line
            try:
                yield json.loads(line)
            except ValueError:
                if fh.read(1):
                    raise JournalError(f"{path}: a damaged record before the end") from None
                return
