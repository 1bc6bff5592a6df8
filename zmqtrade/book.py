"""The shared-memory price book: one writer, many readers, no locks.

Layout (all little-endian 8-byte words, every slot 64-byte aligned)::

    header   (64 B)  magic, layout version, symbol count, slot words, writer pid,
                     heartbeat ns, creator pid, reserved
    symbols  (16 B each, padded to 64)  NUL-padded ASCII names, slot i = symbol i
    slots    (64 B each)  seq, bid, ask, last, size, tick seq, tick ts ns, write ts ns

Each slot is guarded by a seqlock: the writer makes ``seq`` odd, writes the fields, then makes
it even again; a reader retries while ``seq`` is odd or changed under it. The number of
updates to a slot is ``seq // 2``. Words are accessed through ``memoryview.cast`` views,
which store an aligned 8-byte word in one instruction (``struct.pack_into`` writes byte by
byte and tears). This is correct on x86-64, whose stores and loads stay in order; on other
architectures the seqlock would need fences Python cannot issue, so opening a book there is
refused.
"""
from __future__ import annotations

import mmap
import os
import platform
import time
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from zmqtrade import clock
from zmqtrade.errors import ResourceError

MAGIC = 0x5A4D51424F4F4B31  # "ZMQBOOK1"
LAYOUT_VERSION = 1
HEADER_WORDS = 8
SLOT_WORDS = 8
SYMBOL_BYTES = 16
PREFIX = "zmqtrade_"
"""Every segment zmqtrade creates is named PREFIX<creator pid>_<tag>, so stale ones can be found."""

SHM_DIR = Path("/dev/shm")
READ_DEADLINE_S = 0.1
"""A slot mid-write for longer has a writer that stopped or died inside the write: the read gives
up (None) rather than stall the reader's event loop, and the writer's liveness says why."""
"""A slot mid-write for longer than this means its writer died or hangs mid-write."""
_new = tuple.__new__
_BUSY = object()

# header word indexes
H_MAGIC, H_VERSION, H_NSYM, H_SLOT_WORDS, H_WRITER_PID, H_HEARTBEAT, H_CREATOR_PID = range(7)
# slot word offsets
S_SEQ, S_BID, S_ASK, S_LAST, S_SIZE, S_TICK_SEQ, S_TICK_TS, S_WRITE_TS = range(SLOT_WORDS)

SLOT_FIELDS = [
    ("seq", "<u8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"),
    ("size", "<u8"), ("tick_seq", "<u8"), ("tick_ts", "<u8"), ("write_ts", "<u8"),
]
"""numpy dtype of a slot, for :meth:`Book.snapshot` (numpy is imported only there)."""


class BookError(ResourceError):
    """The segment is missing, of another layout, or unsafe on this machine."""


class Quote(NamedTuple):
    """One consistent snapshot of a slot."""

    slot: int
    symbol: str
    bid: float
    ask: float
    last: float
    size: int
    tick_seq: int
    tick_ts: int
    write_ts: int
    updates: int


def _check_arch() -> None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise BookError(f"the seqlock book relies on x86-64 memory ordering; {platform.machine()} is not supported")


def _pad64(n: int) -> int:
    return (n + 63) // 64 * 64


def segment_name(tag: str) -> str:
    return f"{PREFIX}{os.getpid()}_{tag}"


def _size(nsym: int) -> tuple[int, int]:
    slots_off = HEADER_WORDS * 8 + _pad64(nsym * SYMBOL_BYTES)
    return slots_off, slots_off + nsym * SLOT_WORDS * 8


