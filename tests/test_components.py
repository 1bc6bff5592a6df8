"""Each component as a real process, with the test on the other end of its real sockets."""
from __future__ import annotations

import json
import os
import stat
import time

import msgpack
import pytest
import zmq

from conftest import BASE, DELETE
from zmqtrade import journal, metrics, sockets, wire
from zmqtrade.bell import EOS, BellWriter
from zmqtrade.bell import encode as encode_bell


def price_ticks(msgs: list) -> list[wire.Tick]:
    """Single ticks from TICK and TICKS messages, in order."""
    out: list[wire.Tick] = []
    for kind, fields in msgs:
        if kind is wire.Kind.TICK:
            out.append(wire.as_tick(fields))
        elif kind is wire.Kind.TICKS:
            out.extend(wire.as_ticks(fields).each())
    return out


def recv_until(sock: zmq.Socket, pred, timeout: float = 10.0) -> list:
    """Receive decoded (kind, fields) messages until ``pred(kind, fields)`` is true."""
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(50):
            kind, fields = wire.unpack(sock.recv())
            out.append((kind, fields))
            if pred(kind, fields):
                return out
    raise AssertionError(f"condition not met in {timeout}s; got {len(out)} messages")


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


# --------------------------------------------------------------------------- gateway
def gateway_rig(write_topology, component, book, ctx, tmp_path, **gateway):
    """A started gateway process with the test subscribed to both its streams."""
    topo = write_topology({"gateway": {"prices": f"ipc://{tmp_path}/p.ipc", "news": f"ipc://{tmp_path}/n.ipc",
                                       **gateway}})
    gw = component("gateway", topo, book.name)
    ready = gw.expect("ready")
    prices = sockets.subscriber(ctx, ready["endpoints"]["gateway.prices"])
    news = sockets.subscriber(ctx, ready["endpoints"]["gateway.news"])
    sockets.await_welcome(prices, time.monotonic() + 10)
    sockets.await_welcome(news, time.monotonic() + 10)
    gw.start()
    return gw, prices, news


def test_gateway_streams_sequenced_paced_ticks_and_news(write_topology, component, book, ctx, tmp_path):
    gw, prices, news = gateway_rig(write_topology, component, book, ctx, tmp_path, rate=2000, news_rate=200)
    ticks = price_ticks(recv_until(prices, lambda k, f: k in (wire.Kind.TICK, wire.Kind.TICKS) and f[0] >= 400))
    items = [wire.as_news(f) for k, f in recv_until(news, lambda k, f: k is wire.Kind.NEWS and f[0] >= 20)]
    stats = gw.stop()

    assert [t.seq for t in ticks] == list(range(1, len(ticks) + 1))
    n = len(BASE["symbols"])
    assert [t.symbol for t in ticks[:2 * n]] == BASE["symbols"] * 2  # symbols take turns
    assert all(0 < t.bid < t.ask and t.bid <= t.last <= t.ask for t in ticks)
    # open loop: each tick carries its scheduled time, exactly one period (0.5 ms) apart
    gaps = {b.ts_ns - a.ts_ns for a, b in zip(ticks, ticks[1:])}
    assert gaps <= {499_999, 500_000, 500_001}
    assert [x.seq for x in items] == list(range(1, len(items) + 1))
    assert all(0 <= x.sentiment <= 100 for x in items)

    rest = recv_until(prices, lambda k, f: k is wire.Kind.EOS)
    eos = wire.as_eos(rest[-1][1])
    published = stats["counters"]["ticks_published"]
    assert eos.stream == "prices" and eos.last_seq == published
    assert len(ticks) + len(price_ticks(rest)) == published
    prices.close()
    news.close()


# --------------------------------------------------------------------------- orderbook
def orderbook_rig(write_topology, component, book, ctx, tmp_path, make_pub=None, **orderbook):
    """A started orderbook process fed by the test's own price XPUB (``make_pub(ctx, endpoint)``,
    by default zmqtrade's publisher), its doorbell subscribed."""
    ep = f"ipc://{tmp_path}/p.ipc"
    topo = write_topology({"gateway": {"prices": ep},
                           "orderbook": {"doorbell": f"ipc://{tmp_path}/d.ipc", **orderbook}})
    pub = (make_pub or (lambda c, e: sockets.publisher(c, e, "prices", 1, 1000, False)))(ctx, ep)
    ob = component("orderbook", topo, book.name)
    ready = ob.expect("ready", serve=[pub])
    bell = sockets.subscriber(ctx, ready["endpoints"]["orderbook.doorbell"])
    sockets.await_welcome(bell, time.monotonic() + 10)
    ob.start()
    return pub, ob, bell


