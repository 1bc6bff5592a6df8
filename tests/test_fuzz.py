"""Hostile peers against live processes: random and malformed frames thrown at a real order
manager's ROUTER, a real orderbook's price subscription and a real strategy's news and doorbell
subscriptions, while a well-behaved peer carries on beside them.

What must hold: the well-behaved peer is served in full, every malformed message a reply is
possible for is answered with a reason, the malformed ones are counted exactly, and the process
is alive at the end and stops cleanly.

The frames come from a seeded generator: each test prints its seed and puts it in its failure
messages. ``ZMQTRADE_FUZZ_SEED=N`` reruns with another seed (the default is fixed, so CI is
repeatable), ``ZMQTRADE_FUZZ_SCALE=10`` throws ten times as many frames. No sleeps: every wait
is a poll on the message it waits for, with a deadline.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import threading
import time
from typing import Any, Callable, Iterator

import msgpack
import zmq

from conftest import BASE
from test_components import orderbook_rig, strategy_rig
from zmqtrade import sockets, wire
from zmqtrade.wire import MAX_BATCH, MAX_BODY, VERSION, Kind, WireError

SEED = int(os.environ.get("ZMQTRADE_FUZZ_SEED", "1234567"))
SCALE = float(os.environ.get("ZMQTRADE_FUZZ_SCALE", "1"))
MAXMSGSIZE = MAX_BODY + 1024  # what zmqtrade.sockets sets: larger frames make zmq drop the connection
STRATEGIES = set(BASE["strategies"])
SYMBOLS = BASE["symbols"]
DEADLINE_S = 60.0


def rng_for(test: str) -> tuple[random.Random, str]:
    """This test's generator, and the words that say how to replay it."""
    tag = f"seed {SEED} (rerun with ZMQTRADE_FUZZ_SEED={SEED})"
    print(f"{test}: {tag}")
    return random.Random(f"{SEED}:{test}"), tag


def n_of(k: int) -> int:
    return max(1, int(k * SCALE))


# --------------------------------------------------------------------------- hostile frames
def rand_str(rng: random.Random) -> str:
    """Mostly short: a hostile string that is not a strategy name (so nothing fuzzed can fill)."""
    r = rng.random()
    if r < 0.3:
        s = rng.choice(["", "AAPL", "MSFT", "ZZZ", "BUY", "SELL", "HOLD", "ghost", "filled", "rejected", "prices"])
    elif r < 0.6:
        s = "".join(rng.choice("abcXYZ019 _-\n\t\x00é€\U0001f600") for _ in range(rng.randint(0, 12)))
    elif r < 0.9:
        s = "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(0, 8)))
    else:
        s = "x" * rng.randint(50, 400)
    return s if s not in STRATEGIES else s + "!"


def rand_value(rng: random.Random, depth: int = 0) -> Any:
    """Any msgpack value, biased towards the edges (bools, NaN, inf, int64/uint64 limits, -0.0)."""
    r = rng.random()
    if r < 0.08:
        return None
    if r < 0.16:
        return rng.random() < 0.5
    if r < 0.36:
        return rng.choice([0, 1, -1, 2, 7, 100, 101, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -(2**63),
                           rng.randint(-(2**63), 2**64 - 1), rng.randint(-5, 5000)])
    if r < 0.5:
        return rng.choice([0.0, -0.0, 1.5, -1.0, math.nan, math.inf, -math.inf, 5e-324, 1.7e308,
                           rng.uniform(-1e6, 1e6)])
    if r < 0.68:
        return rand_str(rng)
    if r < 0.74:
        return rng.randbytes(rng.randint(0, 16))
    if r < 0.78:
        return msgpack.ExtType(rng.randint(0, 127), rng.randbytes(rng.randint(0, 8)))
    if r < 0.92 and depth < 3:
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    if depth < 2:
        return {rand_value(rng, 3) if rng.random() < 0.5 else rand_str(rng): rand_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.randint(-3, 3)


def packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def mutate(rng: random.Random, body: bytes) -> bytes:
    """Byte flips, cuts and splices: the frames nearest to valid ones."""
    b = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(b)) if b else 0
        op = rng.random()
        if op < 0.4 and b:
            b[i] = rng.randrange(256)
        elif op < 0.7:
            del b[i:i + rng.randint(1, 8)]
        else:
            b[i:i] = rng.randbytes(rng.randint(1, 8))
    return bytes(b)


