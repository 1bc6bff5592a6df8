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

from zmqtrade import clock, sockets, wire
from zmqtrade.book import Book, BookError
from zmqtrade.service import SeqCheck, Service, serve

MAX_DRAIN = 256
"""Price messages applied before ringing at the latest (each may be a batch of ticks), so after
a stall readers hear about the first ticks without waiting for the whole backlog."""
MAX_SLOTS = 4096  # entries per doorbell (a decoder refuses longer arrays)
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
        self.doorbell = self.track(sockets.publisher(self.ctx, topo.bind_endpoint("orderbook.doorbell"), "doorbell",
                                                     wire.new_session(), topo.orderbook.hwm, topo.gateway.lossless,
                                                     curve=self.curve("orderbook.doorbell"), heartbeat=self.heartbeat))
        self.publishers = [self.doorbell]
        self.counters.update(doorbells=0, resubscribed=0)
        self.seq = SeqCheck(self.counters, "tick_gaps", "tick_duplicates", self.args.life > 1)
        self.applier = TickApplier(self.book, self.seq, self.counters)
        return {"orderbook.doorbell": self.bound("orderbook.doorbell", self.doorbell)}

    def await_ready(self, deadline: float) -> None:
        self.seq.welcome(sockets.await_welcome(self.sub, deadline, self.stop_requested))

    def _ring(self, slots: list[int]) -> None:
        for i in range(0, len(slots), MAX_SLOTS):
            self.bell_seq += 1
            body = wire.encode_doorbell(self.bell_seq, slots[i:i + MAX_SLOTS], clock.now_ns())
            if self.send_bounded(self.doorbell, body):
                self.counters["doorbells"] += 1

    def run(self) -> None:
        sub = self.sub
        self.bell_seq = 0
        poller, ctl = self.poller(sub, self.doorbell)
        conflate = self.topo.orderbook.conflate
        eos: wire.Eos | None = None
        stop_deadline = 0.0
        while True:
            if self.stopping:
                if not stop_deadline:
                    stop_deadline = time.monotonic() + STOP_DRAIN_S
                if eos or time.monotonic() >= stop_deadline:
                    break
            events = dict(poller.poll(100))
            self.report_progress()
            if sub in events:
                msgs, end = self.drain(sub, PRICES, MAX_DRAIN, self.seq)
                eos = eos or end
                written: list[int] = []  # a slot per write (conflating) or per tick (not)
                self.applier.apply(msgs, written, per_tick=not conflate)
                if written:
                    self._ring(sorted(set(written)) if conflate else written)
            else:
                self.book.heartbeat()  # writes beat too; readers judge the writer alive by it
            if self.doorbell in events:
                self.service_publishers()
            if ctl is not None and ctl in events:
                self.service_control()
        self.seq.end(eos)
        self.send_eos(self.doorbell, "doorbell", self.bell_seq)


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderBook, argv)


if __name__ == "__main__":
    sys.exit(main())
