"""OrderBook process: applies price ticks to the shared-memory book and rings the doorbell.

It drains every tick already queued before ringing once, listing the slots that changed, so
at high rates readers wake once per batch and read only the latest value (conflation). A
tick's sequence number is checked against the last one: a jump counts as a gap (ticks lost
upstream), a repeat or step back as a duplicate.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

import zmq

from zmqtrade import sockets, wire
from zmqtrade.book import Book, BookError
from zmqtrade.service import Service, serve

MAX_DRAIN = 4096
STOP_DRAIN_S = 2.0  # after "stop", keep applying until the gateway's end of stream, at most this long


def open_book(name: str, symbols: Sequence[str], timeout: float = 5.0) -> Book:
    """Attach to the launcher's book, or create one when started by hand."""
    try:
        return Book.attach(name, timeout=timeout)
    except BookError:
        return Book.create(name, symbols)


class OrderBook(Service):
    kind = "orderbook"

    def open(self) -> dict[str, str]:
        topo = self.topo
        self.book = self.own(open_book(self.args.book, topo.symbols, timeout=0.0 if self.args.control is None else 5.0))
        if self.book.symbols != topo.symbols:
            raise BookError(f"book {self.book.name} holds {self.book.symbols}, topology publishes {topo.symbols}")
        self.book.claim_writer()
        self.sub = self.track(sockets.subscriber(self.ctx, topo.gateway.prices, topo.gateway.hwm))
        self.doorbell = self.track(sockets.publisher(self.ctx, topo.orderbook.doorbell, "doorbell", 0,
                                                     topo.orderbook.hwm, topo.gateway.lossless))
        self.publishers = [self.doorbell]
        self.counters.update(ticks_applied=0, tick_gaps=0, tick_duplicates=0, unknown_symbols=0,
                             doorbells=0, resubscribed=0)
        return {"orderbook.doorbell": sockets.bound_endpoint(self.doorbell)}

    def await_ready(self, deadline: float) -> None:
        sockets.await_welcome(self.sub, deadline)

    def run(self) -> None:
        book, sub, index, c = self.book, self.sub, self.book.index, self.counters
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(self.doorbell, zmq.POLLIN)
        if self.link is not None and self.link.sock is not None:
            poller.register(self.link.sock, zmq.POLLIN)
        expected = 1
        bell_seq = 0
        eos = False
        stop_deadline = 0.0
        while True:
            if self.stopping:
                if not stop_deadline:
                    stop_deadline = time.monotonic() + STOP_DRAIN_S
                if eos or time.monotonic() >= stop_deadline:
                    break
            events = dict(poller.poll(100))
            if sub in events:
                ticks, end = self.drain(sub, wire.Kind.TICK, wire.as_tick, MAX_DRAIN)
                eos |= end
                changed: set[int] = set()
                for t in ticks:
                    if t.seq != expected:
                        if t.seq < expected:
                            c["tick_duplicates"] += 1
                            continue
                        c["tick_gaps"] += t.seq - expected
                    expected = t.seq + 1
                    slot = index.get(t.symbol)
                    if slot is None:
                        c["unknown_symbols"] += 1
                        continue
                    book.write(slot, t.bid, t.ask, t.last, t.size, t.seq, t.ts_ns, time.monotonic_ns())
                    c["ticks_applied"] += 1
                    changed.add(slot)
                if changed:
                    bell_seq += 1
                    if self.send_bounded(self.doorbell, wire.encode_doorbell(bell_seq, sorted(changed), time.monotonic_ns())):
                        c["doorbells"] += 1
            else:
                book.heartbeat()
            if self.doorbell in events:
                self.service_publishers()
            if self.link is not None and self.link.sock in events:
                self.service_control()
        try:
            self.doorbell.send(wire.encode_eos("doorbell", bell_seq), zmq.NOBLOCK)
        except zmq.Again:
            self.log.warning("could not send end of stream on the doorbell")


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderBook, argv)


if __name__ == "__main__":
    sys.exit(main())