def test_orderbook_applies_ticks_counts_gaps_and_rings(write_topology, component, book, ctx, tmp_path):
    pub, ob, bell = orderbook_rig(write_topology, component, book, ctx, tmp_path)

    aapl, msft = book.index["AAPL"], book.index["MSFT"]
    pub.send(wire.encode_tick(1, "AAPL", 1.0, 2.0, 1.5, 100, 111))
    pub.send(wire.encode_tick(2, "MSFT", 10.0, 11.0, 10.5, 200, 222))
    pub.send(wire.encode_tick(4, "AAPL", 3.0, 4.0, 3.5, 300, 444))    # seq 3 lost: one gap
    pub.send(b"\xc1 not msgpack")                                       # malformed: counted
    pub.send(wire.encode_tick(5, "ZZZ", 1.0, 2.0, 1.5, 1, 555))        # not in the book
    pub.send(wire.encode_tick(2, "MSFT", 99.0, 99.5, 99.2, 1, 999))    # stale repeat: ignored
    pub.send(wire.encode_tick(6, "AAPL", 5.0, 6.0, 5.5, 600, 666))     # no false gap after ZZZ
    pub.send(wire.encode_eos("prices", 6))

    bells = recv_until(bell, lambda k, f: k is wire.Kind.DOORBELL and aapl in f[1] and book.read(aapl).tick_seq == 6)
    stats = ob.stop()
    c = stats["counters"]
    assert c["ticks_applied"] == 4
    assert c["tick_gaps"] == 1
    assert c["tick_duplicates"] == 1
    assert c["unknown_symbols"] == 1
    assert c["malformed_messages"] == 1

    q = book.read(aapl)
    assert (q.bid, q.ask, q.last, q.size, q.tick_seq, q.tick_ts, q.updates) == (5.0, 6.0, 5.5, 600, 6, 666, 3)
    assert q.write_ts > 0
    m = book.read(msft)
    assert (m.bid, m.tick_seq, m.updates) == (10.0, 2, 1)
    assert book.read(book.index["GOOG"]) is None
    assert book.writer_pid == ob.proc.pid
    seqs = [f[0] for k, f in bells if k is wire.Kind.DOORBELL]
    assert seqs == list(range(1, len(seqs) + 1))
    recv_until(bell, lambda k, f: k is wire.Kind.EOS)
    bell.close()
    pub.close()


# --------------------------------------------------------------------------- order manager
def order(cid: int, symbol: str = "AAPL", side: str = "BUY", qty: int = 10, price: float = 100.0,
          strategy: str = "trend", decide_ts: int = 3) -> bytes:
    return wire.encode_order(wire.Order(cid, strategy, symbol, side, qty, price, 1, 2, decide_ts, decide_ts + 1))


def ask(dealer: zmq.Socket, body: bytes | list[bytes]) -> wire.Reply:
    if isinstance(body, list):
        dealer.send_multipart(body)
    else:
        dealer.send(body)
    assert dealer.poll(10_000), "no reply within 10 s"
    kind, fields = wire.unpack(dealer.recv())
    assert kind is wire.Kind.REPLY
    return wire.as_reply(fields)


def started_ordermanager(write_topology, component, book, tmp_path, **keys):
    """An order manager on an ipc endpoint, AAPL quoted 99.5 / 100.5, started; (it, endpoint)."""
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, **keys}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    return om, ep


def test_ordermanager_validates_risk_checks_journals_and_replies(write_topology, component, book, ctx, tmp_path):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "risk": {
        "max_order_qty": 1000, "max_position": 100, "max_orders_per_s": 1000}}})
    aapl = book.index["AAPL"]
    book.write(aapl, 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name, extra=["--log-orders"])
    om.expect("ready")
    om.start()
    d = sockets.dealer(ctx, ep, "trend")

    buy = ask(d, order(1, qty=10))
    assert (buy.clordid, buy.status, buy.order_id, buy.detail) == (1, "filled", 1, 100.5)  # buys at the ask
    sell = ask(d, order(2, side="SELL", qty=5))
    assert (sell.status, sell.order_id, sell.detail) == ("filled", 2, 99.5)              # sells at the bid
    assert sell.recv_ts <= sell.ts_ns

    rejects = {
        3: (order(3, symbol="XYZ"), "unknown symbol"),
        4: (order(4, side="HOLD"), "side must be BUY or SELL"),
        5: (order(5, qty=0), "qty must be > 0"),
        6: (order(6, price=-1.0), "price must be > 0"),
        7: (order(7, qty=5000), "exceeds max order qty 1000"),
        8: (order(8, qty=96), "position would be 101"),
        9: (order(9, symbol="MSFT"), "no market in MSFT"),
        10: (order(10, strategy="ghost"), "unknown strategy"),
        11: (msgpack.packb([4, 1, 11, "trend", "AAPL"]), "malformed: order has 3 fields"),
        12: (msgpack.packb([4, 1, 12, "trend", "AAPL", "BUY", "10", 1.0, 1, 2, 3, 4]), "malformed"),
    }
    for cid, (body, reason) in rejects.items():
        r = ask(d, body)
        assert (r.clordid, r.status, r.order_id) == (cid, "rejected", 0), (cid, r)
        assert reason in r.detail, (cid, r.detail)
    garbage = ask(d, b"\x00garbage")
    assert (garbage.clordid, garbage.status) == (-1, "rejected") and "malformed" in garbage.detail
    multi = ask(d, [b"a", b"b"])
    assert multi.status == "rejected" and "one body frame" in multi.detail
    d.send(wire.encode_ping(42))  # a quiet client keeping its path warm: echoed, nothing journaled
    assert d.poll(10_000)
    assert wire.unpack(d.recv()) == (wire.Kind.PONG, (42,))
    bad_ping = ask(d, msgpack.packb([12, 1, "soon"]))
    assert bad_ping.status == "rejected" and "ping and pong must be" in bad_ping.detail

    again = ask(d, order(1, qty=10))  # a re-sent order gets the original answer, not a second fill
    assert again == buy
    stats = om.stop()
    d.close()

    c = stats["counters"]
    assert c["orders_filled"] == 2
    assert c["duplicate_orders"] == 1
    assert c["malformed_messages"] == 5
    assert c["orders_rejected"] == len(rejects) + 3
    assert c["pings_answered"] == 1
    records = list(journal.read(tmp_path / journal.FILENAME))
    assert [(r["order_id"], r["clordid"], r["side"], r["qty"], r["price"]) for r in records] == [
        (1, 1, "BUY", 10, 100.5), (2, 2, "SELL", 5, 99.5)]
    assert stat.S_IMODE(os.stat(tmp_path / journal.FILENAME).st_mode) == 0o600
    log = om.log.read_text()
    assert "order 1 trend BUY 10 AAPL @ 100.50 filled" in log