class Book:
    """A mapped book segment; ``create`` makes one, ``attach`` opens an existing one."""

    def __init__(self, name: str, shm: shared_memory.SharedMemory | None = None,
                 mapping: mmap.mmap | None = None) -> None:
        self._shm = shm
        self._mmap = mapping
        self.owner = shm is not None
        self.name = name
        buf = self._buf = shm.buf if shm is not None else memoryview(mapping)  # type: ignore[arg-type]
        self._u = buf.cast("Q")
        self._f = buf.cast("d")
        u = self._u
        if u[H_MAGIC] != MAGIC or u[H_VERSION] != LAYOUT_VERSION or u[H_SLOT_WORDS] != SLOT_WORDS:
            self._release()
            raise BookError(f"segment {name!r} is not a zmqtrade book of layout {LAYOUT_VERSION}")
        nsym = u[H_NSYM]
        raw = bytes(buf[HEADER_WORDS * 8: HEADER_WORDS * 8 + nsym * SYMBOL_BYTES])
        self.symbols: tuple[str, ...] = tuple(
            raw[i * SYMBOL_BYTES:(i + 1) * SYMBOL_BYTES].rstrip(b"\0").decode() for i in range(nsym))
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}
        self._base = _size(nsym)[0] // 8  # first slot, in words

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, name: str, symbols: Sequence[str]) -> "Book":
        """Create and initialise a segment (mode 0600, zero-filled slots)."""
        _check_arch()
        slots_off, size = _size(len(symbols))
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        u = shm.buf.cast("Q")
        u[H_VERSION] = LAYOUT_VERSION
        u[H_NSYM] = len(symbols)
        u[H_SLOT_WORDS] = SLOT_WORDS
        u[H_CREATOR_PID] = os.getpid()
        for i, s in enumerate(symbols):
            enc = s.encode()
            off = HEADER_WORDS * 8 + i * SYMBOL_BYTES
            shm.buf[off:off + len(enc)] = enc
        u[H_MAGIC] = MAGIC  # last: a reader never sees a half-made header as valid
        u.release()
        return cls(shm.name, shm=shm)

    @classmethod
    def attach(cls, name: str, timeout: float = 0.0) -> "Book":
        """Open an existing segment, waiting up to ``timeout`` s for it to appear and be made."""
        _check_arch()
        deadline = time.monotonic() + timeout
        while True:
            try:
                return cls._map(name)
            except (FileNotFoundError, ValueError, BookError) as exc:  # absent, not sized, or magic not set yet
                if time.monotonic() >= deadline:
                    if isinstance(exc, FileNotFoundError):
                        raise BookError(f"no book segment {name!r} in /dev/shm; is the orderbook running?") from None
                    raise BookError(f"segment {name!r} is not a zmqtrade book: {exc}") from None
                time.sleep(0.01)  # polling for the creator to finish, bounded by the deadline

    @classmethod
    def _map(cls, name: str) -> "Book":
        # Mapped directly rather than through SharedMemory: on Python < 3.13 that registers the
        # segment with a resource tracker, which starts one more process per attacher and would
        # unlink the segment when the attacher exits (bpo-38119). The creator owns the lifetime.
        fd = os.open(SHM_DIR / name, os.O_RDWR)
        try:
            mapping = mmap.mmap(fd, os.fstat(fd).st_size)  # ValueError while the creator has not sized it
        finally:
            os.close(fd)
        return cls(name, mapping=mapping)

    def _release(self) -> None:
        for view in ("_u", "_f", "_buf"):
            v = getattr(self, view, None)
            if v is not None and v is not getattr(self._shm, "buf", None):
                v.release()
        if self._shm is not None:
            self._shm.close()
        if self._mmap is not None:
            self._mmap.close()

    def close(self) -> None:
        """Unmap; the owner also unlinks the segment, and the doorbell pipes made beside it
        (:mod:`zmqtrade.bell`) by readers that could not remove theirs (killed)."""
        self._release()
        if self._shm is not None:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
            for path in SHM_DIR.glob(f"{self.name}.*.bell"):
                path.unlink(missing_ok=True)

    def __enter__(self) -> "Book":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ header
    @property
    def writer_pid(self) -> int:
        return self._u[H_WRITER_PID]

    @property
    def heartbeat_ns(self) -> int:
        return self._u[H_HEARTBEAT]

    def claim_writer(self) -> None:
        """Become the book's writer. A slot a dead writer left mid-write (killed between the two
        seq stores) is reset to never written: its fields may be torn, and until the next tick
        readers get None for it instead of waiting on a write that will never finish."""
        u = self._u
        for slot in range(len(self.symbols)):
            b = self._base + slot * SLOT_WORDS
            if u[b] & 1:
                u[b] = 0
        u[H_WRITER_PID] = os.getpid()
        self.heartbeat()

    def writer_problem(self, max_age_ns: int, now_ns: int) -> str | None:
        """Why the book must not be traded on (no writer, writer dead, heartbeat too old), or None."""
        pid = self.writer_pid
        if not pid:
            return "no writer has claimed the book"
        age = now_ns - self.heartbeat_ns
        if age > max_age_ns:
            return f"writer (pid {pid}) last heartbeat {age / 1e9:.2f} s ago"
        if not _alive(pid):
            return f"writer (pid {pid}) is dead"
        return None

    def heartbeat(self, now_ns: int | None = None) -> None:
        self._u[H_HEARTBEAT] = now_ns if now_ns is not None else clock.now_ns()

    # ------------------------------------------------------------------ slots
    def write(self, slot: int, bid: float, ask: float, last: float, size: int,
              tick_seq: int, tick_ts: int, write_ts: int) -> None:
        """Publish one slot; only the writer process may call this. A value the slot cannot hold
        (a negative size) raises, and the slot may then hold part of this write; it is never left
        marked as being written, which would make every reader fail from then on."""
        u, f = self._u, self._f
        b = self._base + slot * SLOT_WORDS
        seq = u[b]
        u[b] = seq + 1  # odd: write in progress
        try:
            f[b + S_BID] = bid
            f[b + S_ASK] = ask
            f[b + S_LAST] = last
            u[b + S_SIZE] = size
            u[b + S_TICK_SEQ] = tick_seq
            u[b + S_TICK_TS] = tick_ts
            u[b + S_WRITE_TS] = write_ts
        finally:
            u[b] = seq + 2  # even: consistent again (after a bad value too: never torn for good)
        u[H_HEARTBEAT] = write_ts

    def mids(self) -> dict[str, float | None]:
        """Each symbol's mid, (bid + ask) / 2, now (None before its first quote): what an open
        position is marked at."""
        out: dict[str, float | None] = {}
        for sym, slot in self.index.items():
            q = self.read(slot)
            out[sym] = None if q is None else round((q.bid + q.ask) / 2, 6)
        return out

    def read(self, slot: int) -> Quote | None:
        """A consistent snapshot of ``slot``; None if it was never written, or if it stayed
        mid-write for ``READ_DEADLINE_S`` (its writer stopped inside a write)."""
        q = self._attempt(slot)
        return q if q is not _BUSY else self._read_contended(slot)

    def bid_ask(self, slot: int) -> tuple[float, float] | None:
        """:meth:`read`'s bid and ask alone, for pricing an order: the same seqlock read without
        building a Quote of ten fields (a microsecond per order in the order manager)."""
        u, f = self._u, self._f
        b = self._base + slot * SLOT_WORDS
        s1 = u[b]
        if not s1 & 1:
            bid, ask = f[b + 1], f[b + 2]
            if u[b] == s1:
                return (bid, ask) if s1 else None
        q = self._read_contended(slot)
        return None if q is None else (q.bid, q.ask)

    def _attempt(self, slot: int) -> Any:
        """One seqlock read: a Quote, None (never written), or _BUSY (mid-write or changed)."""
        u, f = self._u, self._f
        b = self._base + slot * SLOT_WORDS
        s1 = u[b]
        if not s1 & 1:
            q = (slot, self.symbols[slot], f[b + 1], f[b + 2], f[b + 3], u[b + 4], u[b + 5], u[b + 6], u[b + 7], s1 >> 1)
            if u[b] == s1:
                return _new(Quote, q) if s1 else None
        return _BUSY

    def _read_contended(self, slot: int) -> Quote | None:
        """The retry loop, off the fast path. Yields the CPU between tries: on two cores the
        writer may be descheduled mid-write, and spinning would only keep it off the CPU."""
        deadline = time.monotonic() + READ_DEADLINE_S
        spins = 0
        while (q := self._attempt(slot)) is _BUSY:
            spins += 1
            if spins > 16:
                os.sched_yield()
                if time.monotonic() > deadline:
                    return None
        return q

    def snapshot(self) -> Any:
        """Every slot as a numpy record array, each record read under its seqlock."""
        import numpy as np  # not on the hot path: keeps 13 MB out of processes that never snapshot

        out = np.zeros(len(self.symbols), dtype=np.dtype(SLOT_FIELDS))
        for i in range(len(self.symbols)):
            q = self.read(i)
            if q is not None:
                out[i] = (q.updates * 2, q.bid, q.ask, q.last, q.size, q.tick_seq, q.tick_ts, q.write_ts)
        return out


def sweep_stale(shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Unlink zmqtrade segments whose creating process is gone; returns their names."""
    removed = []
    for path in shm_dir.glob(f"{PREFIX}*"):
        try:
            pid = int(path.name[len(PREFIX):].split("_", 1)[0])
        except ValueError:
            continue
        if not _alive(pid):
            try:
                path.unlink()
                removed.append(path.name)
            except OSError:
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
