"""OrderBook process: applies price ticks to the shared-memory book and rings the doorbell.

It drains every tick already queued before ringing once, so at high rates readers wake once
per batch. Conflating (the default) the doorbell lists each changed slot once, and readers
read only the latest value; with ``orderbook.conflate: false`` it lists a slot per tick, in
order, for strategies that act on every tick. A
tick's sequence number is checked against the last one: a jump counts as a gap (ticks lost
upstream), a repeat or step back as a duplicate.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

from zmqtrade import bell, clock, sockets, wire
from zmqtrade.book import Book, BookError
from zmqtrade.runner import serve
from zmqtrade.seqcheck import SeqCheck
from zmqtrade.service import Service

MAX_DRAIN = 4096
DRAIN_NS = 20_000_000
"""A drain rings at its end, and ends after MAX_DRAIN price messages or DRAIN_NS of applying them,
whichever comes first (messages hold up to ``gateway.batch`` ticks, so only time bounds the work:
4096 of 512 ticks kept the process from heartbeating for over 2 s), so under an endless backlog
it still heartbeats and answers control. No tighter: after a stall one ring over the whole backlog
serves readers better than a ring every few hundred messages, each deciding on prices the next
slice makes stale and each adding messages to the order path (``python -m perf.stall``: 300 ms
stopped at 10k ticks/s, one order per tick, tick_to_ack p99.9 ~40 ms against ~100-200 ms with a
bound of 256 messages)."""
MAX_SLOTS = bell.MAX_SLOTS
"""Entries per doorbell: what one atomic pipe write holds, so both doorbells number alike."""
PRICES = {wire.Kind.TICK: wire.as_tick, wire.Kind.TICKS: wire.as_ticks}
STOP_DRAIN_S = 2.0  # after "stop", keep applying until the gateway's end of stream, at most this long


def open_book(name: str, symbols: Sequence[str], timeout: float = 5.0) -> Book:
    """Attach to the launcher's book, or create one when started by hand."""
    try:
        return Book.attach(name, timeout=timeout)
    except BookError:
        return Book.create(name, symbols)


class TickApplier:
    """Writes price messages into a book: sequence-checked, a batch in one pass. The orderbook
    uses it for the shared book, and an order manager on a host without one for its own copy."""

    def __init__(self, book: Book, seq: SeqCheck, counters: dict[str, int]) -> None:
        self.book = book
        self.seq = seq
        self.counters = counters
        counters.update(ticks_applied=0, batches=0, unknown_symbols=0)

    def apply(self, msgs: list, written: list[int], per_tick: bool = False) -> None:
        """Apply drained TICK/TICKS messages; ``written`` gets a slot per write (or per tick)."""
        for m in msgs:
            self.apply_one(m, written, per_tick)

    def apply_one(self, m: wire.Tick | wire.Ticks, written: list[int], per_tick: bool = False) -> None:
        if type(m) is wire.Tick:
            self.tick(m, written)
        else:
            self.batch(m, written, per_tick)

    def tick(self, t: wire.Tick, written: list[int]) -> None:
        c = self.counters
        if self.seq.see(t.seq):
            return
        slot = self.book.index.get(t.symbol)
        if slot is None:
            c["unknown_symbols"] += 1
        else:
            self.book.write(slot, t.bid, t.ask, t.last, t.size, t.seq, t.ts_ns, clock.now_ns())
            c["ticks_applied"] += 1
            written.append(slot)

    def batch(self, b: wire.Ticks, written: list[int], per_tick: bool) -> None:
        """Apply a batch in one pass: one seqlock write per symbol, with its newest tick.

        Readers only ever see the newest value of a slot, so writing the older ticks of the same
        symbol first would cost time and change nothing they can observe.
        """
        c = self.counters
        n = len(b.symbols)
        skip = self.seq.see(b.first_seq, n)
        newest = {sym: i for i, sym in enumerate(b.symbols) if i >= skip} if skip else \
            {sym: i for i, sym in enumerate(b.symbols)}
        index, write, now = self.book.index, self.book.write, clock.now_ns()
        applied = n - skip
        for sym, i in newest.items():
            slot = index.get(sym)
            if slot is None:
                unknown = b.symbols[skip:].count(sym)
                c["unknown_symbols"] += unknown
                applied -= unknown
                continue
            write(slot, b.bids[i], b.asks[i], b.lasts[i], b.sizes[i], b.first_seq + i, b.ts_ns[i], now)
            if not per_tick:
                written.append(slot)
        if per_tick:  # one doorbell entry per tick, in order, for strategies that act on every tick
            written.extend(index[s] for s in b.symbols[skip:] if s in index)
        c["ticks_applied"] += applied
        c["batches"] += 1