def test_ordermanager_answers_a_batch_with_one_reply_message(write_topology, component, book, ctx, tmp_path):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    d = sockets.dealer(ctx, ep, "trend")
    good = [wire.Order(i, "trend", "AAPL", "BUY" if i % 2 else "SELL", 1, 100.0, 1, 2, 3, 4) for i in (1, 2, 3)]
    body = msgpack.packb([wire.Kind.ORDERS, 1, [list(good[0]), [4, "trend"], list(good[1]), list(good[2])]])
    d.send(body)
    assert d.poll(10_000)
    kind, fields = wire.unpack(d.recv())
    assert kind is wire.Kind.REPLIES
    replies = [wire.as_reply(f) for f in wire.as_batch(fields)]
    assert [(r.clordid, r.status) for r in replies] == [(1, "filled"), (4, "rejected"), (2, "filled"), (3, "filled")]
    assert "malformed: order has 2 fields" in replies[1].detail
    assert [r.order_id for r in replies if r.filled] == [1, 2, 3]
    d.send(wire.encode_orders(good[:1]))  # alone: a plain ORDER, answered with the original REPLY
    kind, fields = wire.unpack(d.recv()) if d.poll(10_000) else (None, None)
    assert kind is wire.Kind.REPLY and wire.as_reply(fields) == replies[0]
    stats = om.stop()
    d.close()
    assert stats["counters"]["orders_filled"] == 3 and stats["counters"]["duplicate_orders"] == 1
    assert len(list(journal.read(tmp_path / journal.FILENAME))) == 3


def test_ordermanager_limits_order_rate_per_strategy(write_topology, component, book, ctx, tmp_path):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "risk": {"max_orders_per_s": 5, "max_position": 10**6}}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    d = sockets.dealer(ctx, ep, "meanrev")
    for cid in range(1, 31):
        d.send(order(cid, strategy="meanrev", qty=1))
    replies = []
    while len(replies) < 30:
        assert d.poll(10_000)
        replies.append(wire.as_reply(wire.unpack(d.recv())[1]))
    om.stop()
    d.close()
    filled = [r for r in replies if r.filled]
    limited = [r for r in replies if "order rate above 5/s" in str(r.detail)]
    assert 5 <= len(filled) < 30 and len(filled) + len(limited) == 30


# --------------------------------------------------------------------------- strategy
ONE_PER_QUOTE = """
from zmqtrade.strategies import OrderRequest, Strategy

class OnePerQuote(Strategy):
    def on_quote(self, quote):
        return [OrderRequest(quote.symbol, "BUY", self.qty, quote.ask)]

    def on_news(self, news):
        self.submit(OrderRequest(news.symbol, "SELL", 1, 1.0))
"""


def positions_answerer(router, holdings: list = (), ts_ns: int = 1):
    """Play the order manager's part of a strategy's start: answer each POSITIONS_ASK."""
    def answer() -> None:
        while router.poll(0):
            identity, body = router.recv_multipart()
            kind, fields = wire.unpack(body)
            assert kind is wire.Kind.POSITIONS_ASK, kind
            router.send_multipart([identity, wire.encode_positions(fields[0], list(holdings), ts_ns)])
    return answer


def strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch, doorbell="zmq", holdings=(), **spec):
    """A started OnePerQuote strategy named trend; the test plays news, doorbell and order manager.
    Returns it with the news XPUB, a ``ring(seq, slots)`` and an ``end(last_seq)`` that play the
    doorbell (ZeroMQ, or the pipe as the orderbook writes it), the doorbell XPUB and the ROUTER."""
    (tmp_path / "onequote.py").write_text(ONE_PER_QUOTE)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    eps = {"news": f"ipc://{tmp_path}/n.ipc", "doorbell": f"ipc://{tmp_path}/d.ipc", "om": f"ipc://{tmp_path}/o.ipc"}
    topo = write_topology({"gateway": {"news": eps["news"]}, "orderbook": {"doorbell": eps["doorbell"]},
                           "ordermanager": {"endpoint": eps["om"]},
                           "strategies": {"trend": {"class": "onequote:OnePerQuote", "params": DELETE,
                                                    "doorbell": doorbell, "keep_warm_ms": 0, **spec}}})
    news = sockets.publisher(ctx, eps["news"], "news", 1, 1000, False)
    bell = sockets.publisher(ctx, eps["doorbell"], "doorbell", 1, 1000, False)
    router = sockets.router(ctx, eps["om"])
    strat = component("strategy", topo, book.name, name="trend")
    if doorbell == "pipe":
        pipe = BellWriter(book.name, {"trend": None}, 1, {})
        strat.expect("ready", serve=[news, bell, pipe.rescan, positions_answerer(router, holdings)])
        fd = pipe.fds["trend"][0]  # then doorbells written as the orderbook would, numbered by the test
        ring = lambda seq, slots: os.write(fd, encode_bell(seq, slots))  # noqa: E731
        end = lambda last: os.write(fd, encode_bell(last, (EOS,)))  # noqa: E731
    else:
        strat.expect("ready", serve=[news, bell, positions_answerer(router, holdings)])
        ring = lambda seq, slots: bell.send(wire.encode_doorbell(seq, slots, seq))  # noqa: E731
        end = lambda last: bell.send(wire.encode_eos("doorbell", last))  # noqa: E731
    strat.start()
    return strat, news, (ring, end), bell, router


def test_a_quiet_strategy_pings_the_order_manager_every_keep_warm_ms(write_topology, component, book, ctx,
                                                                     tmp_path, monkeypatch):
    strat, news, (ring, end), bell, router = strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch,
                                                          keep_warm_ms=20)
    pings = []
    while len(pings) < 3:  # no tick, no order: only PINGs come, each answered with its PONG
        assert router.poll(10_000), "no PING within 10 s"
        identity, body = router.recv_multipart()
        kind, fields = wire.unpack(body)
        assert kind is wire.Kind.PING, kind
        pings.append(wire.as_ping(fields))
        router.send_multipart([identity, wire.encode_pong(pings[-1])])
    assert all(b - a >= 20_000_000 for a, b in zip(pings, pings[1:]))  # never more often than keep_warm_ms
    news.send(wire.encode_eos("news", 0))
    end(0)
    c = strat.stop()["counters"]
    assert c["pings"] >= 3 and c["orders_sent"] == 0
    assert c["malformed_messages"] == 0 and c["unmatched_replies"] == 0  # a PONG is not taken for a reply
    for sock in (news, bell, router):
        sock.close()