def ghost_order(rng: random.Random) -> wire.Order:
    """A well-formed order of a strategy the topology does not have: decoded, then rejected."""
    return wire.Order(rng.randint(1, 10**12), "ghost", rng.choice(SYMBOLS + ["ZZZ"]), rng.choice(["BUY", "SELL", "X"]),
                      rng.randint(-5, 2000), rng.choice([1.0, 100.5, -1.0, 0.0]), 1, 2, 3, 4)


def almost(rng: random.Random, fields: list[Any]) -> list[Any]:
    """``fields`` with one to three replaced by anything, or one dropped or added."""
    f = list(fields)
    r = rng.random()
    if r < 0.15 and f:
        del f[rng.randrange(len(f))]
    elif r < 0.3:
        f.insert(rng.randint(0, len(f)), rand_value(rng))
    else:
        for _ in range(rng.randint(1, 3)):
            if f:
                f[rng.randrange(len(f))] = rand_value(rng)
    return f


SAMPLES = [wire.encode_tick(1, "AAPL", 1.0, 2.0, 1.5, 100, 5), wire.encode_news(1, "AAPL", 50, 5),
           wire.encode_doorbell(1, [0, 1], 5), wire.encode_reply(1, wire.FILLED, 1, 1.0, 2, 3),
           wire.encode_eos("prices", 3), wire.encode_welcome("prices", 9),
           wire.encode_ticks(1, ["AAPL", "MSFT"], [1.0, 2.0], [1.5, 2.5], [1.2, 2.2], [100, 200], [5, 6]),
           wire.encode_orders([wire.Order(i, "ghost", "AAPL", "BUY", 1, 1.0, 1, 2, 3, 4) for i in (1, 2)])]


def hostile_body(rng: random.Random, valid: Callable[[], bytes]) -> bytes:
    """One hostile body; ``valid()`` makes a valid body of the kind the socket expects, to mutate."""
    r = rng.random()
    if r < 0.12:
        return rng.randbytes(rng.randint(0, 64))
    if r < 0.22:
        b = valid()
        return b[:rng.randrange(len(b))]                                  # truncated
    if r < 0.36:
        return mutate(rng, valid())
    if r < 0.52:                                                          # an array of anything
        kind = rng.choice([*range(len(Kind)), len(Kind), 99, -1, rand_value(rng)])
        version = VERSION if rng.random() < 0.7 else rng.choice([0, 2, "1", True, 1.0, None])
        return packb([kind, version, *(rand_value(rng) for _ in range(rng.randint(0, 12)))])
    if r < 0.7:                                                           # right kind, wrong fields
        k, fields = wire.unpack(valid())
        return packb([int(k), VERSION, *almost(rng, list(fields))])
    if r < 0.78:
        return rng.choice(SAMPLES)                                        # a valid body of some kind
    if r < 0.84:
        return packb(rand_value(rng))                                     # not an array
    if r < 0.88:
        return b"\x91" * rng.randint(100, 3000) + b"\x01"                  # nested deeper than the stack
    if r < 0.9:
        return rng.choice([b"", b"\xc1", b"\xd5\xff\x00\x00", b"\xc7\xff\xff\x00"])  # empty, reserved, bad ext
    if r < 0.92:                                                          # above MAX_BODY, under MAXMSGSIZE
        pad = MAX_BODY + rng.randint(1, 900)
        return packb([int(Kind.ORDER), VERSION, 1, "s" * pad])[:pad]
    return mutate(rng, rng.choice(SAMPLES))


# --------------------------------------------------------------------------- order manager
def order_body(rng: random.Random) -> bytes:
    return wire.encode_order(ghost_order(rng))


def hostile_order_message(rng: random.Random) -> list[bytes]:
    """The frames of one DEALER message to the order manager."""
    r = rng.random()
    if r < 0.08:                                                          # multipart
        return [hostile_body(rng, lambda: order_body(rng)) for _ in range(rng.randint(2, 4))]
    if r < 0.25:                                                          # an ORDERS batch with bad items
        items: list[Any] = []
        for _ in range(rng.choice([0, 1, 2, 5, 20, MAX_BATCH + 1]) if rng.random() < 0.2 else rng.randint(1, 8)):
            q = rng.random()
            items.append(list(ghost_order(rng)) if q < 0.4 else almost(rng, list(ghost_order(rng))) if q < 0.8
                         else rand_value(rng))
        return [packb([int(Kind.ORDERS), VERSION, items] if rng.random() < 0.9 else
                      [int(Kind.ORDERS), VERSION, items, rand_value(rng)])]
    if r < 0.3:
        return [order_body(rng)]                                          # well-formed, rejected by validation
    return [hostile_body(rng, lambda: order_body(rng))]


