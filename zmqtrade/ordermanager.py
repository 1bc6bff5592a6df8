"""OrderManager process: a ROUTER that answers every order with a fill or a reject.

For each order: decode (a malformed body gets a reject naming the problem), validate, price
it from the shared book (buys at the ask, sells at the bid), risk-check, journal it, then ack.
The orders of a message (one ORDER, or an ORDERS batch) are decided in memory, then their
fills go to the journal in one write, and only then is the message answered: an acked order
is always in the journal. With ``fsync: batch`` a commit also flushes the disk (~0.1-0.5 ms),
so the messages already queued share one commit (group commit, 32 orders at most); without it
each message is committed as soon as it is decided, its reply not waiting for the socket to be
asked whether another is queued. A repeated client order id from the same strategy (a re-send
after a timeout) is answered with the original reply and never filled twice.

On a host without the orderbook (the book is shared memory, one per host), the order
manager keeps its own copy of the prices: it subscribes to the price feed itself and applies
it to a private book, as the orderbook would, before the orders of each wake-up.

It is also the book of record: every fill is booked in its ledger (:mod:`zmqtrade.ledger`:
positions, average prices, realized PnL, fees), which it reports as the run's results, and a
strategy asks it for its positions when it starts (POSITIONS_ASK, answered with POSITIONS,
before the stack starts streaming too), so a restarted strategy resumes instead of starting
flat. Orders are accepted from every strategy of the topology, ``external`` ones included.

A restarted order manager rebuilds from the journal before it binds: the ledger, the next
order id, and the duplicate filter (the fills of the last ``replies_kept_s``). So a strategy re-sending
an order that was filled just before a crash gets the original fill, not a second one. It starts
from its newest checkpoint (``checkpoint_every_s``, see :mod:`zmqtrade.checkpoint`) and replays
only the journal after it, so a restart costs what the state holds, not what the run did; while
it replays it tells the launcher how far it is, so a long replay is not taken for a hang.

The filter keeps answers for ``replies_kept_s`` (by when they were made: at least a strategy's
longest re-send interval) and ``replies_kept`` of them at most (its memory bound). It forgets
by age, not by client order id: an order it holds no answer for is refused
as too old to replay only if it was decided (its ``decide_ts``, which a re-send keeps) no later
than the newest answer forgotten for that strategy. An id says nothing about age: when it did,
one forged order with clordid 2^64-1, pushed out of the filter, made every later order of that
strategy "too old". A forged time cannot do the same: an answer is aged at the earlier of the
order's ``decide_ts`` and the time it was received. And an id ahead of the clock (strategies
number up from it) is refused before the filter sees it.
"""
from __future__ import annotations

import math
import sys
import time
from collections import deque
from typing import Sequence

import zmq

from zmqtrade import checkpoint, clock, journal, sockets, wire
from zmqtrade.book import Book, segment_name
from zmqtrade.journal import FILENAME, Journal, JournalError, Position
from zmqtrade.ledger import PNL_PREFIX, Ledger
from zmqtrade.risk import RiskBook
from zmqtrade.orderbook import PRICES, TickApplier
from zmqtrade.service import LOG_DATEFMT, SeqCheck, Service, serve

MAX_DRAIN = 4096
MAX_FRAMES = 3
"""Frames of a message kept at most: two is valid, a third only says there were too many."""
COMMIT_EVERY = 32
"""Orders decided before a group commit at the latest: a backlog is journaled and answered in
slices, so the first order of a long queue does not wait for the last (unbounded batches
showed as om_process p99 of 30-200 ms after a stall)."""
CLORDID_AHEAD_NS = 60 * 10**9
"""How far a client order id may be ahead of this clock (ids count up from CLOCK_MONOTONIC in ns,
one per order: no client gets ahead of the clock by sending). The margin covers clock offsets
between hosts."""
SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)  # ints: pyzmq's flag enums cost a microsecond per or
NOBLOCK, RCVMORE = int(zmq.NOBLOCK), int(zmq.RCVMORE)
LOG_EVERY_S = 0.1
"""Per-order log lines are written at most this often (and whenever the process idles), one
write for all of them: a write per group commit cost a syscall and a timestamp per order."""


