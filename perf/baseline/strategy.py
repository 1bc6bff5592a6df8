"""Classic strategy: reads the locked numpy book and sends JSON orders over TCP to the ordermanager.

Imitates zmqtrade's strategy process (SUB doorbell -> read changed slots -> DEALER orders) in the
two ways students usually build it:

- ``poll``: a 1 ms timer. After each poll it waits 1 ms (in ``select`` on the order socket, so
  acks are timestamped as they arrive), then copies the whole book under the lock and acts on
  every symbol whose update counter changed since the previous poll.
- ``event``: blocks in ``select`` on the orderbook's notification socketpair (one byte per applied
  tick) and the order socket; on a notification it reads each notified symbol's row under the
  lock and acts if its update counter changed since it last acted on that symbol.

Acting = one order per observed update, alternating BUY/SELL per symbol (position stays bounded),
sent as one JSON line with ``clordid``, symbol, side, qty, price, ``tick_ts`` and ``send_ts``.
Orders of one wake-up go out in one non-blocking send (with a local out-buffer, so a busy
ordermanager can never deadlock against us). tick_to_ack = ack arrival ``monotonic_ns`` - tick_ts.
"""
from __future__ import annotations

import json
import select
import socket
import time

from .common import ASK, BID, DRAIN_S, HOST, TICK_TS, UPDATES, book_view, nodelay, split_lines, summarize_us

POLL_PERIOD_S = 0.001
ACK_WAIT_S = 1.0
"""After the stream ends, how long to wait for acks of orders still in flight."""


class _Orders:
    """The order connection: encode, buffer, send without blocking, read and time acks."""

    def __init__(self, sock: socket.socket, syms: list[str]) -> None:
        self.sock = sock
        self.syms = syms
        self.buy_next = [True] * len(syms)
        self.clordid = 0
        self.pending: dict[int, int] = {}  # clordid -> tick_ts
        self.out = b""
        self.inbuf = b""
        self.sent = self.acked = self.filled = self.rejected = self.unknown_acks = 0
        self.latency_ns: list[int] = []
        self.eof = False

    def order(self, i: int, row: list[float]) -> bytes:
        self.clordid += 1
        buy = self.buy_next[i]
        self.buy_next[i] = not buy
        tick_ts = int(row[TICK_TS])
        self.pending[self.clordid] = tick_ts
        self.sent += 1
        return json.dumps({"clordid": self.clordid, "symbol": self.syms[i], "side": "BUY" if buy else "SELL",
                           "qty": 10, "price": row[ASK] if buy else row[BID], "tick_ts": tick_ts,
                           "send_ts": time.monotonic_ns()}).encode() + b"\n"

    def queue(self, lines: list[bytes]) -> None:
        if lines:
            self.out += b"".join(lines)
            self.flush()

    def flush(self) -> None:
        if self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            self.out = self.out[n:]

    def read_acks(self) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        now = time.monotonic_ns()
        if not data:
            self.eof = True
            return
        lines, self.inbuf = split_lines(self.inbuf, data)
        for line in lines:
            ack = json.loads(line)
            tick_ts = self.pending.pop(ack.get("clordid"), None)
            if tick_ts is None:
                self.unknown_acks += 1
                continue
            self.acked += 1
            if ack.get("status") == "filled":
                self.filled += 1
            else:
                self.rejected += 1
            self.latency_ns.append(now - tick_ts)

    def wlist(self) -> list[socket.socket]:
        return [self.sock] if self.out else []


def main(q, start, book_done, lock, shm, syms: list[str], om_port: int, notify: socket.socket | None,
         mode: str, duration_s: float) -> dict:
    book = book_view(shm, len(syms))
    sock = nodelay(socket.create_connection((HOST, om_port), timeout=10.0))
    with sock:
        sock.setblocking(False)
        om = _Orders(sock, syms)
        q.put(("ready", "strategy", None))
        if not start.wait(15.0):
            raise RuntimeError("no start signal")
        deadline = time.monotonic() + duration_s + DRAIN_S
        if mode == "poll":
            polls = _run_poll(om, book, lock, book_done, deadline)
        else:
            polls = _run_event(om, book, lock, notify, deadline)
        # Drain: wait for the acks of orders still in flight, then EOF to the ordermanager.
        until = min(deadline, time.monotonic() + ACK_WAIT_S)
        while (om.pending or om.out) and not om.eof:
            left = until - time.monotonic()
            if left <= 0:
                break
            r, w, _ = select.select([sock], om.wlist(), [], left)
            if r:
                om.read_acks()
            if w:
                om.flush()
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    return {"mode": mode, "wakeups": polls, "orders_sent": om.sent, "orders_acked": om.acked,
            "orders_filled": om.filled, "orders_rejected": om.rejected, "orders_unanswered": len(om.pending),
            "unknown_acks": om.unknown_acks, "tick_to_ack_us": summarize_us(om.latency_ns)}


def _run_poll(om: _Orders, book, lock, book_done, deadline: float) -> int:
    n = len(om.syms)
    seen = [0.0] * n
    polls = 0
    next_poll = time.monotonic()
    while True:
        timeout = next_poll - time.monotonic()
        if timeout > 0:
            r, w, _ = select.select([om.sock], om.wlist(), [], timeout)
            if r:
                om.read_acks()
            if w:
                om.flush()
            continue  # re-check the timer
        last = book_done.is_set()  # checked before the copy, so the last poll sees every write
        with lock:
            snap = book.tolist()
        polls += 1
        out = []
        for i, row in enumerate(snap):
            if row[UPDATES] != seen[i]:
                seen[i] = row[UPDATES]
                out.append(om.order(i, row))
        om.queue(out)
        if last or om.eof or time.monotonic() > deadline:
            return polls
        next_poll = time.monotonic() + POLL_PERIOD_S


def _run_event(om: _Orders, book, lock, notify: socket.socket, deadline: float) -> int:
    seen = [0.0] * len(om.syms)
    wakeups = 0
    rlist = [om.sock, notify]
    while not om.eof:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, w, _ = select.select(rlist, om.wlist(), [], left)
        if om.sock in r:  # acks first, so their arrival time is not delayed by our own work
            om.read_acks()
        if w:
            om.flush()
        if notify in r:
            data = notify.recv(1 << 16)
            if not data:
                break  # the orderbook closed its end: the stream is over
            wakeups += 1
            out = []
            for i in dict.fromkeys(data):  # each notified row once, in order
                with lock:
                    row = book[i].tolist()
                if row[UPDATES] != seen[i]:
                    seen[i] = row[UPDATES]
                    out.append(om.order(i, row))
            om.queue(out)
    return wakeups