def om_expectation(frames: list[bytes]) -> tuple[str, list[tuple[int, bool]]]:
    """What the order manager must answer, per its documented rule: the reply kind, and per order
    (clordid, malformed). A message that fails as a whole is one malformed order."""
    body = frames[0]
    batch = False  # an ORDERS is answered with REPLIES, whatever it held
    try:
        if len(frames) != 1:
            raise WireError("multipart")
        kind, fields = wire.unpack(body)
        if kind is Kind.ORDER:
            items: tuple = (fields,)
        elif kind is Kind.ORDERS:
            batch = True
            items = wire.as_batch(fields)
        elif kind is Kind.POSITIONS_ASK:  # answered with POSITIONS: refused, malformed or not
            try:
                wire.as_positions_ask(fields)
                return "POSITIONS", [(-1, False)]
            except WireError:
                return "POSITIONS", [(-1, True)]
        else:
            raise WireError("kind")
    except WireError:
        cid = wire.order_clordid(body) if len(frames) == 1 and not batch else None
        return ("REPLIES" if batch else "REPLY"), [(-1 if cid is None else cid, True)]
    out = []
    for item in items:
        try:
            out.append((wire.as_order(item).clordid, False))
        except WireError:
            out.append((item[0] if type(item) is tuple and item and type(item[0]) is int else -1, True))
    return ("REPLIES" if batch else "REPLY"), out


def decode_replies(body: bytes) -> tuple[str, list[wire.Reply]]:
    kind, fields = wire.unpack(body)
    if kind is Kind.REPLY:
        return "REPLY", [wire.as_reply(fields)]
    if kind is Kind.POSITIONS:
        return "POSITIONS", [wire.as_positions(fields)]
    assert kind is Kind.REPLIES, kind
    return "REPLIES", [wire.as_reply(i) for i in wire.as_batch(fields)]


def om_rig(write_topology, component, book, tmp_path, **om: Any):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, **om}})
    book.claim_writer()
    for i, sym in enumerate(SYMBOLS):
        book.write(book.index[sym], 100.0 + i, 100.5 + i, 100.25 + i, 100, i + 1, 1, time.monotonic_ns())
    proc = component("ordermanager", topo, book.name)
    proc.expect("ready")
    proc.start()
    return proc, ep


class GoodClient:
    """A strategy that plays by the rules: ``window`` orders in flight, each answered in turn."""

    def __init__(self, ctx: zmq.Context, ep: str, total: int, window: int = 8) -> None:
        self.sock = sockets.dealer(ctx, ep, "trend")
        self.total, self.window = total, window
        self.next_cid = 1
        self.sent: dict[int, float] = {}
        self.answered: dict[int, wire.Reply] = {}
        self.waits: list[float] = []

    def top_up(self) -> None:
        while self.next_cid <= self.total and len(self.sent) - len(self.answered) < self.window:
            cid = self.next_cid
            side = "BUY" if cid % 2 else "SELL"
            self.sock.send(wire.encode_order(wire.Order(cid, "trend", SYMBOLS[cid % 2], side, 1, 100.0, 1, 2, 3, 4)))
            self.sent[cid] = time.monotonic()
            self.next_cid += 1

    def take(self) -> None:
        while True:
            try:
                body = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            for r in decode_replies(body)[1]:
                assert r.clordid in self.sent and r.clordid not in self.answered, r
                assert r.status in (wire.FILLED, wire.REJECTED)
                self.answered[r.clordid] = r
                self.waits.append(time.monotonic() - self.sent[r.clordid])

    @property
    def done(self) -> bool:
        return len(self.answered) == self.total

    def p99_ms(self) -> float:
        w = sorted(self.waits)
        return 1000 * w[min(len(w) - 1, int(0.99 * len(w)))] if w else 0.0


