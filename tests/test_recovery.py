"""Recovery of single components, each a real process on real sockets: an order manager that
rebuilds from its journal, a strategy that re-sends and will not trade on a stale book, an
orderbook that resynchronises when its publisher restarts."""
from __future__ import annotations

import signal
import time

import pytest
import zmq

from test_components import ask, order, orderbook_rig, recv_until, strategy_rig
from zmqtrade import journal, sockets, wire


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def test_ordermanager_killed_rebuilds_positions_ids_and_duplicates_from_the_journal(
        write_topology, component, book, ctx, tmp_path):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "risk": {"max_position": 100}}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    d = sockets.dealer(ctx, ep, "trend")
    first = ask(d, order(1, qty=60))
    second = ask(d, order(2, side="SELL", qty=10))
    assert first.filled and second.filled
    om.proc.send_signal(signal.SIGKILL)
    om.proc.wait(10)
    with open(tmp_path / journal.FILENAME, "ab") as fh:
        fh.write(b'{"order_id":3,"clordid":')  # a torn last record: the writer died mid-line

    again = component("ordermanager", topo, book.name)
    again.expect("ready")
    again.start()
    replayed = ask(d, order(1, qty=60))  # the re-send of an order filled before the crash
    assert (replayed.clordid, replayed.status, replayed.order_id, replayed.detail) == (1, "filled", 1, 100.5)
    over = ask(d, order(3, qty=60))      # positions rebuilt: 60 - 10 + 60 is over the limit
    assert over.status == "rejected" and "position would be 110" in over.detail
    fresh = ask(d, order(4, qty=10))
    assert (fresh.status, fresh.order_id) == ("filled", 3)  # order ids continue
    stats = again.stop()
    d.close()
    c = stats["counters"]
    assert (c["checkpoint_records"] + c["journal_replayed"], c["duplicate_orders"], c["orders_filled"]) == (2, 1, 1)
    records = list(journal.read(tmp_path / journal.FILENAME))
    assert [(r["order_id"], r["clordid"]) for r in records] == [(1, 1), (2, 2), (3, 4)]  # torn tail cut off
    assert "cut a torn last record" in again.log.read_text()


def test_ordermanager_refuses_a_journal_damaged_before_its_end(write_topology, component, book, tmp_path):
    rec = journal.record(1, wire.Order(1, "trend", "AAPL", "BUY", 1, 1.0, 0, 0, 0, 0), 1.0, 1)
    (tmp_path / journal.FILENAME).write_bytes(rec + b"not json\n" + rec)
    om = component("ordermanager", write_topology({"ordermanager": {"endpoint": f"ipc://{tmp_path}/om.ipc"}}),
                   book.name)
    assert om.proc.wait(20) == 1
    assert "line 2 is not a complete record" in om.log.read_text()


def test_strategy_resends_an_unanswered_order_with_the_same_id(
        write_topology, component, book, ctx, tmp_path, monkeypatch):
    book.claim_writer()
    strat, news, _, bell, router = strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch,
                                             order_timeout_s=0.2, book_max_age_s=60)
    aapl = book.index["AAPL"]
    book.write(aapl, 99.0, 101.0, 100.0, 5, 1, 1, time.monotonic_ns())
    bell.send(wire.encode_doorbell(1, [aapl], 1))
    sent = []
    while len(sent) < 3:  # the original and two re-sends, the order manager staying silent
        assert router.poll(10_000), f"only {len(sent)} copies"
        identity, body = router.recv_multipart()
        kind, fields = wire.unpack(body)
        sent.extend(wire.as_order(f) for f in wire.as_batch(fields)) if kind is wire.Kind.ORDERS \
            else sent.append(wire.as_order(fields))
    assert len({o.clordid for o in sent}) == 1
    assert sent[0].send_ts < sent[1].send_ts < sent[2].send_ts
    cid = sent[0].clordid
    for _ in range(2):  # answered twice (two copies reached an order manager): acked once
        router.send_multipart([identity, wire.encode_reply(cid, wire.FILLED, 1, 101.0, 5, 6)])
    news.send(wire.encode_eos("news", 0))
    bell.send(wire.encode_eos("doorbell", 1))
    stats = strat.stop()
    c = stats["counters"]
    assert c["orders_sent"] == 1 and c["orders_resent"] >= 2
    assert c["orders_acked"] == 1 and c["duplicate_replies"] == 1 and c["unmatched_replies"] == 0
    assert stats["acked_ids"] == [[cid, cid]]
    for sock in (news, bell, router):
        sock.close()


def test_strategy_does_not_trade_on_a_stale_book_and_resumes_when_it_is_live(
        write_topology, component, book, ctx, tmp_path, monkeypatch):
    book.claim_writer()
    strat, news, _, bell, router = strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch,
                                             book_max_age_s=0.5)
    aapl = book.index["AAPL"]
    book.write(aapl, 99.0, 101.0, 100.0, 5, 1, 1, time.monotonic_ns())
    book.heartbeat(time.monotonic_ns() - 10_000_000_000)  # the writer last beat 10 s ago
    bell.send(wire.encode_doorbell(1, [aapl], 1))
    news.send(wire.encode_news(1, "AAPL", 90, 1))  # OnePerQuote sells on any news: skipped as well
    assert not router.poll(500)
    book.heartbeat()
    seq = 1
    deadline = time.monotonic() + 10
    while not router.poll(100):  # the strategy looks at the writer every 50 ms
        assert time.monotonic() < deadline, "no order once the book was live again"
        seq += 1
        book.heartbeat()
        bell.send(wire.encode_doorbell(seq, [aapl], seq))
    router.recv_multipart()
    news.send(wire.encode_eos("news", 1))
    bell.send(wire.encode_eos("doorbell", seq))
    c = strat.stop()["counters"]
    assert c["stale_book_skips"] >= 2 and c["stale_book_periods"] == 1
    assert "not trading: the book is stale (writer (pid" in strat.log.read_text()
    for sock in (news, bell, router):
        sock.close()


def test_orderbook_resyncs_when_its_publisher_restarts_instead_of_counting_duplicates(
        write_topology, component, book, ctx, tmp_path):
    pub, ob, bell = orderbook_rig(write_topology, component, book, ctx, tmp_path)
    aapl = book.index["AAPL"]
    for seq in (1, 2, 3):
        pub.send(wire.encode_tick(seq, "AAPL", 1.0, 2.0, 1.5, seq, seq))
    recv_until(bell, lambda k, f: book.read(aapl) is not None and book.read(aapl).tick_seq == 3)
    pub.close(linger=0)  # the gateway dies; a new one binds the same endpoint with a new session
    pub = sockets.publisher(ctx, f"ipc://{tmp_path}/p.ipc", "prices", 2, 1000, False)
    deadline = time.monotonic() + 10
    while sockets.drain_subscriptions(pub) <= 0:  # the orderbook reconnects by itself
        assert time.monotonic() < deadline, "the orderbook did not resubscribe"
        pub.poll(100)
    for seq in (1, 2):
        pub.send(wire.encode_tick(seq, "AAPL", 5.0, 6.0, 5.5, 10 + seq, 10 + seq))
    pub.send(wire.encode_eos("prices", 2))
    recv_until(bell, lambda k, f: book.read(aapl).size == 12)
    c = ob.stop()["counters"]
    assert (c["resyncs"], c["tick_duplicates"], c["tick_gaps"], c["ticks_applied"]) == (1, 0, 0, 5)
    assert c["resubscribed"] == 1
    bell.close()
    pub.close()
