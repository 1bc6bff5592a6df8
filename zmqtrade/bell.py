"""The pipe doorbell: the orderbook wakes a strategy on its own host through a named pipe.

A ZeroMQ doorbell costs three thread wake-ups per ring (the orderbook's I/O thread, the
strategy's I/O thread, then the strategy), and on this machine class a wake-up costs tens of
microseconds. A pipe costs one: the orderbook's ``write`` wakes the strategy's ``epoll``
directly. Prices, news and orders stay on ZeroMQ; the ZeroMQ doorbell stays published for
any other subscriber (outside clients, ``doorbell: zmq`` strategies).

Each strategy that takes its doorbell by pipe makes a FIFO beside the book,
``/dev/shm/<book>.<strategy>.bell`` (mode 0600: only the stack's user may open it), and keeps
both its ends open, so it never reads end-of-file. The orderbook opens the FIFO when the
strategy subscribes to its ZeroMQ doorbell (the subscription says "I am here") and on every
heartbeat, and again whenever the file at that path is a new one (the strategy restarted).

A pipe carries only the slots of its strategy's own symbols: a strategy is woken by the ticks
it trades, not by every tick (two strategies on one core no longer both wake, and queue behind
each other, on every tick). So each pipe numbers its doorbells itself, from 1 each time the
orderbook opens it. A doorbell is 16-byte entries of two native 64-bit words, ``(seq, slot)``,
one entry per slot, at most :data:`MAX_SLOTS` of them: one write of at most ``PIPE_BUF`` bytes,
so it arrives whole or not at all. The orderbook writes ``(session, WELCOME)`` when it opens the
pipe and ``(last seq, EOS)`` at the end of the stream. A full pipe drops the doorbell (the
strategy counts the gap, as with the ZeroMQ doorbell at its high-water mark), or, in lossless
mode, waits.
"""
from __future__ import annotations

import fcntl
import os
import select
import stat
import struct
import time
from array import array
from pathlib import Path
from typing import Callable, Collection, Mapping

from zmqtrade import wire
from zmqtrade.book import SHM_DIR

_new = tuple.__new__  # a NamedTuple without its __new__, a Python function: doorbells are per tick

ENTRY_BYTES = 16
MAX_SLOTS = select.PIPE_BUF // ENTRY_BYTES
"""Slots per doorbell: one write of at most PIPE_BUF bytes is atomic, so a doorbell is never torn."""
WELCOME = (1 << 64) - 1
EOS = (1 << 64) - 2
PIPE_BYTES = 1 << 20
"""Asked for with F_SETPIPE_SZ (Linux's default limit for any user): 65536 doorbells of backlog."""
_CHUNK = 1 << 16
_ENTRY = struct.Struct("=QQ")


def fifo_path(book: str, strategy: str) -> Path:
    return SHM_DIR / f"{book}.{strategy}.bell"


def encode(seq: int, slots: list[int] | tuple[int, ...]) -> bytes:
    """One doorbell's entries (at most MAX_SLOTS slots)."""
    if len(slots) == 1:
        return _ENTRY.pack(seq, slots[0])
    out = array("Q")
    for slot in slots:
        out.append(seq)
        out.append(slot)
    return out.tobytes()