@pytest.mark.parametrize("doorbell", ["zmq", "pipe"])
def test_strategy_reads_the_book_on_doorbell_and_stamps_orders(write_topology, component, book, ctx, tmp_path,
                                                              monkeypatch, doorbell):
    book.claim_writer()  # this test writes the book: a live writer, so the strategy trades on it
    strat, news, (ring, end), bell, router = strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch,
                                                          doorbell=doorbell, qty=7, book_max_age_s=60)

    aapl, msft = book.index["AAPL"], book.index["MSFT"]
    # the write beats with its made-up time (a stale book): beat again before any ring, so no
    # doorbell can be read while the book looks stale (its verdict is kept for 50 ms)
    book.write(aapl, 99.0, 101.0, 100.0, 5, 42, 123_456, 654_321)
    book.heartbeat()
    ring(1, [msft])                                       # never written: skipped
    ring(2, [aapl, book.index["GOOG"]])                   # GOOG is not this strategy's
    assert router.poll(10_000)
    identity, body = router.recv_multipart()
    o = wire.as_order(wire.unpack(body)[1])
    assert identity[:1] == b"\x00" and len(identity) == 5  # no id of its own: the ROUTER named the connection
    assert (o.strategy, o.symbol, o.side, o.qty, o.price) == ("trend", "AAPL", "BUY", 7, 101.0)
    assert o.clordid > time.monotonic_ns() - 60_000_000_000  # ids start from the monotonic clock (us x 1000)
    assert (o.tick_ts, o.book_ts) == (123_456, 654_321)
    assert o.book_ts <= o.decide_ts <= o.send_ts
    router.send_multipart([identity, wire.encode_reply(o.clordid, wire.FILLED, 1, 101.0, 5, 6)])

    news.send(wire.encode_news(1, "AAPL", 90, 3))
    identity, body = router.recv_multipart()
    n = wire.as_order(wire.unpack(body)[1])
    assert (n.clordid, n.side, n.tick_ts) == (o.clordid + 1, "SELL", 0)  # from on_news: no tick behind it
    router.send_multipart([identity, wire.encode_reply(n.clordid, wire.REJECTED, 0, "test says no", 5, 6)])
    router.send_multipart([identity, b"junk"])                # malformed reply: counted

    ring(4, [aapl])                                       # doorbell 3 lost: a gap
    identity, body = router.recv_multipart()
    m = wire.as_order(wire.unpack(body)[1])
    router.send_multipart([identity, wire.encode_reply(m.clordid, wire.FILLED, 2, 99.0, 5, 6)])
    news.send(wire.encode_eos("news", 1))
    end(5)                                                # doorbell 5 never came either
    stats = strat.stop()
    c = stats["counters"]
    assert (c["orders_sent"], c["orders_acked"], c["orders_rejected"]) == (3, 2, 1)
    assert c["unwritten_skipped"] == 1 and c["quotes_read"] == 2
    assert c["news_received"] == 1 and c["malformed_messages"] == 1
    assert (c["doorbells"], c["doorbell_gaps"]) == (3, 2)
    assert len(metrics.Histogram.frombytes(stats["latency_ns"]["tick_to_ack"])) == 2  # the quote-driven orders
    assert stats["acked_ids"] == [[o.clordid, o.clordid], [m.clordid, m.clordid]]
    for sock in (news, bell, router):
        sock.close()
    json.dumps(c)


def test_orderbook_applies_batches_whole_and_rings_per_message_when_not_conflating(
        write_topology, component, book, ctx, tmp_path):
    pub, ob, bell = orderbook_rig(write_topology, component, book, ctx, tmp_path, conflate=False)
    aapl, msft = book.index["AAPL"], book.index["MSFT"]

    def batch(first: int, syms: list[str], base: float) -> bytes:
        n = len(syms)
        return wire.encode_ticks(first, syms, [base + i for i in range(n)], [base + i + 0.5 for i in range(n)],
                                 [base + i + 0.25 for i in range(n)], [100 * (i + 1) for i in range(n)],
                                 [1000 + first + i for i in range(n)])

    pub.send(batch(1, ["AAPL", "MSFT", "AAPL", "ZZZ"], 10.0))    # seq 1-4; AAPL's newest is seq 3
    pub.send(batch(3, ["AAPL", "MSFT", "MSFT"], 20.0))           # seq 3-4 repeat, seq 5 new
    pub.send(batch(9, ["AAPL"], 30.0))                           # seq 6-8 lost
    pub.send(wire.encode_tick(10, "GOOG", 1.0, 2.0, 1.5, 7, 7))
    pub.send(wire.encode_eos("prices", 10))
    rung: list[int] = []  # every doorbell's slots, in order, however the drains grouped them

    def all_rung(kind, fields) -> bool:
        if kind is wire.Kind.DOORBELL:
            rung.extend(fields[1])
        return len(rung) >= 6
    recv_until(bell, all_rung)
    stats = ob.stop()
    recv_until(bell, lambda k, f: k is wire.Kind.EOS)

    c = stats["counters"]
    assert c["batches"] == 3
    assert c["ticks_applied"] == 3 + 1 + 1 + 1   # ZZZ is not in the book; 2 repeats dropped
    assert c["unknown_symbols"] == 1 and c["tick_duplicates"] == 2 and c["tick_gaps"] == 3
    a, m = book.read(aapl), book.read(msft)
    assert (a.last, a.tick_seq, a.tick_ts) == (30.25, 9, 1009)
    assert (m.last, m.tick_seq, m.size) == (22.25, 5, 300)
    assert a.updates == 2  # one write per symbol per batch, not one per tick
    assert rung == [aapl, msft, aapl, msft, aapl, book.index["GOOG"]]  # a slot per applied tick
    bell.close()
    pub.close()


def window_spans(msgs: list) -> list[tuple[int, int]]:
    """(ticks, due time of the last minus the first's) of each price message."""
    spans = []
    for kind, fields in msgs:
        if kind is wire.Kind.TICKS:
            each = list(wire.as_ticks(fields).each())
            spans.append((len(each), each[-1].ts_ns - each[0].ts_ns))
        elif kind is wire.Kind.TICK:
            spans.append((1, 0))
    return spans