class OrderManager(Service):
    kind = "ordermanager"

    def open(self) -> dict[str, str]:
        om = self.topo.ordermanager
        self.prices: zmq.Socket | None = None
        if self.topo.host_of("orderbook") == om.host:
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
        """Batch the orders of several queued messages into one commit: worth it only when a commit
        costs a flush to disk. Otherwise each message is answered as soon as it is decided, without
        first asking the socket (a syscall) whether another is queued."""
        self.strategy_names = frozenset(self.topo.strategies)
        self.log_fills = self.args.log_orders
        """A log line per fill only when asked (``-v``): the journal holds every fill anyway, and
        formatting one cost a tenth of the order manager's time per order."""
        self.ledger = Ledger(om.fees)
        self.risk = RiskBook(om.risk, self.ledger.positions)
        self.replies: dict[tuple[str, int], list | tuple] = {}  # (strategy, clordid) -> reply fields
        self._kept: deque[tuple[tuple[str, int], int, int]] = deque()  # (key, age, answered at) ns, oldest first
        self.keep_ns = int(om.replies_kept_s * 1e9)
        self.keep_max = om.replies_kept
        self._fresh: list[tuple[tuple[str, int], list]] = []    # this batch's remembered replies, to stamp
        self.forgotten: dict[str, int] = {}             # strategy -> newest age (ns) evicted from replies
        self.next_order_id = 1
        self._records: list[str] = []                 # journal lines of the batch being decided
        self._out: list[tuple[bytes, list | bytes, bool | None]] = []
        """(client, replies, to an ORDERS) or (client, a body made already, None): sent after the journal write."""
        self._lines: list[str | tuple] = []           # this commit's log lines (a fill: its fields), to format
        self._log_text: list[str] = []                # formatted lines waiting to be written
        self._log_due = 0.0                           # when the oldest of those must be written
        self._log_second, self._log_stamp = -1, ""
        self.counters.update(orders_received=0, orders_filled=0, orders_rejected=0, duplicate_orders=0,
                             replies_undeliverable=0, journal_replayed=0, checkpoint_records=0,
                             replies_forgotten_early=0, orders_ahead_of_clock=0, positions_asked=0)
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
            self.forgotten.update(state.forgotten)
            start, self._positions_from = state.window, state.at.records
            self.counters["checkpoint_records"] = state.at.records
        self._replay_index = start.records
        self._replay_started = time.monotonic()
        self.journal = self.own(Journal(path, self.topo.ordermanager.fsync, self.replay, start, self._replay_progress))
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
        """The state as of the journal's end (between commits: every decided fill is written)."""
        return checkpoint.State(self.journal.position, Position(), self.next_order_id, self.ledger.rows(),
                                dict(self.forgotten))

    def periodic(self) -> None:
        """A checkpoint every ``checkpoint_every_s`` while fills are journaled (written aside, on
        the checkpoint thread)."""
        if self.checkpoints is None or self._records:
            return
        now = time.monotonic()
        if now >= self._next_checkpoint and self.journal.size != self._checkpointed:
            self._next_checkpoint = now + self.topo.ordermanager.checkpoint_every_s
            self._checkpointed = self.journal.size
            self.checkpoints.submit(self.snapshot(), len(self._kept))
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
        self._keep((o.strategy, o.clordid), (o.clordid, wire.FILLED, rec["order_id"], rec["price"], recv_ts, recv_ts),
                   min(rec.get("decide_ts", recv_ts), recv_ts), recv_ts)
        self.next_order_id = max(self.next_order_id, rec["order_id"] + 1)

    def _reply(self, identity: bytes, body: bytes) -> None:
        try:  # two sends, not send_multipart: a third less time in pyzmq per reply
            self.router.send(identity, SNDMORE_NOBLOCK)
            self.router.send(body, zmq.NOBLOCK)
        except zmq.ZMQError:  # client gone (ROUTER_MANDATORY) or its queue full
            self.counters["replies_undeliverable"] += 1

    def _validate(self, o: wire.Order) -> str | None:
        if o.symbol not in self.book.index:
            return f"unknown symbol {wire.brief(o.symbol)}"
        if o.side not in wire.SIDES:
            return f"side must be BUY or SELL, got {wire.brief(o.side)}"
        if o.qty <= 0:
            return f"qty must be > 0, got {o.qty}"
        if not (o.price > 0 and math.isfinite(o.price)):
            return f"price must be > 0, got {o.price!r}"
        return None

    def _remember(self, key: tuple[str, int], reply: list, age_ns: int, now_ns: int) -> list:
        """Keep this batch's ``reply`` for re-sends (:meth:`_keep`). The list is stamped at commit
        and then stored as a tuple of plain values, which the cyclic garbage collector stops
        tracking: a cache of lists made every full collection walk tens of thousands of objects,
        a multi-millisecond pause seen as p99 latency."""
        self._fresh.append((key, reply))
        return self._keep(key, reply, age_ns, now_ns)

    def _keep(self, key: tuple[str, int], reply: list | tuple, age_ns: int, now_ns: int) -> list | tuple:
        """Keep ``reply`` for re-sends, answered at ``now_ns``; forget answers older than
        ``replies_kept_s`` (and the oldest past ``replies_kept``, the memory bound), but not the
        age of each (``age_ns``, see the module's doc).

        Answers expire by the time they were made (our clock), never by a time the client sent.
        The oldest is found in ``_kept``, not as ``next(iter(replies))``: a dict emptied from the
        front skips its deleted entries on every such call (a quarter of the CPU at 10k orders/s).
        """
        replies = self.replies
        replies[key] = reply
        kept = self._kept
        kept.append((key, age_ns, now_ns))
        horizon = now_ns - self.keep_ns
        while kept and (kept[0][2] < horizon or len(replies) > self.keep_max):
            old, age, made = kept.popleft()
            del replies[old]
            if made >= horizon:
                self.counters["replies_forgotten_early"] += 1  # the count bound, not the age, forgot it
            strategy = old[0]
            if age > self.forgotten.get(strategy, -1):
                self.forgotten[strategy] = age
        return reply

    def _reject(self, cid: int, reason: str, recv_ts: int, what: str | wire.Order) -> list:
        """A reject's reply fields; its log line names the order (its text cut short if hostile)."""
        self.counters["orders_rejected"] += 1
        if type(what) is wire.Order:
            what = f"{_shown(what.strategy)} {_shown(what.side)} {what.qty} {_shown(what.symbol)}"
        self._lines.append(f"order - {what} rejected: {reason}")
        return [cid, wire.REJECTED, 0, reason, recv_ts, clock.now_ns()]

    def handle(self, frames: list[bytes], sender: str | None = None) -> None:
        """Decide every order of one message; its replies wait in ``_out`` for :meth:`commit`.

        A message is one ORDER or an ORDERS batch (what a client produced in one wake-up);
        it is answered with one REPLY or one REPLIES message holding a reply per order, in order.
        ``sender`` is the name of the client's CURVE key (None without CURVE): an order may only
        name its sender as its strategy.
        """
        c = self.counters
        recv_ts = clock.now_ns()
        identity = frames[0]
        batch = False  # an ORDERS is answered with one REPLIES, whatever it held
        try:
            if len(frames) != 2:
                raise wire.WireError("expected one body frame after the routing id, got "
                                     + (f"{len(frames) - 1}" if len(frames) < MAX_FRAMES else "more"))
            kind, fields = wire.unpack(frames[1])
            if kind is wire.Kind.ORDER:
                items: tuple = (fields,)
            elif kind is wire.Kind.ORDERS:
                batch = True
                items = wire.as_batch(fields)
            elif kind is wire.Kind.POSITIONS_ASK:
                self._out.append((identity, self._positions(fields, sender), None))
                return
            else:
                raise wire.WireError(f"expected an ORDER, ORDERS or POSITIONS_ASK, got {kind.name}")
        except wire.WireError as exc:
            c["orders_received"] += 1
            c["malformed_messages"] += 1
            cid = wire.order_clordid(frames[1]) if len(frames) == 2 and not batch else None
            self._out.append((identity, [self._reject(cid if cid is not None else -1, f"malformed: {exc}",
                                                      recv_ts, "from a client")], batch))
            return
        replies: list[list | tuple] = []
        for item in items:
            c["orders_received"] += 1
            try:
                o = wire.as_order(item)
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
        self._out.append((identity, replies, batch))

    def _positions(self, fields: tuple, sender: str | None) -> bytes:
        """The answer to a POSITIONS_ASK: what the strategy holds, from the ledger (sent after
        this wake-up's journal write, like a reply, so it never shows a fill not yet journaled)."""
        c = self.counters
        c["positions_asked"] += 1
        try:
            ask = wire.as_positions_ask(fields)
        except wire.WireError as exc:
            c["malformed_messages"] += 1
            self._lines.append(f"positions ask from a client rejected: malformed: {exc}")
            return wire.encode_positions("", None, clock.now_ns(), f"malformed: {exc}")
        name = ask.strategy
        if name not in self.strategy_names:
            reason = f"unknown strategy {wire.brief(name)}"
        elif sender is not None and name != sender:
            reason = f"strategy {wire.brief(name)} is not this client's own (its key is {sender!r})"
        else:
            holdings = self.ledger.holdings(name)
            self._lines.append(f"positions of {name} asked: {len(holdings)} symbols, "
                               f"{sum(1 for h in holdings if h.position)} open")
            return wire.encode_positions(name, holdings, clock.now_ns())
        self._lines.append(f"positions ask for {_shown(name)} rejected: {reason}")
        return wire.encode_positions(name, None, clock.now_ns(), reason)

    def decide(self, o: wire.Order, recv_ts: int) -> list | tuple:
        """Fill or reject one well-formed order; the reply's fields (sent time stamped at commit)."""
        c = self.counters
        if o.strategy not in self.strategy_names:  # first, and remembered nowhere: no state for strangers
            return self._reject(o.clordid, f"unknown strategy {wire.brief(o.strategy)}", recv_ts, o)
        key = (o.strategy, o.clordid)
        previous = self.replies.get(key)
        if previous is not None:
            c["duplicate_orders"] += 1
            return previous
        if o.decide_ts <= self.forgotten.get(o.strategy, -1):
            c["duplicate_orders"] += 1
            return self._reject(o.clordid, "duplicate of an order too old to replay; not filled again", recv_ts, o)
        if o.clordid > recv_ts + CLORDID_AHEAD_NS:  # remembered nowhere: a forged id holds no place in the filter
            c["orders_ahead_of_clock"] += 1
            return self._reject(o.clordid, f"clordid {o.clordid} is ahead of the clock: ids count up from "
                                f"CLOCK_MONOTONIC in ns (now {recv_ts})", recv_ts, o)
        reason = self._validate(o)
        if reason is None:
            quote = self.book.read(self.book.index[o.symbol])
            if quote is None:
                reason = f"no market in {o.symbol} yet"
            else:
                fill = quote.ask if o.side == "BUY" else quote.bid
                reason = self.risk.take(o, recv_ts)  # last: only a fillable order spends a rate token
        if reason is not None:
            return self._remember(key, self._reject(o.clordid, reason, recv_ts, o), min(o.decide_ts, recv_ts), recv_ts)
        order_id = self.next_order_id
        self.next_order_id += 1
        ledger = self.ledger
        fee = ledger.fees.of(o.qty, fill) if ledger.charging else 0.0
        ledger.fill((o.strategy, o.symbol), o.qty if o.side == "BUY" else -o.qty, fill, fee)
        self._records.append(journal.record(order_id, o, fill, recv_ts, fee))
        c["orders_filled"] += 1
        reply = self._remember(key, [o.clordid, wire.FILLED, order_id, fill, recv_ts, 0], min(o.decide_ts, recv_ts),
                               recv_ts)
        if self.log_fills:
            self._lines.append((order_id, o.strategy, o.side, o.qty, o.symbol, fill))  # formatted once the reply is out
        return reply

    def commit(self) -> None:
        """Group commit: journal every fill of the batch in one write, then send the replies;
        what is not needed to answer (the reply cache, log lines) waits until they are sent."""
        if not self._out:
            return
        if self._records:
            self.journal.append_lines(self._records)
            self._records.clear()
        now = clock.now_ns()
        for _, reply in self._fresh:  # sent time: after the journal write, so om_process includes it
            reply[5] = now
        for identity, replies, batch in self._out:
            self._reply(identity, replies if batch is None else wire.encode_replies(replies, batch))
        self._out.clear()
        if self._poller is not None:
            self._poller.touched(self.router)  # a send may have taken the signal of an order arriving
        replies = self.replies
        for key, reply in self._fresh:
            if key in replies:
                replies[key] = tuple(reply)
        self._fresh.clear()
        if self._lines:
            self._format_log()

    def _format_log(self) -> None:
        """Turn this commit's log entries into lines (after its replies are out); they are written
        together every LOG_EVERY_S, or when the process idles."""
        t = time.time()
        sec = int(t)
        if sec != self._log_second:  # one strftime per second, not per line
            self._log_second, self._log_stamp = sec, time.strftime(LOG_DATEFMT, time.localtime(sec))
        head = f"{self._log_stamp}.{int(t * 1000) % 1000:03d} INFO {self.log.name}: "
        out = self._log_text
        if not out:
            self._log_due = time.monotonic() + LOG_EVERY_S
        for line in self._lines:
            if type(line) is tuple:
                order_id, strategy, side, qty, symbol, fill = line
                out.append(f"{head}order {order_id} {strategy} {side} {qty} {symbol} @ {fill:.2f} filled\n")
            else:
                out.append(f"{head}{line}\n")
        self._lines.clear()
        if time.monotonic() >= self._log_due:
            self.write_log()

    def write_log(self) -> None:
        """Write the formatted log lines waiting, in one write."""
        if self._log_text:
            sys.stderr.write("".join(self._log_text))
            self._log_text.clear()

    def _recv_named(self) -> tuple[list[bytes], str | None]:
        """A message and its sender's key name (the ZAP User-Id libzmq attaches under CURVE)."""
        router = self.router
        frames = [router.recv(NOBLOCK)]
        user = None
        while router.get(RCVMORE):
            frame = router.recv(NOBLOCK, copy=False)
            if user is None:
                user = frame.get("User-Id")
            if len(frames) < MAX_FRAMES:
                frames.append(frame.bytes)
        return frames, user

    def _recv(self) -> list[bytes]:
        """A message's frames (recv_multipart without its flag enums: a microsecond less). A valid
        one has two (routing id, body); past MAX_FRAMES the rest are read and dropped, not held: a
        message of 3000 frames of 60 KB would otherwise be kept whole, ~180 MB."""
        router = self.router
        frames = [router.recv(NOBLOCK)]
        while router.get(RCVMORE):
            frame = router.recv(NOBLOCK)
            if len(frames) < MAX_FRAMES:
                frames.append(frame)
        return frames

    def take_orders(self) -> None:
        """Decide what is queued on the ROUTER, committing every ``commit_every`` orders."""
        named = self.security is not None
        router = self.router
        poller = self._poller
        for i in range(MAX_DRAIN):
            if i == 1 and not self.group_messages and not poller.more(router):
                break  # one message a wake-up, answered: no failing receive after it
            try:
                if named:
                    self.handle(*self._recv_named())
                else:
                    self.handle(self._recv())
            except zmq.Again:
                poller.settled(router)
                break
            if not self.group_messages or len(self._fresh) >= self.commit_every:
                self.commit()
                if i & 63 == 63:
                    self.report_progress()  # a long backlog (fsync per order) is not a hang
        else:
            poller.touched(router)  # stopped short of EAGAIN: more is queued
        self.commit()

    def served_before_start(self) -> list[zmq.Socket]:
        """The order socket: a strategy asks for its positions before it says it is ready, which
        is before the stack starts."""
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
                self.write_log()  # idle: the log catches up
            self.report_progress()
            if ctl is not None and ctl in ready:
                self.service_control()
            if self.stopping and not self.router.poll(0):
                break
        self.write_log()
        if self.prices is not None:
            self.price_seq.end(self.price_eos)
        if self.checkpoints is not None:  # the next life starts here, replaying nothing
            self.checkpoints.close(self.snapshot() if self.journal.size != self._checkpointed else None, len(self._kept))
            self._count_checkpoints()

    def marks(self) -> dict[str, float | None]:
        """Each symbol's mid in the book now (None before its first quote): what open positions
        are worth."""
        out: dict[str, float | None] = {}
        for sym, slot in self.book.index.items():
            q = self.book.read(slot)
            out[sym] = None if q is None else round((q.bid + q.ask) / 2, 6)
        return out

    def progress_payload(self) -> dict[str, int | float]:
        """The counters and each strategy's net PnL now (``pnl.<strategy>``): PnL over the run."""
        net = self.ledger.net(self.marks()) if self.ledger.lines else {}
        return {**self.counters, **{f"{PNL_PREFIX}{s}": round(net.get(s, 0.0), 6) for s in self.topo.strategies}}

    def stats(self) -> dict:
        """Adds the book of record: each strategy's positions and PnL (the report's ``strategies``)."""
        return {**super().stats(), "strategies": self.ledger.results(self.topo.strategies, self.marks())}

    def _count_checkpoints(self) -> None:
        self.counters["checkpoints_written"] = self.checkpoints.written
        if self.checkpoints.failed:
            self.counters["checkpoint_failures"] = self.checkpoints.failed


def _shown(text: str) -> str:
    """Client text for a log line: as is when short and printable, else quoted and cut (a newline
    in a symbol must not forge a log line, nor 20 KB of it flood the log)."""
    return text if len(text) <= 32 and text.isprintable() else wire.brief(text)


def main(argv: Sequence[str] | None = None) -> int:
    return serve(OrderManager, argv)


if __name__ == "__main__":
    sys.exit(main())