def test_ordermanager_survives_random_frames_from_several_clients(write_topology, component, book, tmp_path):
    rng, tag = rng_for("ordermanager")
    om, ep = om_rig(write_topology, component, book, tmp_path)
    ctx = zmq.Context()
    try:
        good = GoodClient(ctx, ep, total=n_of(400))
        fuzzers = [sockets.dealer(ctx, ep, f"fuzz-{i}") for i in range(3)]
        big = sockets.dealer(ctx, ep, "fuzz-oversize")   # frames above MAXMSGSIZE: zmq drops its connection
        expected: list[list[tuple[str, list[tuple[int, bool]]]]] = [[] for _ in fuzzers]
        got: list[list[tuple[str, list[wire.Reply]]]] = [[] for _ in fuzzers]
        n_msgs = n_of(3000)
        oversize = 0
        poller = zmq.Poller()
        for s in (good.sock, *fuzzers, big):
            poller.register(s, zmq.POLLIN)

        def receive(timeout_ms: int) -> None:
            events = dict(poller.poll(timeout_ms))
            if good.sock in events:
                good.take()
            for i, s in enumerate(fuzzers):
                if s in events:
                    while True:
                        try:
                            got[i].append(decode_replies(s.recv(zmq.NOBLOCK)))
                        except zmq.Again:
                            break
            assert big not in events, f"the oversize client was answered; {tag}"

        for k in range(n_msgs):
            i = k % len(fuzzers)
            frames = hostile_order_message(rng)
            expected[i].append(om_expectation(frames))
            fuzzers[i].send_multipart(frames)
            if rng.random() < 0.01:
                big.send(rng.randbytes(MAXMSGSIZE + rng.randint(1, 200_000)))
                oversize += 1
            good.top_up()
            receive(0)
        # The oversize client's connection was dropped: it reconnects by itself and is served again.
        # (What it had queued behind an oversize frame may be lost with the connection, so it probes
        # until a reply comes.)
        probe = 0
        while True:
            probe += 1
            big.send(wire.encode_order(wire.Order(probe, "ghost", "AAPL", "BUY", 1, 1.0, 1, 2, 3, 4)))
            if big.poll(1000):
                kind, replies = decode_replies(big.recv())
                assert replies[0].status == wire.REJECTED and "unknown strategy" in replies[0].detail, tag
                break
            assert probe < 30, f"the oversize client was never served again; {tag}"
        poller.unregister(big)
        deadline = time.monotonic() + DEADLINE_S
        while not (good.done and all(len(g) == len(e) for g, e in zip(got, expected))):
            assert time.monotonic() < deadline, (
                f"good client answered {len(good.answered)}/{good.total}, fuzzers "
                f"{[len(g) for g in got]} of {[len(e) for e in expected]}; {tag}")
            good.top_up()
            receive(100)
        assert om.proc.poll() is None, f"order manager died; {tag}\n{om.log.read_text()[-3000:]}"

        # every hostile message was answered in order, each order of it with a reason
        malformed = received = 0
        for i in range(len(fuzzers)):
            for n, ((want_kind, want), (kind, replies)) in enumerate(zip(expected[i], got[i])):
                where = f"fuzzer {i} message {n}; {tag}"
                assert kind == want_kind, where
                if kind == "POSITIONS":  # an ask: not an order, but a malformed one is counted
                    (p,), ((_, bad),) = replies, want
                    assert p.status == wire.OK or p.detail.startswith("malformed: ") == bad, (p, where)
                    malformed += bad
                    continue
                assert [r.clordid for r in replies] == [cid for cid, _ in want], where
                for r, (_, bad) in zip(replies, want):
                    assert r.status == wire.REJECTED and isinstance(r.detail, str) and r.detail, where
                    assert r.detail.startswith("malformed: ") == bad, (r.detail, where)
                malformed += sum(bad for _, bad in want)
                received += len(want)
        stats = om.stop()
    finally:
        for s in (good.sock, *fuzzers, big):
            s.close(linger=0)
        ctx.term()

    c = stats["counters"]
    print(f"orders {good.total} answered, p99 wait {good.p99_ms():.1f} ms; {oversize} oversize frames; {c}")
    assert c["malformed_messages"] == malformed > 0, tag
    # the oversize client's probes reached it too (the first may have been answered after we stopped looking)
    assert received + good.total < c["orders_received"] <= received + good.total + probe, tag
    assert c["orders_filled"] == sum(r.filled for r in good.answered.values()), tag
    assert c["orders_filled"] + c["orders_rejected"] <= c["orders_received"], tag
    assert c["orders_received"] <= c["orders_filled"] + c["orders_rejected"] + c["duplicate_orders"], tag
    assert c["replies_undeliverable"] < probe, tag


def test_ordermanager_reject_reasons_stay_small(write_topology, component, book, tmp_path):
    om, ep = om_rig(write_topology, component, book, tmp_path)
    ctx = zmq.Context()
    d = sockets.dealer(ctx, ep, "trend")
    try:
        bodies = [wire.encode_order(wire.Order(1, "trend", "\x00" * 20_000, "BUY", 1, 1.0, 1, 2, 3, 4)),
                  wire.encode_order(wire.Order(2, "trend", "AAPL", "\x01" * 20_000, 1, 1.0, 1, 2, 3, 4)),
                  wire.encode_order(wire.Order(3, "\x02" * 20_000, "AAPL", "BUY", 1, 1.0, 1, 2, 3, 4))]
        for cid, body in enumerate(bodies, 1):
            assert len(body) <= MAX_BODY
            d.send(body)
            assert d.poll(5000), f"order {cid}: no reply (the reply was too big for the client)"
            reply = d.recv()
            assert len(reply) <= MAX_BODY
            (r,) = decode_replies(reply)[1]
            assert r.clordid == cid and r.status == wire.REJECTED
        om.stop()
    finally:
        d.close(linger=0)
        ctx.term()