def test_gateway_batch_window_groups_ticks_but_keeps_their_schedule(write_topology, component, book, ctx, tmp_path):
    gw, prices, news = gateway_rig(write_topology, component, book, ctx, tmp_path, rate=5000, batch_window_us=2000)
    msgs = recv_until(prices, lambda k, f: k in (wire.Kind.TICK, wire.Kind.TICKS) and f[0] >= 2000)
    gw.stop()
    ticks = price_ticks(msgs)
    assert [t.seq for t in ticks] == list(range(1, len(ticks) + 1))
    assert {b.ts_ns - a.ts_ns for a, b in zip(ticks, ticks[1:])} <= {199_999, 200_000, 200_001}
    # on time, a message holds what is due within 2 ms of its first: 10 ticks 200 us apart (the
    # first message holds the tick due at the start; one sent late holds everything then due)
    steady = [n for n, _ in window_spans(msgs)[1:]]
    assert sum(n == 10 for n in steady) > len(steady) * 0.9
    prices.close()
    news.close()


def test_gateway_batch_window_follows_a_replays_own_timestamps(write_topology, component, book, ctx, tmp_path):
    """Paced by a CSV's timestamps, a message closes on the last row due within the window of
    its first, however unevenly the rows are spaced."""
    gaps_ms = [0.1, 0.1, 0.1, 1.9, 0.4, 0.4, 3.0, 0.7, 0.7, 0.7]  # bursts and silences, looped
    rows, ts = [], 0.0
    for i in range(400):
        ts += gaps_ms[i % len(gaps_ms)] / 1000
        rows.append(f"{ts:.4f},{BASE['symbols'][i % 3]},{100 + i % 7}")
    csv = tmp_path / "ticks.csv"
    csv.write_text("timestamp,symbol,price\n" + "\n".join(rows) + "\n")
    gw, prices, news = gateway_rig(write_topology, component, book, ctx, tmp_path, batch_window_us=1000,
                                   feed={"kind": "csv", "path": str(csv), "pace": "timestamps", "loop": False})
    msgs = recv_until(prices, lambda k, f: k in (wire.Kind.TICK, wire.Kind.TICKS) and f[0] >= 300)
    gw.stop()
    ticks = price_ticks(msgs)
    assert [t.seq for t in ticks] == list(range(1, len(ticks) + 1))
    spans = window_spans(msgs)
    assert sum(span < 1_000_000 for _, span in spans) > len(spans) * 0.9  # all but messages sent late
    assert max(n for n, _ in spans) >= 3 and len(spans) < len(ticks) * 0.6  # the bursts share messages
    prices.close()
    news.close()


def test_ordermanager_forgets_old_answers_but_never_fills_twice(write_topology, component, book, ctx, tmp_path):
    om, ep = started_ordermanager(write_topology, component, book, tmp_path, replies_kept=10)
    d = sockets.dealer(ctx, ep, "trend")
    decided = {cid: time.monotonic_ns() for cid in range(1, 31)}  # a re-send keeps its decide_ts
    first = [ask(d, order(cid, qty=1, side="BUY" if cid % 2 else "SELL", decide_ts=decided[cid])) for cid in decided]
    assert all(r.filled for r in first)
    recent = ask(d, order(30, qty=1, side="SELL", decide_ts=decided[30]))
    assert recent == first[-1]                           # still remembered: the same answer
    old = ask(d, order(3, qty=1, decide_ts=decided[3]))
    assert (old.status, old.order_id) == ("rejected", 0)  # forgotten: refused, not filled again
    assert "too old to replay" in old.detail
    stats = om.stop()
    d.close()
    assert stats["counters"]["orders_filled"] == 30 and stats["counters"]["duplicate_orders"] == 2
    assert len(list(journal.read(tmp_path / journal.FILENAME))) == 30


def test_ordermanager_keeps_answers_for_replies_kept_s_not_for_a_count(write_topology, component, book, ctx,
                                                                        tmp_path):
    """Answers expire by age: many orders do not push one out while it is young, and it goes
    once older than replies_kept_s; the count bound only caps memory, and says when it bit."""
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "replies_kept_s": 0.4},
                           "strategies": {"trend": {"order_timeout_s": 0.02}, "meanrev": {"order_timeout_s": 0.02}}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    d = sockets.dealer(ctx, ep, "trend.1")
    decided = time.monotonic_ns()
    first = ask(d, order(1, qty=1, decide_ts=decided))
    for cid in range(2, 200):  # far more answers than the old default count of 16 would have kept
        assert ask(d, order(cid, qty=1, side="SELL" if cid % 2 else "BUY", decide_ts=time.monotonic_ns())).filled
    assert ask(d, order(1, qty=1, decide_ts=decided)) == first  # young: still the original answer
    time.sleep(0.5)  # the age under test passes (no event marks it): not a synchronisation
    assert ask(d, order(500, qty=1, decide_ts=time.monotonic_ns())).filled  # a new answer sweeps the old out
    old = ask(d, order(1, qty=1, decide_ts=decided))
    assert (old.status, old.order_id) == ("rejected", 0) and "too old to replay" in old.detail
    c = om.stop()["counters"]
    d.close()
    assert (c["orders_filled"], c["replies_forgotten_early"]) == (200, 0)


