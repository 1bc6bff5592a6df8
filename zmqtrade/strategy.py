"""Strategy process: wakes on doorbell, news and order replies; decides; sends orders.

Event driven, never spinning: one poll over the doorbell, news and order sockets. On a
doorbell it drains every pending ring first, then reads each changed symbol of its own once
from the shared book (conflation: the newest value, once). Each order carries the tick's
gateway timestamp, so the ack's arrival gives tick-to-ack latency.

Before it is ready it asks the order manager, the book of record, for its positions (a
POSITIONS_ASK on the order socket), so a restarted strategy resumes from what it holds instead
of starting flat; the answer's time starts its client order ids, so a restarted strategy's ids
never repeat its previous life's. Orders are at least once, with the order manager's duplicate
filter making the effect exactly once: an order unanswered after ``order_timeout_s`` is sent
again with the same client order id, until it is answered (so an order manager restart needs no
action here). It trades only on a live book: with the book's writer dead or its heartbeat older
than ``book_max_age_s``, quotes and news are skipped and counted.
After ``keep_warm_ms`` with nothing sent to the order manager it sends a PING (answered with a
PONG): on the 2-vCPU VM measured, an order after ~80 ms of silence took 20-40% longer to the
order manager and back than one on a path kept warm.
"""
from __future__ import annotations

import sys
import time
from typing import Iterable, Sequence

import zmq

from zmqtrade import clock, fastwire, metrics, sockets, wire
from zmqtrade.bell import BellReader
from zmqtrade.book import Book
from zmqtrade.errors import ResourceError
from zmqtrade.idranges import IdRanges
from zmqtrade.runner import serve
from zmqtrade.seqcheck import SeqCheck
from zmqtrade.service import Service
from zmqtrade.strategies import OrderRequest, Strategy, load_strategy_class
from zmqtrade.topology import RESEND_SPAN

FLUSH_EVERY = 64
"""Orders queued before they are sent at the latest, when a wake-up finds a long backlog."""
DOORBELL = {wire.Kind.DOORBELL: wire.as_doorbell}
NEWS = {wire.Kind.NEWS: wire.as_news}
REPLIES = {wire.Kind.REPLY: lambda f: (wire.as_reply(f),),
           wire.Kind.REPLIES: lambda f: tuple(map(wire.as_reply, wire.as_batch(f))),
           wire.Kind.POSITIONS: lambda f: (wire.as_positions(f), ())[1],
           wire.Kind.PONG: lambda f: (wire.as_ping(f), ())[1]}
"""What comes back on the order socket; a POSITIONS answer to an ask re-sent at start is late, and a
PONG has done its work by arriving: nothing to do."""
STOP_EOS_S = 2.0      # after "stop": wait this long at most for the upstream ends of stream
STOP_REPLIES_S = 3.0  # then this long at most for replies to orders in flight
MAX_RESEND_DOUBLINGS = RESEND_SPAN.bit_length() - 1  # the re-send wait grows to 16 x order_timeout_s at most
BOOK_CHECK_NS = 50_000_000  # how often the book writer's liveness is looked at (it costs a syscall)
NEVER = 1 << 62             # a re-send time no clock reaches: nothing pending
_new = tuple.__new__
FILLED = wire.FILLED


