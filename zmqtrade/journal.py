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
record anywhere else is not guessed at: opening fails, naming the line. Opening may start at a
record boundary a checkpoint vouched for (``start``): only the tail after it is read.
"""
from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, NamedTuple

import msgspec

from zmqtrade.errors import ResourceError
from zmqtrade.wire import Order

FILENAME = "journal.jsonl"
FsyncPolicy = Literal["order", "batch", "off"]


class JournalError(ResourceError):
    """A journal that cannot be trusted to rebuild from."""


class JournalWriteError(ResourceError):
    """A commit the journal could not take (disk full, I/O error): its orders must not be acked."""


class Position(NamedTuple):
    """A record boundary: the bytes and records before it, and the record that ends there."""
    size: int = 0
    records: int = 0
    last_line: str = ""


Replay = Callable[[dict[str, Any]], None]
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 8192
"""Records replayed between calls of a ``progress`` callback (a multiple of ``MARK_EVERY``)."""
MARK_EVERY = 64
"""Records between two boundaries kept for :meth:`Journal.back` (or a commit more): how far
before the exact one it may answer."""


class Journal:
    """An append-only journal; opening it recovers it, handing each complete record to ``replay``
    one at a time (a long run's journal is never held in memory whole).

    Reading begins at ``start``, a record boundary (a checkpoint's, already checked against the
    file). ``progress(bytes read, bytes in the file)`` is called every PROGRESS_EVERY records,
    so a long replay can say how far it is. Afterwards ``size``, ``records`` and ``last_line``
    (newline included) describe the journal as written so far: :attr:`position`.

    With ``window`` set, it keeps a record boundary every ``MARK_EVERY`` records over the last
    ``window`` records, read and written, so :meth:`back` answers at once (a checkpoint's filter
    window); counted back by reading the file, that read 15-20 MB a second at 10-50k orders/s
    on the order path's CPU and held up its orders by up to 50 ms.
    """

    def __init__(self, path: str | Path, fsync: FsyncPolicy = "off", replay: Replay | None = None,
                 start: Position = Position(), progress: Progress | None = None, window: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.size, self.records, last_line = start
        self._last = last_line.encode()
        self.window = window
        self._mark_sizes: deque[int] = deque([self.size])  # oldest first; the records before each, below
        self._mark_records: deque[int] = deque([self.records])
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self.recovered, self.torn_bytes = self._recover(replay or (lambda rec: None), progress)
        except BaseException:
            self.close()
            raise

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def last_line(self) -> str:
        """The last complete record, newline included ("" when there is none)."""
        return self._last.decode()

    @property
    def position(self) -> Position:
        """Where the journal ends now."""
        return Position(self.size, self.records, self.last_line)

    def _recover(self, replay: Replay, progress: Progress | None) -> tuple[int, int]:
        """Replay the complete records after ``size`` and cut a torn tail off the file;
        (records replayed, bytes cut)."""
        good = self.size  # bytes of complete lines so far
        records = 0
        torn_at = 0       # line number (from the start of reading) of an unreadable line, which must be the last
        last = b""
        total = os.fstat(self._fd).st_size
        window = self.window
        with open(self.path, "rb") as fh:
            fh.seek(good)
            for n, line in enumerate(fh, 1):
                if torn_at:
                    raise JournalError(f"{self.path}: line {self.records + torn_at} is not a complete record; "
                                       f"the journal is damaged before its end, so it is not replayed "
                                       f"(move it aside to start afresh)")
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
                last = line
                if records % MARK_EVERY == 0:  # one test a line: PROGRESS_EVERY is a multiple
                    if window:
                        self._mark(good, self.records + records)
                    if progress is not None and records % PROGRESS_EVERY == 0:
                        progress(good, total)
            size = fh.tell()
        if good < size:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self.size = good
        self.records += records
        if last:
            self._last = last
        return records, size - good

    def append_lines(self, lines: list[bytes]) -> None:
        """Append complete records (from :func:`record`) with one write; flushed to disk per policy."""
        data = b"".join(lines)
        size = len(data)
        try:
            while data:  # a regular file takes it all at once; loop only for the pathological case
                data = data[os.write(self._fd, data):]
            if self.fsync != "off":
                os.fdatasync(self._fd)
        except OSError as exc:  # a full disk, a quota, an I/O error: none of these fills may be acked
            self._cut_back()
            raise JournalWriteError(f"{self.path}: cannot append to the journal: {exc.strerror or exc}; "
                                    f"free space in {self.path.parent} (the orders of this commit were not acked)") from exc
        self.size += size
        self.records += len(lines)
        self._last = lines[-1]
        if self.window and self.records - self._mark_records[-1] >= MARK_EVERY:
            self._mark(self.size, self.records)

    def _mark(self, size: int, records: int) -> None:
        sizes, recs = self._mark_sizes, self._mark_records
        sizes.append(size)
        recs.append(records)
        while len(recs) > 1 and records - recs[1] >= self.window:  # the oldest is not needed to reach back
            sizes.popleft()
            recs.popleft()

    def back(self, records: int) -> Position:
        """A record boundary ``records`` records before the end, or up to ``MARK_EVERY`` more
        (for ``records`` up to ``window``), or where this journal was opened from if that is
        later. Only its size and count: the record that ends there is not kept."""
        target = self.records - records
        recs = self._mark_records
        i = bisect_right(recs, target) - 1 if target > recs[0] else 0
        return Position(self._mark_sizes[i], recs[i])

    def _cut_back(self) -> None:
        """Cut a partly written commit off again, so the next record starts on a clean line."""
        try:
            os.ftruncate(self._fd, self.size)
        except OSError:
            pass  # then reopening cuts it: a torn last record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _Record(msgspec.Struct, omit_defaults=True):
    """A journal line's fields, in the line's order; ``fee`` only when one was charged."""

    order_id: int
    clordid: int
    strategy: str
    symbol: str
    side: str
    qty: int
    limit: float
    price: float
    decide_ts: int
    recv_ts: int
    fee: float | None = None  # None is omitted (a zero float might not be: msgspec omits by identity)


_encode = msgspec.json.Encoder().encode


def record(order_id: int, o: Order, fill: float, recv_ts: int, fee: float = 0.0) -> bytes:
    """One journal line, encoded in C (msgspec): a quarter less time than the f-string it
    replaced, whose cache of price texts churned at 10k orders a second (om_process -10 us
    there). ``fee`` is written only when one was charged (``ordermanager.fees``); an integer
    limit stays an integer, and strings are escaped whatever they hold."""
    return _encode(_Record(order_id, o.clordid, o.strategy, o.symbol, o.side, o.qty, o.price, fill, o.decide_ts,
                           recv_ts, fee or None)) + b"\n"


def as_order(rec: dict[str, Any]) -> Order:
    """A record's order, as the order manager decided it (for rebuilding positions)."""
    return Order(rec["clordid"], rec["strategy"], rec["symbol"], rec["side"], rec["qty"], rec["limit"], 0, 0, 0, 0)


def count(path: str | Path) -> int:
    """How many complete records a journal holds, without parsing them (a torn last one is not
    counted): a 10M-record journal is counted in about a second, parsed in a minute."""
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


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