class OrderBook(Service):
    kind = "orderbook"

    def open(self) -> dict[str, str]:
        topo = self.topo
        self.book = self.own(open_book(self.args.book, topo.symbols, timeout=0.0 if self.args.control is None else 5.0))
        if self.book.symbols != topo.symbols:
            raise BookError(f"book {self.book.name} holds {self.book.symbols}, topology publishes {topo.symbols}")
        self.book.claim_writer()
        self.sub = self.subscribe("gateway.prices", topo.gateway.hwm)
        session = wire.new_session()
        self.doorbell = self.track(sockets.publisher(self.ctx, topo.bind_endpoint("orderbook.doorbell"), "doorbell",
                                                     session, topo.orderbook.hwm, topo.gateway.lossless,
                                                     curve=self.curve("orderbook.doorbell"), heartbeat=self.heartbeat))
        self.publishers = [self.doorbell]
        index = self.book.index
        here = topo.host_of(self.name)  # the strategies of this host: each host's read its own book
        readers = {name: [index[s] for s in spec.symbols] for name, spec in topo.strategies.items()
                   if spec.doorbell == "pipe" and not spec.external and topo.host_of(name) == here}
        self.bells = self.own(bell.BellWriter(self.args.book, readers, session, self.counters, topo.gateway.lossless,
                                              lambda: self.stopping)) if readers else None
        self.counters.update(doorbells=0, resubscribed=0)
        self.seq = SeqCheck(self.counters, "tick_gaps", "tick_duplicates", self.args.life > 1)
        self.applier = TickApplier(self.book, self.seq, self.counters)
        return {"orderbook.doorbell": self.bound("orderbook.doorbell", self.doorbell)}

    def await_ready(self, deadline: float) -> None:
        self.seq.welcome(sockets.await_welcome(self.sub, deadline, self.stop_requested))

    def _ring(self, slots: list[int]) -> None:
        """One doorbell per MAX_SLOTS slots: to the pipe readers first (they are the stack's own
        strategies, on the latency path), then on the ZeroMQ stream for any other subscriber."""
        bells = self.bells
        for i in range(0, len(slots), MAX_SLOTS):
            self.bell_seq += 1
            chunk = slots[i:i + MAX_SLOTS]
            self.counters["doorbells"] += 1
            if bells is not None:
                bells.ring(chunk)
            if self.doorbell.subscriptions > 0:  # else every reader takes its doorbell by pipe
                self.send_bounded(self.doorbell, wire.encode_doorbell(self.bell_seq, chunk, clock.now_ns()))

    def service_publishers(self) -> None:
        """A new subscriber to the doorbell may be a pipe reader that (re)made its pipe: look now."""
        if sockets.drain_subscriptions(self.doorbell) and self.bells is not None:
            self.bells.rescan()

    def periodic(self) -> None:
        if self.bells is not None:
            self.bells.rescan()

    def _apply(self, m: wire.Tick | wire.Ticks) -> None:
        """One price message: into the book, and its doorbell out at once if it is the first of
        a drain (the common case: the only one); the rest of a backlog rings once, at its end."""
        self.applier.apply_one(m, self._written, not self.conflate)
        if self._first and self._written:
            self._first = False
            self._ring_written()

    def _ring_written(self) -> None:
        written = self._written
        self._ring(sorted(set(written)) if self.conflate else written)
        self._written = []

    def run(self) -> None:
        sub = self.sub
        self.bell_seq = 0
        self._written: list[int] = []  # a slot per write (conflating) or per tick (not), not yet rung
        self._first = True
        poller, ctl = self.poller(sub, self.doorbell)
        self.conflate = self.topo.orderbook.conflate
        eos: wire.Eos | None = None
        stop_deadline = 0.0
        while True:
            if self.stopping:
                if not stop_deadline:
                    stop_deadline = time.monotonic() + STOP_DRAIN_S
                if eos or time.monotonic() >= stop_deadline:
                    break
            events = poller.wait(100)
            if sub in events:
                self._first = True
                eos = self.drain_each(sub, PRICES, self._apply, MAX_DRAIN, self.seq,
                                      until_ns=time.monotonic_ns() + DRAIN_NS) or eos
                if self._written:
                    self._ring_written()
            else:
                self.book.heartbeat()  # writes beat too; readers judge the writer alive by it
            self.report_progress()
            if self.doorbell in events:
                self.service_publishers()
            if ctl is not None and ctl in events:
                self.service_control()
        self.seq.end(eos)
        if self.bells is not None:
            self.bells.end()
        self.send_eos(self.doorbell, "doorbell", self.bell_seq)


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderBook, argv)


if __name__ == "__main__":
    sys.exit(main())