class StrategyProcess(Service):
    kind = "strategy"

    def open(self) -> dict[str, str]:
        topo, spec = self.topo, self.topo.strategies[self.name]
        self.book = self.own(Book.attach(self.args.book, timeout=5.0))
        self.mine = {self.book.index[s] for s in spec.symbols}
        self.strategy: Strategy = load_strategy_class(spec.cls)(self.name, spec.symbols, spec.qty, spec.params)
        self.pipe: BellReader | None = None
        if spec.doorbell == "pipe":  # made before subscribing: the subscription tells the orderbook to open it
            self.pipe = self.own(BellReader(self.args.book, self.name))
            self.doorbell = self.subscribe("orderbook.doorbell", topo.orderbook.hwm, topic=sockets.NOTHING)
        else:
            self.doorbell = self.subscribe("orderbook.doorbell", topo.orderbook.hwm)
        self.news = self.subscribe("gateway.news", topo.gateway.hwm)
        # no routing id of our own: the order manager's ROUTER names each connection itself, so
        # replies go back on the connection an order came in on and no client can claim ours
        self.orders = self.track(sockets.dealer(self.ctx, topo.ordermanager.endpoint, None,
                                                curve=self.curve("ordermanager.endpoint"), heartbeat=self.heartbeat))
        self.pending: dict[int, tuple[OrderRequest, wire.Order, int, int]] = {}  # clordid -> (req, sent, due, re-sends)
        self._queued: list[tuple[int, OrderRequest, int, int, int]] = []
        self.first_clordid = self.next_clordid = clock.now_ns()  # until the positions answer says
        self.timeout_ns = int(spec.order_timeout_s * 1e9)
        self._resend_at = NEVER  # monotonic ns when the first pending order is due again, or earlier
        self.keep_warm_ns = int(spec.keep_warm_ms * 1e6)
        self._order_path_used = 0  # monotonic ns of the last send on the order socket
        self.acked = IdRanges()
        self.resumed: dict[str, int] = {}  # what the order manager said this strategy held at start
        self.max_book_age_ns = int(spec.book_max_age_s * 1e9)
        self._book_problem: str | None = None
        self._book_checked = 0
        self.latency = {name: metrics.Histogram() for name in metrics.ORDER_HOPS}
        self.hops = metrics.Rows(self.latency.values())
        self.staleness = metrics.Histogram()
        self.conflate = spec.conflate
        self.bell_seq = SeqCheck(self.counters, "doorbell_gaps", joined_late=self.args.life > 1)
        self.news_seq = SeqCheck(self.counters, "news_gaps", joined_late=self.args.life > 1)
        self.counters.update(doorbells=0, quotes_read=0, unwritten_skipped=0,
                             news_received=0, orders_sent=0, order_messages=0, orders_acked=0,
                             orders_rejected=0, orders_resent=0, duplicate_replies=0, unmatched_replies=0,
                             resubscribed=0, stale_book_skips=0, stale_book_periods=0, tick_acks=0, tick_to_ack_us=0,
                             pings=0)
        return {}

    def await_ready(self, deadline: float) -> None:
        if self.pipe is not None:
            self.bell_seq.welcome(self.pipe.await_welcome(deadline, self.stop_requested))
        else:
            self.bell_seq.welcome(sockets.await_welcome(self.doorbell, deadline, self.stop_requested))
        self.news_seq.welcome(sockets.await_welcome(self.news, deadline, self.stop_requested))
        answer = self.ask_positions(deadline)
        # ids count up from the order manager's clock as it answered: above any id a previous
        # life could have used (it would have to send one order per nanosecond to catch up), and
        # never ahead of the clock the order manager checks ids against
        self.first_clordid = self.next_clordid = max(self.next_clordid, answer.ts_ns)
        self.resumed = {h.symbol: h.position for h in answer.holdings if h.position}
        if self.resumed:
            self.log.info("resuming from the order manager's positions: %s",
                          " ".join(f"{s} {q:+d}" for s, q in self.resumed.items()))
        self.strategy.start_from(answer.holdings)

    def ask_positions(self, deadline: float) -> wire.Positions:
        """Ask the order manager what this strategy holds; asked again every ``order_timeout_s``
        until it answers (it may be restarting too), up to ``deadline``."""
        ask = wire.encode_positions_ask(self.name, clock.now_ns())
        again = 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError("the order manager did not answer the positions ask")
            if now >= again:
                again = now + self.timeout_ns / 1e9
                try:
                    self.orders.send(ask, zmq.NOBLOCK)
                except zmq.Again:
                    pass  # not connected yet: asked again
            self.starting("asking the order manager for positions", 0, 0)
            if not self.orders.poll(min(100, max(1, int((min(again, deadline) - now) * 1000)))):
                continue
            try:
                kind, fields = wire.unpack(self.orders.recv(zmq.NOBLOCK))
                answer = wire.as_positions(fields) if kind is wire.Kind.POSITIONS else None
            except wire.WireError:
                self.counters["malformed_messages"] = self.counters.get("malformed_messages", 0) + 1
                continue
            if answer is None or answer.strategy != self.name:
                continue
            if answer.status != wire.OK:
                raise ResourceError(f"the order manager refused the positions ask: {answer.detail}")
            return answer

    # ------------------------------------------------------------------ orders
    def send_orders(self, orders: Iterable[OrderRequest], tick_ts: int, book_ts: int, decide_ts: int) -> None:
        """Queue orders; :meth:`flush_orders` sends everything one wake-up produced at once.

        Once told to stop, no new order goes out (the stream is over): the strategy only waits
        for the answers to those already sent, so it can end with none unanswered."""
        if self.stopping:
            return
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
        now = clock.now_ns()
        due = now + self.timeout_ns
        if not self.pending:
            self._resend_at = due
        out = []
        pending, name = self.pending, self.name
        for cid, req, tick_ts, book_ts, decide_ts in self._queued:
            # the NamedTuple's own __new__ is a Python function: a third of a microsecond more
            o = _new(wire.Order, (cid, name, req.symbol, req.side, req.qty, float(req.price), tick_ts, book_ts,
                                  decide_ts, now))
            pending[cid] = (req, o, due, 0)
            out.append(o)
        self._queued.clear()
        self._send(out, now)
        self.counters["orders_sent"] += len(out)

    def _send(self, out: list[wire.Order], now: int) -> None:
        self._order_path_used = now
        for i in range(0, len(out), wire.MAX_BATCH):
            try:
                self.orders.send(wire.encode_orders(out[i:i + wire.MAX_BATCH]), zmq.NOBLOCK)
                self.counters["order_messages"] += 1
            except zmq.Again:  # the order manager is away and our queue is full: the re-send timer retries
                self.counters["order_sends_deferred"] = self.counters.get("order_sends_deferred", 0) + 1
        if self._poller is not None:
            self._poller.touched(self.orders)  # a send may have taken the signal of a reply arriving

    def resend_due(self, now: int) -> None:
        """Send again every order unanswered past its due time (same id: the order manager answers
        a duplicate with the original reply). Each order's wait doubles per re-send, up to
        ``MAX_RESEND_DOUBLINGS``, so a long outage does not queue a copy per timeout of everything.
        ``_resend_at`` (the earliest due time, or earlier) makes the idle case one comparison."""
        if now < self._resend_at:  # NEVER included
            return
        pending = self.pending
        again = []
        for cid, (req, o, due, tries) in list(pending.items()):
            if due > now:
                continue
            o = o._replace(send_ts=now)
            pending[cid] = (req, o, now + (self.timeout_ns << min(tries + 1, MAX_RESEND_DOUBLINGS)), tries + 1)
            again.append(o)
        self._resend_at = min((e[2] for e in pending.values()), default=NEVER)
        if again:
            self.counters["orders_resent"] += len(again)
            self.log.warning("re-sending %d unanswered orders (first id %d)", len(again), again[0].clordid)
            self._send(again, now)

    def keep_warm(self, now: int) -> None:
        """PING the order manager if nothing has gone out on the order socket for ``keep_warm_ms``."""
        if not self.keep_warm_ns or self.stopping or now - self._order_path_used < self.keep_warm_ns:
            return
        self._order_path_used = now
        try:
            self.orders.send(wire.encode_ping(now), zmq.NOBLOCK)
        except zmq.Again:  # the order manager is away: its re-sends will tell
            return
        self.counters["pings"] += 1
        self._poller.touched(self.orders)  # type: ignore[union-attr]

    def next_wake_ms(self, now: int) -> int:
        """Poll timeout: until the first re-send or the next PING is due, at most 100 ms."""
        due = self._resend_at
        if self.keep_warm_ns and not self.stopping:
            due = min(due, self._order_path_used + self.keep_warm_ns)
        if due == NEVER:
            return 100
        return max(0, min(100, (due - now) // 1_000_000 + 1))

    def on_replies(self) -> None:
        self.drain_each(self.orders, REPLIES, self.on_reply_message, fast=fastwire.replies)

    def on_reply_message(self, replies: tuple[wire.Reply, ...]) -> None:
        """The replies of one message, as soon as it is in hand: its arrival is the ack time."""
        now = clock.now_ns()
        c = self.counters
        strategy = self.strategy
        for reply in replies:
            entry = self.pending.pop(reply.clordid, None)
            if entry is None:  # an answer to a re-sent order already answered, or not ours
                c["duplicate_replies" if self.first_clordid <= reply.clordid < self.next_clordid
                  else "unmatched_replies"] += 1
                continue
            req, sent, _, tries = entry
            if reply.status == FILLED:  # not .filled: a property is a Python call per reply
                c["orders_acked"] += 1
                self.acked.add(reply.clordid)
                strategy.record_fill(req)
                if sent.tick_ts and not tries:  # a re-sent order's stamps mix two sends: no hops
                    self.record_hops(sent, reply, now)
            else:
                c["orders_rejected"] += 1
                self.log.info("order %d %s %d %s rejected: %s", reply.clordid, req.side, req.qty, req.symbol,
                              reply.detail)
            strategy.on_reply(reply, req)
            orders = strategy.take_orders(None)
            if orders:
                self.send_orders(orders, 0, 0, clock.now_ns())

    def record_hops(self, o: wire.Order, r: wire.Reply, ack_ns: int) -> None:
        """Latency of each hop of a tick-driven order, from the stamps it and its reply carry."""
        took = ack_ns - o.tick_ts
        c = self.counters  # running totals, for the live view's mean over each report interval
        c["tick_acks"] += 1
        c["tick_to_ack_us"] += took // 1000
        self.hops.record((took, o.book_ts - o.tick_ts, o.decide_ts - o.book_ts, ack_ns - o.send_ts,  # ORDER_HOPS' order
                          r.recv_ts - o.send_ts, r.ts_ns - r.recv_ts, ack_ns - r.ts_ns))

    # ------------------------------------------------------------------ feeds
    def on_doorbells(self) -> wire.Eos | None:
        """Drain the doorbell and act on what changed; its end of stream, if it came.

        Conflating (the default) acts once per changed symbol of this strategy, on the newest
        value; ``conflate: false`` acts once per doorbell, in order.
        """
        c = self.counters
        if self.pipe is not None:
            bells, eos = self.pipe_doorbells()
        else:
            bells, eos = self.drain(self.doorbell, DOORBELL, seq=self.bell_seq)
            bells = [b for b in bells if not self.bell_seq.see(b.seq)]
        c["doorbells"] += len(bells)
        if self.conflate:
            if bells:
                self.act_on(set().union(*(b.slots for b in bells)) & self.mine)
        else:
            for bell in bells:
                self.act_on([s for s in bell.slots if s in self.mine])
        return eos

    def pipe_doorbells(self) -> tuple[list[wire.Doorbell], wire.Eos | None]:
        """The pipe's doorbells, sequence-checked in order; a welcome from a new orderbook
        session (it restarted) starts the count afresh right where it falls."""
        msgs, eos = self.pipe.messages()  # type: ignore[union-attr]
        bells = []
        seq = self.bell_seq
        for m in msgs:
            if type(m) is wire.Welcome:
                self.counters["resubscribed"] += 1
                if seq.welcome(m):
                    self.log.info("orderbook restarted (session %d): resynchronising", seq.session)
                    seq.resync()
            elif not seq.see(m.seq):
                bells.append(m)
        return bells, eos

    def book_problem(self) -> str | None:
        """Why the book is not to be traded on now, or None; looked at every 50 ms at most.
        Going stale and coming back are logged and counted (``stale_book_periods``)."""
        now = clock.now_ns()
        if now - self._book_checked < BOOK_CHECK_NS:
            return self._book_problem
        self._book_checked = now
        problem = self.book.writer_problem(self.max_book_age_ns, now)
        if problem and not self._book_problem:
            self.counters["stale_book_periods"] += 1
            self.log.warning("not trading: the book is stale (%s)", problem)
        elif self._book_problem and not problem:
            self.log.info("the book is live again; trading")
        self._book_problem = problem
        return problem

    def act_on(self, slots: Iterable[int]) -> None:
        c, strategy = self.counters, self.strategy
        if self.book_problem():
            c["stale_book_skips"] += 1
            return
        for slot in slots:
            quote = self.book.read(slot)
            if quote is None:
                c["unwritten_skipped"] += 1
                continue
            c["quotes_read"] += 1
            self.staleness.record(clock.now_ns() - quote.write_ts)
            orders = strategy.take_orders(strategy.on_quote(quote))
            if orders:
                self.send_orders(orders, quote.tick_ts, quote.write_ts, clock.now_ns())

    def on_news(self) -> wire.Eos | None:
        c = self.counters
        items, eos = self.drain(self.news, NEWS, seq=self.news_seq)
        symbols = self.strategy.symbols
        for news in items:
            if self.news_seq.see(news.seq):
                continue  # a repeat
            if news.symbol in symbols:
                if self.book_problem():
                    c["stale_book_skips"] += 1
                    continue
                orders = self.strategy.take_orders(self.strategy.on_news(news))
                if orders:  # news-driven: no tick behind it, so no tick-to-ack sample
                    self.send_orders(orders, 0, 0, clock.now_ns())
        c["news_received"] += len(items)
        return eos

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        bell_source = self.pipe.fd if self.pipe is not None else self.doorbell
        poller, ctl = self.poller(bell_source, self.news, self.orders)
        bell_eos: wire.Eos | None = None
        news_eos: wire.Eos | None = None
        eos_deadline = replies_deadline = 0.0
        wake_ms = self.next_wake_ms(clock.now_ns())
        while True:
            if self.stopping:
                now = time.monotonic()
                eos_deadline = eos_deadline or now + STOP_EOS_S
                if (bell_eos and news_eos) or now >= eos_deadline:
                    replies_deadline = replies_deadline or now + STOP_REPLIES_S
                    if not self.pending or now >= replies_deadline:
                        break
            events = poller.wait(min(wake_ms, 20 if self.stopping else 100))
            # the latency path first: a doorbell's orders go out before anything else is looked at
            if bell_source in events:
                bell_eos = bell_eos or self.on_doorbells()
                self.flush_orders()
            if self.orders in events:
                self.on_replies()
            if self.news in events:
                news_eos = news_eos or self.on_news()
            self.flush_orders()
            if ctl is not None and ctl in events:
                self.service_control()
            self.report_progress()
            now = clock.now_ns()  # one clock read for the timers below
            self.resend_due(now)
            self.keep_warm(now)
            wake_ms = self.next_wake_ms(now)
        self.bell_seq.end(bell_eos)
        self.news_seq.end(news_eos)
        if self.pending:
            self.log.warning("%d orders still unanswered at exit", len(self.pending))
        self.counters["orders_unanswered"] = len(self.pending)

    def stats(self) -> dict:
        """Adds the ids of every order this life of the strategy saw acked, as [first, last] runs,
        so a run (or a test) can check each is in the journal exactly once."""
        return {**super().stats(), "acked_ids": self.acked.runs, "position": dict(self.strategy.position),
                "resumed_positions": self.resumed}

    def latency_samples(self) -> dict[str, bytes]:
        self.hops.flush()
        return {**{name: rec.tobytes() for name, rec in self.latency.items()},
                "book_staleness": self.staleness.tobytes()}


def main(argv: Sequence[str] | None = None) -> int:
    return serve(StrategyProcess, argv)


if __name__ == "__main__":
    sys.exit(main())
