"""Strategy process: wakes on doorbell, news and order replies; decides; sends orders.

Event driven, never spinning: one poll over the doorbell, news and order sockets. On a
doorbell it drains every pending ring first, then reads each changed symbol of its own once
from the shared book (conflation: the newest value, once). Each order carries the tick's
gateway timestamp, so the ack's arrival gives tick-to-ack latency.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Sequence


from zmqtrade import metrics, sockets, wire
from zmqtrade.book import Book
from zmqtrade.service import SeqCheck, Service, serve
from zmqtrade.strategies import OrderRequest, Strategy, load_strategy_class

FLUSH_EVERY = 64
"""Orders queued before they are sent at the latest, when a wake-up finds a long backlog."""
DOORBELL = {wire.Kind.DOORBELL: wire.as_doorbell}
NEWS = {wire.Kind.NEWS: wire.as_news}
REPLIES = {wire.Kind.REPLY: lambda f: (wire.as_reply(f),),
           wire.Kind.REPLIES: lambda f: tuple(wire.as_reply(i) for i in wire.as_batch(f))}
STOP_EOS_S = 2.0      # after "stop": wait this long at most for the upstream ends of stream
STOP_REPLIES_S = 3.0  # then this long at most for replies to orders in flight


class StrategyProcess(Service):
    kind = "strategy"

    def open(self) -> dict[str, str]:
        topo, spec = self.topo, self.topo.strategies[self.name]
        self.book = self.own(Book.attach(self.args.book, timeout=5.0))
        self.mine = {self.book.index[s] for s in spec.symbols}
        self.strategy: Strategy = load_strategy_class(spec.cls)(self.name, spec.symbols, spec.qty, spec.params)
        self.doorbell = self.track(sockets.subscriber(self.ctx, topo.orderbook.doorbell, topo.orderbook.hwm))
        self.news = self.track(sockets.subscriber(self.ctx, topo.gateway.news, topo.gateway.hwm))
        self.orders = self.track(sockets.dealer(self.ctx, topo.ordermanager.endpoint, self.name))
        self.pending: dict[int, tuple[OrderRequest, wire.Order]] = {}
        self._queued: list[tuple[int, OrderRequest, int, int, int]] = []
        self.next_clordid = 1
        self.latency = {name: metrics.Histogram() for name in metrics.ORDER_HOPS}
        self.staleness = metrics.Histogram()
        self.conflate = spec.conflate
        self.bell_seq = SeqCheck(self.counters, "doorbell_gaps")
        self.news_seq = SeqCheck(self.counters, "news_gaps")
        self.counters.update(doorbells=0, quotes_read=0, unwritten_skipped=0,
                             news_received=0, orders_sent=0, order_messages=0, orders_acked=0,
                             orders_rejected=0, unmatched_replies=0, resubscribed=0)
        return {}

    def await_ready(self, deadline: float) -> None:
        sockets.await_welcome(self.doorbell, deadline, lambda: self.stopping)
        sockets.await_welcome(self.news, deadline, lambda: self.stopping)

    # ------------------------------------------------------------------ orders
    def send_orders(self, orders: Iterable[OrderRequest], tick_ts: int, book_ts: int, decide_ts: int) -> None:
        """Queue orders; :meth:`flush_orders` sends everything one wake-up produced at once."""
        for req in orders:
            self._queued.append((self.next_clordid, req, tick_ts, book_ts, decide_ts))
            self.next_clordid += 1
        if len(self._queued) >= FLUSH_EVERY:  # a backlog goes out in slices, not after all of it
            self.flush_orders()

    def flush_orders(self) -> None:
        """Send the queued orders: one alone as ORDER, several as ORDERS (one message, one wake-up
        of the order manager, one REPLIES back), so the order path batches exactly when busy."""
        if not self._queued:
            return
        now = time.monotonic_ns()
        out = []
        for cid, req, tick_ts, book_ts, decide_ts in self._queued:
            o = wire.Order(cid, self.name, req.symbol, req.side, req.qty, float(req.price),
                           tick_ts, book_ts, decide_ts, now)
            self.pending[cid] = (req, o)
            out.append(o)
        self._queued.clear()
        for i in range(0, len(out), wire.MAX_BATCH):
            self.orders.send(wire.encode_orders(out[i:i + wire.MAX_BATCH]))
            self.counters["order_messages"] += 1
        self.counters["orders_sent"] += len(out)

    def on_replies(self) -> None:
        c = self.counters
        batches, _ = self.drain(self.orders, REPLIES)
        now = time.monotonic_ns()
        for replies in batches:
            for reply in replies:
                entry = self.pending.pop(reply.clordid, None)
                if entry is None:
                    c["unmatched_replies"] += 1
                    continue
                req, sent = entry
                if reply.filled:
                    c["orders_acked"] += 1
                    self.strategy.record_fill(req)
                    if sent.tick_ts:
                        self.record_hops(sent, reply, now)
                else:
                    c["orders_rejected"] += 1
                    self.log.info("order %d %s %d %s rejected: %s", reply.clordid, req.side, req.qty, req.symbol,
                                  reply.detail)
                self.strategy.on_reply(reply, req)
                self.send_orders(self.strategy.take_orders(None), 0, 0, time.monotonic_ns())

    def record_hops(self, o: wire.Order, r: wire.Reply, ack_ns: int) -> None:
        """Latency of each hop of a tick-driven order, from the stamps it and its reply carry."""
        lat = self.latency
        lat["tick_to_ack"].record(ack_ns - o.tick_ts)
        lat["tick_to_book"].record(o.book_ts - o.tick_ts)
        lat["book_to_decision"].record(o.decide_ts - o.book_ts)
        lat["order_rtt"].record(ack_ns - o.send_ts)
        lat["order_to_om"].record(r.recv_ts - o.send_ts)
        lat["om_process"].record(r.ts_ns - r.recv_ts)
        lat["reply_to_strategy"].record(ack_ns - r.ts_ns)

    # ------------------------------------------------------------------ feeds
    def on_doorbells(self) -> wire.Eos | None:
        """Drain the doorbell and act on what changed; its end of stream, if it came.

        Conflating (the default) acts once per changed symbol of this strategy, on the newest
        value; ``conflate: false`` acts once per doorbell, in order.
        """
        c = self.counters
        bells, eos = self.drain(self.doorbell, DOORBELL)
        bells = [b for b in bells if not self.bell_seq.see(b.seq)]
        c["doorbells"] += len(bells)
        if self.conflate:
            if bells:
                self.act_on(set().union(*(b.slots for b in bells)) & self.mine)
        else:
            for bell in bells:
                self.act_on([s for s in bell.slots if s in self.mine])
        return eos

    def act_on(self, slots: Iterable[int]) -> None:
        c, strategy = self.counters, self.strategy
        for slot in slots:
            quote = self.book.read(slot)
            if quote is None:
                c["unwritten_skipped"] += 1
                continue
            c["quotes_read"] += 1
            self.staleness.record(time.monotonic_ns() - quote.write_ts)
            orders = strategy.take_orders(strategy.on_quote(quote))
            if orders:
                self.send_orders(orders, quote.tick_ts, quote.write_ts, time.monotonic_ns())

    def on_news(self) -> wire.Eos | None:
        c = self.counters
        items, eos = self.drain(self.news, NEWS)
        symbols = self.strategy.symbols
        for news in items:
            if self.news_seq.see(news.seq):
                continue  # a repeat
            if news.symbol in symbols:
                orders = self.strategy.take_orders(self.strategy.on_news(news))
                if orders:  # news-driven: no tick behind it, so no tick-to-ack sample
                    self.send_orders(orders, 0, 0, time.monotonic_ns())
        c["news_received"] += len(items)
        return eos

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        poller, ctl = self.poller(self.doorbell, self.news, self.orders)
        bell_eos: wire.Eos | None = None
        news_eos: wire.Eos | None = None
        eos_deadline = replies_deadline = 0.0
        while True:
            if self.stopping:
                now = time.monotonic()
                eos_deadline = eos_deadline or now + STOP_EOS_S
                if (bell_eos and news_eos) or now >= eos_deadline:
                    replies_deadline = replies_deadline or now + STOP_REPLIES_S
                    if not self.pending or now >= replies_deadline:
                        break
            events = dict(poller.poll(100 if not self.stopping else 20))
            self.report_progress()
            if self.orders in events:
                self.on_replies()
            if self.doorbell in events:
                bell_eos = bell_eos or self.on_doorbells()
            if self.news in events:
                news_eos = news_eos or self.on_news()
            if ctl is not None and ctl in events:
                self.service_control()
            self.flush_orders()
        self.bell_seq.end(bell_eos)
        self.news_seq.end(news_eos)
        if self.pending:
            self.log.warning("%d orders still unanswered at exit", len(self.pending))
        self.counters["orders_unanswered"] = len(self.pending)

    def latency_samples(self) -> dict[str, bytes]:
        return {**{name: rec.tobytes() for name, rec in self.latency.items()},
                "book_staleness": self.staleness.tobytes()}


def main(argv: Sequence[str] | None = None) -> int:
    return serve(StrategyProcess, argv)


if __name__ == "__main__":
    sys.exit(main())
