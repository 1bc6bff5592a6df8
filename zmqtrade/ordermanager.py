"""OrderManager process: a ROUTER that answers every order with a fill or a reject.

For each order: decode (a malformed body gets a reject naming the problem), validate, price it from the
shared book (buys at the ask, sells at the bid), risk-check, journal it, then ack. The orders of a message
(one ORDER, or an ORDERS batch) are decided in memory, then their fills go to the journal in one write,
and only then is the message answered: an acked order is always in the journal. With ``fsync: batch`` a
commit also flushes the disk (~0.1-0.5 ms), so the messages already queued share one commit (group commit,
32 orders at most); without it each message is committed as soon as it is decided, its reply not waiting
for the socket to be asked whether another is queued. A re-sent order gets its original answer
(:mod:`zmqtrade.duplicates`), never a second fill.

On a host without the orderbook (the book is shared memory, one per host), the order manager keeps its own
copy of the prices: it subscribes to the price feed itself and applies it to a private book, as the
orderbook would, before the orders of each wake-up.

It is also the book of record: every fill is booked in its ledger (:mod:`zmqtrade.ledger`: positions,
average prices, realized PnL, fees), which it reports as the run's results, and a strategy asks it for its
positions when it starts (POSITIONS_ASK, answered with POSITIONS, before the stack starts streaming too),
so a restarted strategy resumes instead of starting flat. Orders are accepted from every strategy of the
topology, ``external`` ones included. A PING is answered with a PONG and changes nothing: a strategy that
orders rarely sends one when quiet for ``keep_warm_ms``, so its next order finds warm threads.

A restarted order manager rebuilds from the journal before it binds: the ledger, the next order id, and
the duplicate filter (so an order filled just before a crash and re-sent gets its original fill). It
starts from its newest checkpoint (``checkpoint_every_s``, see :mod:`zmqtrade.checkpoint`) and replays
only the journal after it, so a restart costs what the state holds, not what the run did; while it replays
it tells the launcher how far it is, so a long replay is not taken for a hang.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence

import zmq

from zmqtrade import checkpoint, clock, fastwire, journal, sockets, wire
from zmqtrade.book import Book, segment_name
from zmqtrade.duplicates import DuplicateFilter
from zmqtrade.journal import FILENAME, Journal, JournalError, Position
from zmqtrade.ledger import PNL_PREFIX, Ledger
from zmqtrade.orderbook import PRICES, TickApplier
from zmqtrade.orderlog import OrderLog, shown
from zmqtrade.risk import RiskBook
from zmqtrade.runner import serve
from zmqtrade.seqcheck import SeqCheck
from zmqtrade.service import Service

MAX_DRAIN = 4096
MAX_FRAMES = 3
"""Frames of a message kept at most: two is valid, a third only says there were too many."""
BOOK_EVERY = 32
"""Fills booked in the ledger (prices, PnL, fees) this many at a time, or when it is read; positions move
at once (risk needs them). A run costs less than one at a time, and holds up the next message (~2 us a fill)."""
COMMIT_EVERY = 32
"""Orders decided before a group commit at the latest: a backlog is journaled and answered in slices, so
the first order of a long queue does not wait for the last (unbounded batches showed as om_process
p99 of 30-200 ms after a stall)."""
CLORDID_AHEAD_NS = 60 * 10**9
"""How far a client order id may be ahead of this clock (ids count up from CLOCK_MONOTONIC in ns, one
per order: no client gets ahead of the clock by sending). The margin covers clock offsets between hosts."""
SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)  # ints: pyzmq's flag enums cost a microsecond per or


class OrderManager(Service):
    kind = "ordermanager"

    def open(self) -> dict[str, str]:
        om = self.topo.ordermanager
        self.prices: zmq.Socket | None = None
        if om.host in self.topo.book_hosts():
            self.book = self.own(Book.attach(self.args.book, timeout=5.0))
        else:  # the shared book is on another host: keep our own from the feed
            self.book = self.own(Book.create(segment_name(f"{self.topo.name[:32]}_om"), self.topo.symbols))
            self.book.claim_writer()
            self.prices = self.subscribe("gateway.prices", self.topo.gateway.hwm)
            self.price_seq = SeqCheck(self.counters, "tick_gaps", "tick_duplicates", self.args.life > 1)
            self.applier = TickApplier(self.book, self.price_seq, self.counters)
            self.price_eos: wire.Eos | None = None
        self.commit_every = 1 if om.fsync == "order" else COMMIT_EVERY
        self.group_messages = om.fsync == "batch"
        """Batch the orders of several queued messages into one commit: worth it only when a commit costs a
        flush to disk. Otherwise each message is answered once decided, the socket not asked for another."""
        self.strategy_names = frozenset(self.topo.strategies)
        self.log_fills = self.args.log_orders
        """A log line per fill only when asked (``-v``): the journal holds every fill anyway, and formatting
        one cost a tenth of the order manager's time per order."""
        self.ledger = Ledger(om.fees)
        self.risk = RiskBook(om.risk, self.ledger.positions)
        self.next_order_id = 1
        self._records: list[bytes] = []               # journal lines of the batch being decided
        self._fills: list[tuple] = []  # fills whose positions moved, not yet booked (BOOK_EVERY)
        self._out: list[tuple[bytes, list | bytes, bool | None]] = []
        """(client, replies, to an ORDERS) or (client, a body made already, None): sent after the journal write."""
        self.orderlog = OrderLog(self.log.name)
        self.log_lines = self.orderlog.lines
        self.counters.update(orders_received=0, orders_filled=0, orders_rejected=0, duplicate_orders=0,
                             replies_undeliverable=0, journal_replayed=0, checkpoint_records=0, replies_forgotten_early=0,
                             orders_ahead_of_clock=0, positions_asked=0, pings_answered=0)
        self.filter = DuplicateFilter(om.replies_kept_s, om.replies_kept, self.counters, self.topo.strategies)
        self._recover()
        self.checkpoints: checkpoint.Writer | None = None
        if om.checkpoint_every_s:
            self.checkpoints = self.own(checkpoint.Writer(self.args.run_dir, self.journal.fd))
        self._checkpointed = -1 if self.counters["journal_replayed"] else self.journal.size
        """The journal size of the newest checkpoint: the state is checkpointed when they differ."""
        self._next_checkpoint = 0.0
        key = "ordermanager.endpoint"
        self.router = self.track(sockets.router(self.ctx, self.topo.bind_endpoint(key), curve=self.curve(key),
                                                heartbeat=self.heartbeat))
        return {key: self.bound(key, self.router)}

    def await_ready(self, deadline: float) -> None:
        if self.prices is not None:
            self.price_seq.welcome(sockets.await_welcome(self.prices, deadline, self.stop_requested))

    def apply_prices(self) -> None:
        """Bring our own book up to date with the price messages queued (before pricing orders)."""
        msgs, eos = self.drain(self.prices, PRICES, MAX_DRAIN, self.price_seq)
        self.price_eos = self.price_eos or eos
        self.applier.apply(msgs, [])

    def _recover(self) -> None:
        """Rebuild what the previous lives decided: from the checkpoint if it matches the journal,
        then the journal after it; or the whole journal."""
        path = self.args.run_dir / FILENAME
        state, why = checkpoint.load(self.args.run_dir, path)
        start = Position()
        self._positions_from = 0  # records before this only rebuild the duplicate filter
        if why:
            self.log.warning("checkpoint set aside, replaying the whole journal: %s", why)
        if state is not None:
            self.next_order_id = state.next_order_id
            self.ledger.load_rows(state.ledger)
            self.filter.forgotten.update(state.forgotten)
            start, self._positions_from = state.window, state.at.records
            self.counters["checkpoint_records"] = state.at.records
        self._replay_index = start.records
        self._replay_started = time.monotonic()
        om = self.topo.ordermanager  # the filter may hold a commit past replies_kept: twice it is ample
        self.journal = self.own(Journal(path, om.fsync, self.replay, start, self._replay_progress, 2 * om.replies_kept))
        replayed = self.journal.records - self._positions_from
        self.counters["journal_replayed"] = replayed
        if self.journal.records:
            self.log.info("rebuilt %d fills%s in %.2f s, next order id %d%s", self.journal.records,
                          f" (checkpoint of {self._positions_from}, then {replayed} replayed)" if state else "",
                          time.monotonic() - self._replay_started, self.next_order_id,
                          f"; cut a torn last record of {self.journal.torn_bytes} bytes" if self.journal.torn_bytes else "")

    def _replay_progress(self, done: int, total: int) -> None:
        self.starting("replaying the journal", done, total)

    def snapshot(self) -> checkpoint.State:
        """The state at the journal's end (between commits), and where a replay rebuilds the filter from."""
        return checkpoint.State(self.journal.position, self.journal.back(len(self.filter)), self.next_order_id,
                                self._booked().rows(), dict(self.filter.forgotten))

    def periodic(self) -> None:
        """A checkpoint every ``checkpoint_every_s`` while fills are journaled (written aside, on
        the checkpoint thread)."""
        if self.checkpoints is None or self._records:
            return
        now = time.monotonic()
        if now >= self._next_checkpoint and self.journal.size != self._checkpointed:
            self._next_checkpoint = now + self.topo.ordermanager.checkpoint_every_s
            self._checkpointed = self.journal.size
            self.checkpoints.submit(self.snapshot())
        self._count_checkpoints()

    def replay(self, rec: dict) -> None:
        """Rebuild positions, order ids and the duplicate filter from a previous life's record
        (only the filter, for the records a checkpoint's positions already hold)."""
        self._replay_index += 1
        try:
            o = journal.as_order(rec)
            if self._replay_index > self._positions_from:
                self.ledger.replay(rec)
        except (KeyError, TypeError) as exc:
            raise JournalError(f"{self.args.run_dir / FILENAME}: a record without a valid {exc} field; "
                               f"not replayed (move the journal aside to start afresh)") from None
        recv_ts = rec["recv_ts"]
        self.filter.keep(o.strategy, o.clordid, (o.clordid, wire.FILLED, rec["order_id"], rec["price"], recv_ts, recv_ts),
                         min(rec.get("decide_ts", recv_ts), recv_ts), recv_ts)
        self.next_order_id = max(self.next_order_id, rec["order_id"] + 1)

    def _reply(self, identity: bytes, body: bytes) -> None:
        try:  # two sends, not send_multipart: a third less time in pyzmq per reply
            self.router.send(identity, SNDMORE_NOBLOCK)
            self.router.send(body, zmq.NOBLOCK)
        except zmq.ZMQError:  # client gone (ROUTER_MANDATORY) or its queue full
            self.counters["replies_undeliverable"] += 1

    def _validate(self, o: wire.Order) -> str | None:  # (the price is finite: wire.as_order saw to it)
        if o.symbol not in self.book.index:
            return f"unknown symbol {wire.brief(o.symbol)}"
        if o.side not in wire.SIDES:
            return f"side must be BUY or SELL, got {wire.brief(o.side)}"
        if o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if not o.price > 0:
            return f"price must be > 0, got {o.price!r}"
        return None

    def _reject(self, cid: int, reason: str, recv_ts: int, what: str | wire.Order) -> list:
        """A reject's reply fields; its log line names the order (its text cut short if hostile)."""
        self.counters["orders_rejected"] += 1
        if type(what) is wire.Order:
            what = f"{shown(what.strategy)} {shown(what.side)} {what.qty} {shown(what.symbol)}"
        self.log_lines.append(f"order - {what} rejected: {reason}")
        return [cid, wire.REJECTED, 0, reason, recv_ts, clock.now_ns()]

    def handle(self, frames: list[bytes], sender: str | None = None) -> None:
        """Decide every order of one ORDER or ORDERS (what a client produced in one wake-up); the
        replies, one per order in order, wait in ``_out`` for :meth:`commit`. ``sender`` is the name
        of the client's CURVE key (None without CURVE): an order may only name it as its strategy."""
        c = self.counters
        recv_ts = clock.now_ns()
        message = fastwire.orders(frames[1]) if len(frames) == 2 else None  # well-formed, decoded in C
        if message is None and (message := self._checked(frames, sender, recv_ts)) is None:
            return
        batch, items = message  # an ORDERS is answered with one REPLIES, whatever it held
        replies: list[list | tuple] = []
        for item in items:
            c["orders_received"] += 1
            try:
                o = item if type(item) is wire.Order else wire.as_order(item)
            except wire.WireError as exc:
                c["malformed_messages"] += 1
                cid = item[0] if type(item) is tuple and item and type(item[0]) is int else -1
                replies.append(self._reject(cid, f"malformed: {exc}", recv_ts, "from a client"))
                continue
            if sender is not None and o.strategy != sender:
                c["orders_impersonating"] = c.get("orders_impersonating", 0) + 1
                replies.append(self._reject(o.clordid, f"strategy {wire.brief(o.strategy)} is not this client's own "
                                            f"(its key is {sender!r})", recv_ts, f"from {sender}"))
                continue
            replies.append(self.decide(o, recv_ts))
        self._out.append((frames[0], replies, batch))

    def _checked(self, frames: list[bytes], sender: str | None, recv_ts: int) -> tuple[bool, tuple] | None:
        """A body :mod:`zmqtrade.fastwire` did not take, decoded by the checked decoders (they say what
        is wrong): an ORDER's or ORDERS' (batch, items), or None once anything else is answered."""
        identity = frames[0]
        batch = False
        try:
            if len(frames) != 2:
                raise wire.WireError("expected one body frame after the routing id, got "
                                     + (f"{len(frames) - 1}" if len(frames) < MAX_FRAMES else "more"))
            kind, fields = wire.unpack(frames[1])
            if kind is wire.Kind.ORDER:
                return False, (fields,)
            if kind is wire.Kind.ORDERS:
                batch = True
                return True, wire.as_batch(fields)
            if kind is wire.Kind.PING:  # a quiet client keeping its order path warm: answered, nothing kept
                self._out.append((identity, wire.encode_pong(wire.as_ping(fields)), None))
                self.counters["pings_answered"] += 1
            elif kind is wire.Kind.POSITIONS_ASK:
                self._out.append((identity, self._positions(fields, sender), None))
            else:
                raise wire.WireError(f"expected an ORDER, ORDERS, PING or POSITIONS_ASK, got {kind.name}")
        except wire.WireError as exc:
            self.counters["orders_received"] += 1
            self.counters["malformed_messages"] += 1
            cid = wire.order_clordid(frames[1]) if len(frames) == 2 and not batch else None
            self._out.append((identity, [self._reject(cid if cid is not None else -1, f"malformed: {exc}",
                                                      recv_ts, "from a client")], batch))
        return None

    def _positions(self, fields: tuple, sender: str | None) -> bytes:
        """The answer to a POSITIONS_ASK (sent after this wake-up's journal write, like a reply,
        so it never shows a fill not yet journaled)."""
        self.counters["positions_asked"] += 1
        ledger = self._booked()  # the answer shows this batch's fills decided before it
        body, line, malformed = ledger.answer(fields, sender, self.strategy_names, clock.now_ns())
        self.counters["malformed_messages"] += malformed
        self.log_lines.append(line)
        return body

    def decide(self, o: wire.Order, recv_ts: int) -> list | tuple:
        """Fill or reject one well-formed order; the reply's fields (sent time stamped at commit).
        Its fields are unpacked once: read one by one, they cost a microsecond per order."""
        cid, strategy, symbol, side, qty, _, _, _, decide_ts, _ = o
        c, filt = self.counters, self.filter
        if strategy not in self.strategy_names:  # first, and remembered nowhere: no state for strangers
            return self._reject(cid, f"unknown strategy {wire.brief(strategy)}", recv_ts, o)
        held = filt.kept.get(strategy)  # a re-send gets its original answer; a new id is above all held
        if held is not None and cid <= held.hi and (answer := filt.answer(strategy, cid)) is not None:
            c["duplicate_orders"] += 1
            return answer
        if decide_ts <= filt.forgotten.get(strategy, -1):  # filt.too_old, inlined
            c["duplicate_orders"] += 1
            return self._reject(cid, filt.too_old_reason(strategy, decide_ts), recv_ts, o)
        if cid > recv_ts + CLORDID_AHEAD_NS:  # remembered nowhere: a forged id holds no place in the filter
            c["orders_ahead_of_clock"] += 1
            return self._reject(cid, f"clordid {cid} is ahead of the clock: ids count up from "
                                f"CLOCK_MONOTONIC in ns (now {recv_ts})", recv_ts, o)
        age = decide_ts if decide_ts < recv_ts else recv_ts
        reason = self._validate(o)
        if reason is None:
            touch = self.book.bid_ask(self.book.index[symbol])
            if touch is None:
                reason = f"no market in {symbol} yet"
            else:
                fill = touch[1] if side == "BUY" else touch[0]
                reason = self.risk.take(o, recv_ts)  # last: only a fillable order spends a rate token
        if reason is not None:
            return filt.remember(strategy, cid, self._reject(cid, reason, recv_ts, o), age, recv_ts)
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        ledger = self.ledger
        fee = ledger.fees.of(qty, fill) if ledger.charging else 0.0
        signed, pos = qty if side == "BUY" else -qty, (strategy, symbol)
        self._fills.append((pos, ledger.move(pos, signed), signed, fill, fee))  # booked later (BOOK_EVERY)
        self._records.append(journal.record(order_id, o, fill, recv_ts, fee))
        c["orders_filled"] += 1
        if self.log_fills:
            self.log_lines.append((order_id, strategy, side, qty, symbol, fill))  # formatted once the reply is out
        return filt.remember(strategy, cid, [cid, wire.FILLED, order_id, fill, recv_ts, 0], age, recv_ts)

    def commit(self) -> None:
        """Group commit: journal every fill of the batch in one write, then send the replies;
        what is not needed to answer (the reply cache, log lines) waits until they are sent."""
        if not self._out:
            return
        if self._records:
            self.journal.append_lines(self._records)
            self._records.clear()
        self.filter.stamp(clock.now_ns())  # after the journal write, so om_process includes it
        for identity, replies, batch in self._out:
            self._reply(identity, replies if batch is None else wire.encode_replies(replies, batch))
        self._out.clear()
        if self._poller is not None:
            self._poller.touched(self.router)  # a send may have taken the signal of an order arriving
        self.filter.settle()
        if len(self._fills) >= BOOK_EVERY:
            self._booked()
        if self.log_lines:
            self.orderlog.format()

    def _booked(self) -> Ledger:
        """The ledger, with every fill decided so far booked in it."""
        book = self.ledger.book
        for fill in self._fills:
            book(*fill)
        self._fills.clear()
        return self.ledger

    def take_orders(self) -> None:
        """Decide what is queued on the ROUTER, committing every ``commit_every`` orders."""
        named = self.security is not None
        router = self.router
        poller = self._poller
        for i in range(MAX_DRAIN):
            if i == 1 and not self.group_messages and not poller.more(router):
                break  # one message a wake-up, answered: no failing receive after it
            try:
                self.handle(*sockets.recv_routed(router, MAX_FRAMES, named))
            except zmq.Again:
                poller.settled(router)
                break
            if not self.group_messages or len(self.filter.fresh) >= self.commit_every:
                self.commit()
                if i & 63 == 63:
                    self.report_progress()  # a long backlog (fsync per order) is not a hang
        else:
            poller.touched(router)  # stopped short of EAGAIN: more is queued
        self.commit()

    def served_before_start(self) -> list[zmq.Socket]:
        """The order socket: a strategy asks for its positions before it is ready (the stack starts)."""
        return [self.router]

    def serve_before_start(self) -> None:
        self.take_orders()

    def run(self) -> None:
        poller, ctl = self.poller(self.router, *([self.prices] if self.prices is not None else []))
        while True:
            ready = poller.wait(100)
            if self.prices is not None and self.prices in ready:
                self.apply_prices()  # before pricing this wake-up's orders
            if self.router in ready or self.stopping:
                self.take_orders()
            elif not ready:
                self.orderlog.write()  # idle: the log catches up
            self.report_progress()
            if ctl is not None and ctl in ready:
                self.service_control()
            if self.stopping and not self.router.poll(0):
                break
        self.orderlog.write()
        if self.prices is not None:
            self.price_seq.end(self.price_eos)
        if self.checkpoints is not None:  # the next life starts here, replaying nothing
            self.checkpoints.close(self.snapshot() if self.journal.size != self._checkpointed else None)
            self._count_checkpoints()

    def progress_payload(self) -> dict[str, int | float]:
        """The counters and each strategy's net PnL now (``pnl.<strategy>``): PnL over the run."""
        ledger = self._booked()
        net = ledger.net(self.book.mids()) if ledger.lines else {}
        return {**self.counters, **{f"{PNL_PREFIX}{s}": round(net.get(s, 0.0), 6) for s in self.topo.strategies}}

    def stats(self) -> dict:
        """Adds the book of record: each strategy's positions and PnL (the report's ``strategies``)."""
        return {**super().stats(), "strategies": self._booked().results(self.topo.strategies, self.book.mids())}

    def _count_checkpoints(self) -> None:
        self.counters["checkpoints_written"] = self.checkpoints.written
        if self.checkpoints.failed:
            self.counters["checkpoint_failures"] = self.checkpoints.failed


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderManager, argv)


if __name__ == "__main__":
    sys.exit(main())