def test_ordermanager_keeps_no_state_for_unknown_strategies(write_topology, component, book, tmp_path):
    """Observed through the duplicate filter: a re-sent order of an unknown strategy is not a duplicate
    of anything, because nothing was kept for it."""
    om, ep = om_rig(write_topology, component, book, tmp_path)
    ctx = zmq.Context()
    d = sockets.dealer(ctx, ep, "stranger")
    try:
        for _ in range(2):
            d.send(wire.encode_order(wire.Order(1, "stranger", "AAPL", "BUY", 1, 1.0, 1, 2, 3, 4)))
            assert d.poll(5000)
            (r,) = decode_replies(d.recv())[1]
            assert r.status == wire.REJECTED and "unknown strategy" in r.detail
        stats = om.stop()
    finally:
        d.close(linger=0)
        ctx.term()
    assert stats["counters"]["duplicate_orders"] == 0


def test_ordermanager_serves_a_good_client_through_a_flood_from_an_unknown_one(
        write_topology, component, book, tmp_path):
    """20k orders as fast as one DEALER can send them, for a strategy that does not exist."""
    om, ep = om_rig(write_topology, component, book, tmp_path)
    n_flood = n_of(20_000)
    ctx = zmq.Context()
    flood_replies: list[wire.Reply] = []
    flood_error: list[BaseException] = []
    started = threading.Event()

    def flood() -> None:
        sock = sockets.dealer(ctx, ep, "intruder")
        try:
            bodies = [wire.encode_order(wire.Order(cid, "intruder", "AAPL", "BUY", 1, 100.0, 1, 2, 3, 4))
                      for cid in range(1, n_flood + 1)]
            started.set()
            for body in bodies:
                sock.send(body)
            deadline = time.monotonic() + DEADLINE_S
            while len(flood_replies) < n_flood and time.monotonic() < deadline:
                if sock.poll(100):
                    flood_replies.extend(decode_replies(sock.recv())[1])
        except BaseException as exc:  # reported by the main thread
            flood_error.append(exc)
        finally:
            started.set()
            sock.close(linger=0)

    thread = threading.Thread(target=flood, daemon=True)
    good = GoodClient(ctx, ep, total=n_of(300), window=1)  # one at a time: each order waits behind the flood
    try:
        thread.start()
        assert started.wait(DEADLINE_S)
        deadline = time.monotonic() + DEADLINE_S
        while not good.done:
            assert time.monotonic() < deadline, f"good client answered {len(good.answered)}/{good.total}"
            good.top_up()
            if good.sock.poll(100):
                good.take()
        thread.join(DEADLINE_S + 5)
        assert not thread.is_alive() and not flood_error, flood_error
        assert om.proc.poll() is None, om.log.read_text()[-3000:]
        stats = om.stop()
    finally:
        good.sock.close(linger=0)
        thread.join(5)
        ctx.term()

    print(f"good client p99 wait {good.p99_ms():.1f} ms through a flood of {n_flood}")
    assert len(flood_replies) == n_flood
    assert [r.clordid for r in flood_replies] == list(range(1, n_flood + 1))
    assert all(r.status == wire.REJECTED and "unknown strategy 'intruder'" in r.detail for r in flood_replies)
    assert all(r.filled for r in good.answered.values())
    c = stats["counters"]
    assert c["orders_received"] == n_flood + good.total and c["orders_filled"] == good.total
    assert c["orders_rejected"] == n_flood and c["malformed_messages"] == 0


# --------------------------------------------------------------------------- subscribers
def drain_outcome(body: bytes, decoders: dict[Kind, Callable[[tuple], Any]]) -> str:
    """What ``Service.drain`` makes of a body: "valid", "eos", "welcome" or "malformed"."""
    try:
        kind, fields = wire.unpack(body)
        if kind in decoders:
            decoders[kind](fields)
            return "valid"
        if kind is Kind.EOS:
            wire.as_eos(fields)
            return "eos"
        if kind is Kind.WELCOME:
            return "welcome"
        return "malformed"
    except WireError:
        return "malformed"