def test_a_client_order_id_ahead_of_the_clock_is_refused_and_remembered_nowhere(write_topology, component, book,
                                                                                 ctx, tmp_path):
    om, ep = started_ordermanager(write_topology, component, book, tmp_path)
    d = sockets.dealer(ctx, ep, "trend.1")
    ahead = ask(d, order(2**63 - 1, qty=1, decide_ts=time.monotonic_ns()))
    assert ahead.status == "rejected" and "is ahead of the clock" in ahead.detail
    again = ask(d, order(2**63 - 1, qty=1, decide_ts=time.monotonic_ns()))
    assert again.status == "rejected" and "is ahead of the clock" in again.detail  # not a "duplicate"
    now_id = time.monotonic_ns() // 1000 * 1000  # as a strategy numbers its orders
    assert ask(d, order(now_id, qty=1, decide_ts=time.monotonic_ns())).filled
    assert ask(d, order(7, qty=1, decide_ts=time.monotonic_ns())).filled  # small ids are fine: not ahead
    c = om.stop()["counters"]
    d.close()
    assert (c["orders_ahead_of_clock"], c["orders_filled"], c["duplicate_orders"]) == (2, 2, 0)


def test_a_second_connection_with_a_clients_routing_id_gets_nothing_of_its_route(write_topology, component, book,
                                                                                   ctx, tmp_path):
    """No handover: an impostor connecting with a connected client's routing id is ignored (its
    orders unheard) and the client keeps its replies. Strategies set no id at all: the ROUTER
    names each connection, and each gets its own replies."""
    om, ep = started_ordermanager(write_topology, component, book, tmp_path)
    real = sockets.dealer(ctx, ep, "trend.5e1f")
    assert ask(real, order(1, qty=1)).filled
    impostor = sockets.dealer(ctx, ep, "trend.5e1f")
    impostor.send(order(2, qty=1))
    assert ask(real, order(3, qty=1)).order_id == 2  # the client's reply, to the client
    assert not impostor.poll(300), "the impostor was answered"
    a, b = sockets.dealer(ctx, ep), sockets.dealer(ctx, ep)  # as the strategy process connects
    assert (ask(a, order(4, qty=1)).clordid, ask(b, order(5, qty=1)).clordid) == (4, 5)
    c = om.stop()["counters"]
    for sock in (real, impostor, a, b):
        sock.close()
    assert c["orders_filled"] == 4


def test_a_flooding_strategy_pushes_out_its_own_answers_not_its_neighbours(write_topology, component, book, ctx,
                                                                           tmp_path):
    """Past replies_kept, the strategy that holds the most answers loses its oldest: meanrev's
    flood cannot make trend's re-sends too old to replay."""
    om, ep = started_ordermanager(write_topology, component, book, tmp_path, replies_kept=32)
    now = time.monotonic_ns
    d = sockets.dealer(ctx, ep, "trend")
    decided = {cid: now() for cid in (1, 2, 3)}
    sides = {1: "BUY", 2: "SELL", 3: "BUY"}
    first = [ask(d, order(cid, side=sides[cid], qty=1, decide_ts=decided[cid])) for cid in decided]
    assert all(r.filled for r in first)
    flood = sockets.dealer(ctx, ep, "meanrev")
    flooded = {cid: now() for cid in range(1, 101)}
    for cid, ts in flooded.items():  # rejects (qty 0) are answers too: 100 of them, past the 32 kept
        assert not ask(flood, order(cid, strategy="meanrev", qty=0, decide_ts=ts)).filled
    again = [ask(d, order(cid, side=sides[cid], qty=1, decide_ts=decided[cid])) for cid in decided]
    assert again == first  # still remembered: the same answers, not fills
    early = ask(flood, order(1, strategy="meanrev", qty=0, decide_ts=flooded[1]))
    assert "too old to replay" in early.detail and "replies_kept" in early.detail  # its own went first
    stats = om.stop()
    d.close()
    flood.close()
    c = stats["counters"]
    assert (c["orders_filled"], c["replies_forgotten_early"]) == (3, 103 - 32)