class BellWriter:
    """The orderbook's side: the pipes of the strategies it rings, opened as they appear.
    ``readers`` maps each strategy to the slots it is rung for (None: every slot)."""

    def __init__(self, book: str, readers: Mapping[str, Collection[int] | None], session: int,
                 counters: dict[str, int], lossless: bool = False,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.paths = {name: fifo_path(book, name) for name in readers}
        self.slots = {name: None if slots is None else frozenset(slots) for name, slots in readers.items()}
        self.seqs: dict[str, int] = {}  # reader -> the last doorbell number its open pipe was sent
        self.session = session
        self.counters = counters
        self.lossless = lossless
        self.stopping = stopping
        self.fds: dict[str, tuple[int, int]] = {}  # reader -> (fd, inode of the FIFO it was opened as)
        counters.setdefault("pipe_readers", 0)
        counters.setdefault("pipe_doorbells_dropped", 0)

    def rescan(self) -> None:
        """Open the pipe of every reader that made one (again) since the last look."""
        for name, path in self.paths.items():
            held = self.fds.get(name)
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is None or not stat.S_ISFIFO(st.st_mode):
                if held is not None:
                    self._drop(name)
                continue
            if held is not None and held[1] == st.st_ino:
                continue
            if held is not None:
                self._drop(name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:  # ENXIO: no reader has it open (yet, or any more)
                continue
            self.fds[name] = (fd, st.st_ino)
            self.seqs[name] = 0
            self.counters["pipe_readers"] = len(self.fds)
            self._write(name, fd, encode(self.session, (WELCOME,)))

    def ring(self, slots: list[int]) -> None:
        """One doorbell (at most MAX_SLOTS slots) to every open pipe whose reader holds one of them."""
        seqs, wanted = self.seqs, self.slots
        for name, (fd, _) in list(self.fds.items()):
            mine = wanted[name]
            if mine is None:
                picked = slots
            elif len(slots) == 1:  # the common case
                if slots[0] not in mine:
                    continue
                picked = slots
            else:
                picked = [s for s in slots if s in mine]
                if not picked:
                    continue
            seq = seqs[name] = seqs[name] + 1
            self._write(name, fd, encode(seq, picked))

    def end(self) -> None:
        """Tell every reader its doorbell stream ends at the last number it was sent."""
        for name, (fd, _) in list(self.fds.items()):
            self._write(name, fd, encode(self.seqs[name], (EOS,)))

    def _write(self, name: str, fd: int, data: bytes) -> None:
        while True:
            try:
                os.write(fd, data)
                return
            except BlockingIOError:
                if not self.lossless or self.stopping():
                    self.counters["pipe_doorbells_dropped"] += 1
                    return
                self.counters["send_blocked"] = self.counters.get("send_blocked", 0) + 1
                poll = select.poll()
                poll.register(fd, select.POLLOUT)
                poll.poll(100)
            except OSError:  # EPIPE: its reader is gone; a new life makes a new FIFO, found by rescan
                self._drop(name)
                return

    def _drop(self, name: str) -> None:
        fd, _ = self.fds.pop(name)
        os.close(fd)
        self.counters["pipe_readers"] = len(self.fds)

    def close(self) -> None:
        for name in list(self.fds):
            self._drop(name)


class BellReader:
    """A strategy's side: its FIFO, made fresh (a previous life's is replaced), read whole."""

    def __init__(self, book: str, strategy: str) -> None:
        self.path = fifo_path(book, strategy)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        old = os.umask(0o077)
        try:
            os.mkfifo(self.path, 0o600)
        finally:
            os.umask(old)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._keep = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        """Our own write end: with it, the pipe never reads end-of-file (which polls ready
        forever) when the orderbook closes or dies; the book's liveness check covers that."""
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # above /proc/sys/fs/pipe-max-size here: keep the default 64 KB
            pass
        self._rest = b""
        self._early: list[wire.Doorbell | wire.Welcome] = []  # read by :meth:`await_welcome`, not yet taken

    def await_welcome(self, deadline: float, stopping: Callable[[], bool] = lambda: False) -> wire.Welcome:
        """Block until the orderbook opens the pipe and greets; TimeoutError at ``deadline`` or if
        told to stop. What followed the welcome is kept for the next :meth:`messages`."""
        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or stopping():
                raise TimeoutError(f"the orderbook did not open {self.path}")
            if not poll.poll(min(left_ms, 100)):
                continue
            msgs, _ = self.messages()
            for i, m in enumerate(msgs):
                if type(m) is wire.Welcome:
                    self._early = msgs[i + 1:]
                    return m

    def read(self) -> bytes:
        """Every whole entry queued (b"" if nothing: a spurious wake); a partial one waits."""
        data = self._rest
        while True:
            try:
                chunk = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                break
            data += chunk
            if len(chunk) < _CHUNK:
                break
        whole = len(data) - len(data) % ENTRY_BYTES
        self._rest = data[whole:]
        return data[:whole] if self._rest else data

    def messages(self) -> tuple[list[wire.Doorbell | wire.Welcome], wire.Eos | None]:
        """What was read, as the ZeroMQ doorbell's messages would have been, in order: doorbells
        (the entries of one seq make one) and welcomes (the orderbook opened the pipe: it started,
        or restarted), and the end of stream if it came."""
        out, self._early = self._early, []
        data = self.read()
        if len(data) == ENTRY_BYTES and not out:  # the common case: one doorbell of one slot
            seq, slot = _ENTRY.unpack(data)
            if slot < EOS:
                return [_new(wire.Doorbell, (seq, (slot,), 0))], None
        words = array("Q")
        words.frombytes(data)
        eos: wire.Eos | None = None
        seq, slots = -1, []
        for s, slot in zip(words[0::2], words[1::2]):
            if s != seq or slot >= EOS:
                if slots:
                    out.append(_new(wire.Doorbell, (seq, tuple(slots), 0)))
                    slots = []
                seq = s
            if slot == WELCOME:
                out.append(wire.Welcome("doorbell", s))
                seq = -1
            elif slot == EOS:
                eos = wire.Eos("doorbell", s)
                seq = -1
            else:
                slots.append(slot)
        if slots:
            out.append(_new(wire.Doorbell, (seq, tuple(slots), 0)))
        return out, eos

    def close(self) -> None:
        for fd in (self.fd, self._keep):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