def hostile_for(rng: random.Random, decoders: dict[Kind, Callable[[tuple], Any]],
                valid: Callable[[], bytes]) -> bytes:
    """A hostile body that the subscriber must count as malformed. Bodies that happen to decode
    as valid messages, ends of stream or welcomes are not thrown: the subscriber rightly takes
    those as the stream's own (and a forged sequence number would skew its gap counts, a
    different problem from malformed input)."""
    while True:
        body = hostile_body(rng, valid)
        if drain_outcome(body, decoders) == "malformed":
            return body


def xpub(ctx: zmq.Context, ep: str, stream: str) -> zmq.Socket:
    """The test's publisher, made as zmqtrade's (each subscription reaches the test, which
    applies it and greets with WELCOME), with room for every frame."""
    return sockets.publisher(ctx, ep, stream, 77, 1_000_000, False)


def await_subscription(pub: zmq.Socket, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pub.poll(100) and sockets.drain_subscriptions(pub):
            return
    raise AssertionError("no subscription arrived")


def recv_until(sock: zmq.Socket, pred: Callable[[Kind, tuple], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(50):
            kind, fields = wire.unpack(sock.recv())
            if pred(kind, fields):
                return
    raise AssertionError(f"condition not met in {timeout} s")


PRICES = {Kind.TICK: wire.as_tick, Kind.TICKS: wire.as_ticks}


@contextlib.contextmanager
def fed_orderbook(write_topology, component, book, tmp_path) -> Iterator[tuple[Any, zmq.Socket, zmq.Socket]]:
    """:func:`orderbook_rig` with the test's verbose, roomy XPUB; its sockets closed after."""
    ctx = zmq.Context()
    pub = bell = None
    try:
        pub, ob, bell = orderbook_rig(write_topology, component, book, ctx, tmp_path,
                                      make_pub=lambda c, e: xpub(c, e, "prices"))
        yield ob, pub, bell
    finally:
        for sock in (bell, pub):
            if sock is not None:
                sock.close(linger=0)
        ctx.term()


def test_orderbook_counts_random_frames_and_applies_every_valid_tick(write_topology, component, book, tmp_path):
    rng, tag = rng_for("orderbook")
    with fed_orderbook(write_topology, component, book, tmp_path) as (ob, pub, bell):

        seq = 0
        last: dict[str, tuple] = {}   # symbol -> (bid, size, seq) of its newest valid tick
        n_ticks = n_malformed = 0

        def valid_message() -> bytes:
            nonlocal seq, n_ticks
            n = 1 if rng.random() < 0.6 else rng.randint(2, 20)
            syms = [rng.choice(SYMBOLS) for _ in range(n)]
            bids = [round(rng.uniform(1, 500), 2) for _ in range(n)]
            sizes = [rng.randint(1, 10) * 100 for _ in range(n)]
            first = seq + 1
            seq += n
            n_ticks += n
            for i, s in enumerate(syms):
                last[s] = (bids[i], sizes[i], first + i)
            if n == 1:
                return wire.encode_tick(first, syms[0], bids[0], bids[0] + 0.01, bids[0], sizes[0], first)
            return wire.encode_ticks(first, syms, bids, [b + 0.01 for b in bids], bids, sizes,
                                     list(range(first, first + n)))

        def sample() -> bytes:  # a valid tick to mutate, not sent as such
            return wire.encode_tick(seq + 1, rng.choice(SYMBOLS), 1.0, 1.5, 1.2, 100, 5)

        for _ in range(n_of(3000)):
            if rng.random() < 0.3:
                pub.send(valid_message())
            pub.send(hostile_for(rng, PRICES, sample))
            n_malformed += 1
        pub.send(valid_message())

        def caught_up(kind: Kind, fields: tuple) -> bool:
            return kind is Kind.DOORBELL and all(
                (q := book.read(book.index[s])) is not None and q.tick_seq == v[2] for s, v in last.items())
        recv_until(bell, caught_up)
        assert ob.proc.poll() is None, f"orderbook died; {tag}"
        for s, (bid, size, tick_seq) in last.items():
            q = book.read(book.index[s])
            assert (q.bid, q.size, q.tick_seq) == (bid, size, tick_seq), (s, tag)
        pub.send(wire.encode_eos("prices", seq))
        stats = ob.stop()

    c = stats["counters"]
    print(f"{n_ticks} ticks, {n_malformed} malformed frames: {c}")
    assert c["malformed_messages"] == n_malformed, tag
    assert c["ticks_applied"] == n_ticks, tag
    assert (c["tick_gaps"], c["tick_duplicates"], c["unknown_symbols"]) == (0, 0, 0), tag


def test_orderbook_reconnects_after_an_oversize_frame(write_topology, component, book, tmp_path):
    with fed_orderbook(write_topology, component, book, tmp_path) as (ob, pub, bell):
        pub.send(wire.encode_tick(1, "AAPL", 1.0, 2.0, 1.5, 100, 1))
        recv_until(bell, lambda k, f: k is Kind.DOORBELL)
        pub.send(b"\x00" * (MAXMSGSIZE + 1))  # the SUB drops the connection
        await_subscription(pub, timeout=5.0)   # ... and must come back, to be welcomed again
        pub.send(wire.encode_tick(2, "AAPL", 3.0, 4.0, 3.5, 100, 2))
        pub.send(wire.encode_eos("prices", 2))
        recv_until(bell, lambda k, f: k is Kind.DOORBELL and book.read(book.index["AAPL"]).tick_seq == 2, 10)
        stats = ob.stop()
    c = stats["counters"]
    assert c["resubscribed"] >= 1 and c["ticks_applied"] == 2 and c["malformed_messages"] == 0


def test_strategy_counts_random_frames_on_news_and_doorbell(write_topology, component, book, tmp_path,
                                                            monkeypatch):
    rng, tag = rng_for("strategy")
    aapl = book.index["AAPL"]
    book.claim_writer()  # the test is the book's (live) writer
    book.write(aapl, 99.0, 101.0, 100.0, 5, 1, 1, time.monotonic_ns())
    ctx = zmq.Context()
    news = bell = router = None
    try:
        strat, news, _, bell, router = strategy_rig(write_topology, component, book, ctx, tmp_path, monkeypatch,
                                                    qty=7, symbols=["AAPL"], book_max_age_s=600)

        orders: list[wire.Order] = []

        def answer() -> None:
            while True:
                try:
                    identity, body = router.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                kind, fields = wire.unpack(body)
                batch = [wire.as_order(fields)] if kind is Kind.ORDER else [wire.as_order(i) for i in
                                                                              wire.as_batch(fields)]
                orders.extend(batch)
                router.send_multipart([identity, wire.encode_replies(
                    [(o.clordid, wire.FILLED, 1, o.price, 1, 2) for o in batch])])

        news_seq = bell_seq = malformed = 0
        news_decoders = {Kind.NEWS: wire.as_news}
        bell_decoders = {Kind.DOORBELL: wire.as_doorbell}
        for _ in range(n_of(2000)):
            r = rng.random()
            if r < 0.1:
                news_seq += 1
                news.send(wire.encode_news(news_seq, "AAPL", rng.randint(0, 100), news_seq))
            elif r < 0.2:
                bell_seq += 1
                bell.send(wire.encode_doorbell(bell_seq, [aapl], bell_seq))
            elif r < 0.6:
                news.send(hostile_for(rng, news_decoders, lambda: wire.encode_news(news_seq + 1, "AAPL", 50, 1)))
                malformed += 1
            else:
                bell.send(hostile_for(rng, bell_decoders, lambda: wire.encode_doorbell(bell_seq + 1, [aapl], 1)))
                malformed += 1
            answer()
        # Last on each stream: a valid message whose order proves everything before it was read.
        book.write(aapl, 99.0, 101.0, 100.0, 5, 2, 424242, time.monotonic_ns())
        book.heartbeat()
        bell_seq += 1
        bell.send(wire.encode_doorbell(bell_seq, [aapl], bell_seq))
        news_seq += 1
        news.send(wire.encode_news(news_seq, "AAPL", 50, news_seq))
        deadline = time.monotonic() + DEADLINE_S
        while not (any(o.tick_ts == 424242 for o in orders) and sum(o.tick_ts == 0 for o in orders) >= news_seq):
            assert time.monotonic() < deadline, f"{len(orders)} orders, {news_seq} news; {tag}"
            if router.poll(100):
                answer()
        assert strat.proc.poll() is None, f"strategy died; {tag}"
        news.send(wire.encode_eos("news", news_seq))
        bell.send(wire.encode_eos("doorbell", bell_seq))
        strat.control.send(strat.name, "stop")
        deadline = time.monotonic() + DEADLINE_S
        while (stats := strat.control.recv(0.05)) is None or stats[1] != "stats":  # answer re-sends meanwhile
            assert time.monotonic() < deadline, f"no stats; {tag}"
            answer()
        assert strat.proc.wait(10) == 0, strat.log.read_text()
        stats = stats[2]
    finally:
        for sock in (news, bell, router):
            if sock is not None:
                sock.close(linger=0)
        ctx.term()

    c = stats["counters"]
    print(f"{news_seq} news, {bell_seq} doorbells, {malformed} malformed frames: {c}")
    assert c["malformed_messages"] == malformed, tag
    assert (c["news_received"], c["doorbells"]) == (news_seq, bell_seq), tag
    assert (c["news_gaps"], c["doorbell_gaps"]) == (0, 0), tag
    assert c["orders_acked"] == c["orders_sent"] == len({o.clordid for o in orders}), tag


# --------------------------------------------------------------------------- the live stack
def test_a_live_stack_rides_out_publisher_floods_and_control_socket_fuzz(launch, write_topology, tmp_path):
    """A stack started by the launcher, streaming: raw XSUBs flood the gateway's and the
    orderbook's publishers with subscription garbage and over-long topics, and strangers throw
    random frames (random verbs and payloads, multipart, oversize, with guessed and real-looking
    routing ids) at the control socket. No process is judged hung or restarted, the ticks keep
    flowing, the run stops cleanly with exit 0, and the launcher counts what it refused."""
    from conftest import ipc_endpoints
    import json
    import signal

    from zmqtrade.launch import control

    rng, tag = rng_for("live_stack")
    topo = write_topology({**ipc_endpoints(tmp_path), "gateway": {**BASE["gateway"], "rate": 1000},
                           "supervision": {"heartbeat_s": 0.1, "liveness_s": 1.0}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    run.wait_for("streaming")
    stack = json.loads((run_dir / "stack.json").read_text())
    eps = {k: v for p in stack["processes"].values() for k, v in p["endpoints"].items()}
    ctx = zmq.Context()
    socks: list[zmq.Socket] = []
    sent = 0
    try:
        for key in ("gateway.prices", "gateway.news", "orderbook.doorbell"):
            for _ in range(2):
                x = ctx.socket(zmq.XSUB)
                x.setsockopt(zmq.LINGER, 0)
                x.connect(eps[key])
                socks.append(x)
        for rid in (b"gateway", b"ordermanager.00", None):
            d = ctx.socket(zmq.DEALER)
            d.setsockopt(zmq.LINGER, 0)
            if rid is not None:
                d.setsockopt(zmq.ROUTING_ID, rid)
            d.connect(stack["control"])
            socks.append(d)
        xsubs, dealers = socks[:6], socks[6:]
        verbs = [control.READY, control.START, control.STOP, control.STATS, control.PROGRESS, control.HEARTBEAT,
                 control.STARTING, "ghost"]
        deadline = time.monotonic() + 6.0  # a few liveness periods of flooding
        while time.monotonic() < deadline:
            for x in xsubs:
                for _ in range(200):
                    r = rng.random()
                    body = (b"\x01" + rng.randbytes(rng.randint(17, 900)) if r < 0.4  # topic over 16 bytes
                            else b"\x00" + rng.randbytes(rng.randint(0, 64)) if r < 0.5  # unsubscribe garbage
                            else rng.randbytes(rng.randint(0, 600)))                    # not a notification
                    try:
                        x.send(body, zmq.NOBLOCK)
                    except zmq.Again:
                        break
            for d in dealers:
                for _ in range(50):
                    r = rng.random()
                    frames = ([control.pack(rng.choice(verbs), rand_value(rng))] if r < 0.6
                              else [rng.randbytes(rng.randint(0, 200)) for _ in range(rng.randint(1, 4))])
                    try:
                        d.send_multipart(frames, zmq.NOBLOCK)
                        sent += 1
                    except zmq.Again:
                        break
            assert run.proc.poll() is None, f"the launcher ended under the flood ({tag}):\n{run.output}"
            time.sleep(0.02)  # pacing the flood (a tight loop would only measure this test's own CPU)
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, f"{tag}\n{run.output}\n{run.stderr}"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["failures"] == [] and report["recovered"] == [], tag
    assert all(p["restarts"] == 0 and not p["killed"] for p in report["processes"].values()), tag
    assert not [e for e in report["events"] if "heartbeat" in e["event"]], report["events"]
    c = report["counters"]
    # libzmq 4.3's manual XPUB pairs a garbage message read with the pipe of the next queued
    # subscription, and sends the next message to that pipe alone: a tick then reaches one
    # subscriber, and the others count it as a gap (docs/concepts/reliability.md, Hostile input). Degraded, counted.
    assert c["ticks_published"] > 3000 and c["ticks_applied"] >= 0.9 * c["ticks_published"], c
    assert c["ticks_published"] - c["ticks_applied"] == c["tick_gaps"], c  # every tick missed is counted
    assert report["processes"]["launcher"]["counters"]["control_messages_refused"] >= sent * 0.9, tag