def test_a_forged_order_id_cannot_make_a_strategys_orders_too_old(write_topology, component, book, ctx, tmp_path):
    """The poisoning repro: one order naming trend with the largest id, pushed out of the filter by
    rejects; later orders of trend, with any id, are still decided. The largest id is refused up
    front now (ahead of the clock); the largest plausible one shows age comes from decide_ts."""
    om, ep = started_ordermanager(write_topology, component, book, tmp_path, replies_kept=32)
    rogue = sockets.dealer(ctx, ep, "rogue")
    now = time.monotonic_ns
    decided = now()
    assert "ahead of the clock" in ask(rogue, order(2**63 - 1, qty=1, decide_ts=decided)).detail
    big = now() + 50 * 10**9  # as far ahead as the clock check lets through
    poison = ask(rogue, order(big, qty=1, decide_ts=decided))
    assert poison.filled
    for cid in range(40):  # rejects (qty 0) that push it out of the 32 answers kept
        assert not ask(rogue, order(10 + cid, qty=0, decide_ts=now())).filled
    resent = ask(rogue, order(big, qty=1, decide_ts=decided))  # a re-send of the forgotten one
    assert (resent.status, resent.order_id) == ("rejected", 0) and "too old to replay" in resent.detail
    assert "32 answers, ordermanager.replies_kept, were full" in resent.detail  # the bound forgot it: say which
    d = sockets.dealer(ctx, ep, "trend")
    real = [ask(d, order(cid, qty=1, side="BUY" if cid % 2 else "SELL", decide_ts=now())) for cid in (1, 2, 3)]
    assert [r.status for r in real] == ["filled"] * 3, [r.detail for r in real]
    future = ask(rogue, order(5, qty=0, decide_ts=2**62))  # a forged future age ages at receipt
    assert future.status == "rejected" and "qty" in future.detail
    for cid in range(40):
        ask(rogue, order(100 + cid, qty=0, decide_ts=now()))
    after = ask(d, order(4, qty=1, decide_ts=now()))
    assert after.filled, after.detail
    stats = om.stop()
    d.close()
    rogue.close()
    assert stats["counters"]["orders_filled"] == 5


def test_ordermanager_decides_each_batch_item_and_refuses_out_of_range_fields(write_topology, component, book,
                                                                              ctx, tmp_path):
    om, ep = started_ordermanager(write_topology, component, book, tmp_path)
    d = sockets.dealer(ctx, ep, "trend")

    def batch(items: list) -> list[wire.Reply]:
        d.send(msgpack.packb([wire.Kind.ORDERS, 1, items]))
        assert d.poll(10_000)
        kind, fields = wire.unpack(d.recv())
        assert kind is wire.Kind.REPLIES  # an ORDERS is answered with REPLIES, whatever it held
        return [wire.as_reply(f) for f in wire.as_batch(fields)]

    good = [list(wire.Order(i, "trend", "AAPL", "BUY", 1, 100.0, 1, 2, 3, 4)) for i in (1, 2)]
    replies = batch([good[0], "junk", 7, {"clordid": 9}, good[1]])
    assert [(r.clordid, r.status) for r in replies] == [(1, "filled"), (-1, "rejected"), (-1, "rejected"),
                                                         (-1, "rejected"), (2, "filled")]
    assert all("must be an array of fields" in r.detail for r in replies[1:4])
    one = batch([list(wire.Order(3, "trend", "AAPL", "BUY", 1, 100.0, 1, 2, 3, 4))])
    assert [(r.clordid, r.status) for r in one] == [(3, "filled")]
    for items in ([], [good[0]] * (wire.MAX_BATCH + 1)):
        refused = batch(items)
        assert [(r.clordid, r.status) for r in refused] == [(-1, "rejected")] and "1..512 items" in refused[0].detail
    for cid, fields in ((-5, (-5, 1, 2, 3, 4)), (20, (20, -1, 2, 3, 4)), (21, (21, 1, 2, 3, -4))):
        cid_, t1, t2, t3, t4 = fields
        r = ask(d, wire.encode_order(wire.Order(cid_, "trend", "AAPL", "BUY", 1, 100.0, t1, t2, t3, t4)))
        assert (r.clordid, r.status) == (cid, "rejected") and "0..2^63-1" in r.detail, r
    d.send_multipart([b"x" * 1000] * 3000)  # one message of 3000 frames: refused, its frames not held
    assert d.poll(10_000)
    r = wire.as_reply(wire.unpack(d.recv())[1])
    assert r.status == "rejected" and "got more" in r.detail
    stats = om.stop()
    d.close()
    assert stats["counters"]["orders_filled"] == 3


def test_orderbook_counts_ticks_lost_at_the_end_of_the_stream(write_topology, component, book, ctx, tmp_path):
    pub, ob, bell = orderbook_rig(write_topology, component, book, ctx, tmp_path)
    pub.send(wire.encode_tick(1, "AAPL", 1.0, 2.0, 1.5, 1, 1))
    pub.send(wire.encode_tick(2, "AAPL", 1.0, 2.0, 1.5, 1, 2))
    pub.send(wire.encode_eos("prices", 5))  # the gateway sent 3, 4 and 5 too; they never arrived
    recv_until(bell, lambda k, f: k is wire.Kind.DOORBELL)
    stats = ob.stop()
    assert stats["counters"]["ticks_applied"] == 2 and stats["counters"]["tick_gaps"] == 3
    bell.close()
    pub.close()
