"""OrderManager process: a ROUTER that answers every order with a fill or a reject.

For each order: decode (a malformed body gets a reject naming the problem), validate,
risk-check, price it from the shared book (buys at the ask, sells at the bid), journal it,
then ack. The journal write comes before the ack, so an acked order is always on disk. A
repeated client order id from the same strategy is answered with the original reply and
never filled twice.
"""
from __future__ import annotations

import math
import sys
import time
from typing import Sequence

import zmq

from zmqtrade import sockets, wire
from zmqtrade.book import Book
from zmqtrade.journal import FILENAME, Journal
from zmqtrade.risk import RiskBook
from zmqtrade.service import Service, serve

MAX_DRAIN = 4096


class OrderManager(Service):
    kind = "ordermanager"

    def open(self) -> dict[str, str]:
        self.book = self.own(Book.attach(self.args.book, timeout=5.0))
        self.router = self.track(sockets.router(self.ctx, self.topo.ordermanager.endpoint))
        self.journal = self.own(Journal(self.args.run_dir / FILENAME))
        self.risk = RiskBook(self.topo.ordermanager.risk)
        self.replies: dict[tuple[str, int], bytes] = {}
        self.next_order_id = 1
        self.counters.update(orders_received=0, orders_filled=0, orders_rejected=0,
                             duplicate_orders=0, replies_undeliverable=0)
        return {"ordermanager.endpoint": sockets.bound_endpoint(self.router)}

    def _reply(self, identity: bytes, body: bytes) -> None:
        try:
            self.router.send_multipart([identity, body], zmq.NOBLOCK)
        except zmq.ZMQError:  # client gone (ROUTER_MANDATORY) or its queue full
            self.counters["replies_undeliverable"] += 1

    def _validate(self, o: wire.Order) -> str | None:
        if o.symbol not in self.book.index:
            return f"unknown symbol {o.symbol!r}"
        if o.side not in wire.SIDES:
            return f"side must be BUY or SELL, got {o.side!r}"
        if o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if not (o.price > 0 and math.isfinite(o.price)):
            return f"price must be > 0, got {o.price!r}"
        if o.strategy not in self.topo.strategies:
            return f"unknown strategy {o.strategy!r}"
        return None

    def handle(self, frames: list[bytes]) -> None:
        c = self.counters
        recv_ts = time.monotonic_ns()
        c["orders_received"] += 1
        identity = frames[0]
        try:
            if len(frames) != 2:
                raise wire.WireError(f"expected one body frame, got {len(frames) - 1}")
            kind, fields = wire.unpack(frames[1])
            if kind is not wire.Kind.ORDER:
                raise wire.WireError(f"expected an ORDER, got {kind.name}")
            o = wire.as_order(fields)
        except wire.WireError as exc:
            c["malformed_messages"] += 1
            c["orders_rejected"] += 1
            cid = wire.order_clordid(frames[1]) if len(frames) == 2 else None
            self._reply(identity, wire.encode_reply(cid if cid is not None else -1, wire.REJECTED, 0,
                                                    f"malformed: {exc}", recv_ts, time.monotonic_ns()))
            self.log.info("order - rejected: malformed: %s", exc)
            return

        key = (o.strategy, o.clordid)
        previous = self.replies.get(key)
        if previous is not None:
            c["duplicate_orders"] += 1
            self._reply(identity, previous)
            return

        reason = self._validate(o)
        fill = 0.0
        if reason is None:
            quote = self.book.read(self.book.index[o.symbol])
            if quote is None:
                reason = f"no market in {o.symbol} yet"
            else:
                fill = quote.ask if o.side == "BUY" else quote.bid
                reason = self.risk.check(o, recv_ts)  # last: only a fillable order spends a rate token

        if reason is not None:
            c["orders_rejected"] += 1
            body = wire.encode_reply(o.clordid, wire.REJECTED, 0, reason, recv_ts, time.monotonic_ns())
            self.replies[key] = body
            self._reply(identity, body)
            self.log.info("order - %s %s %d %s rejected: %s", o.strategy, o.side, o.qty, o.symbol, reason)
            return

        order_id = self.next_order_id
        self.next_order_id += 1
        self.journal.append({
            "order_id": order_id, "clordid": o.clordid, "strategy": o.strategy, "symbol": o.symbol,
            "side": o.side, "qty": o.qty, "limit": o.price, "price": fill, "recv_ts": recv_ts,
        })
        self.risk.apply(o)
        c["orders_filled"] += 1
        body = wire.encode_reply(o.clordid, wire.FILLED, order_id, fill, recv_ts, time.monotonic_ns())
        self.replies[key] = body
        self._reply(identity, body)
        self.log.info("order %d %s %s %d %s @ %.2f filled", order_id, o.strategy, o.side, o.qty, o.symbol, fill)

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        ctl = self.link.sock if self.link is not None else None
        if ctl is not None:
            poller.register(ctl, zmq.POLLIN)
        while True:
            events = dict(poller.poll(100))
            if self.router in events or self.stopping:
                for _ in range(MAX_DRAIN):
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames)
            if ctl is not None and ctl in events:
                self.service_control()
            if self.stopping and not self.router.poll(0):
                break


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderManager, argv)


if __name__ == "__main__":
    sys.exit(main())
