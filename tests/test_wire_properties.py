"""Property-based tests of the wire decoders (hypothesis).

Two properties, for every kind:

- round trip: whatever an encoder accepts within the documented ranges decodes back to the same
  values, of the same types;
- hostility: arbitrary bytes, and arbitrary msgpack values in any position, either decode to a
  message whose fields have the documented types and ranges, or raise ``WireError``; never any
  other exception (a ``TypeError`` or ``ValueError`` escaping a decoder would crash the process
  that reads the socket).

Example counts are kept small (the suite runs on two cores). For a longer hunt:
``HYPOTHESIS_PROFILE=wire-long pytest tests/test_wire_properties.py``.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zmqtrade import fastwire, wire
from zmqtrade.wire import MAX_BATCH, MAX_BODY, VERSION, Kind, WireError

settings.register_profile("wire", deadline=None, max_examples=150, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("wire-long", deadline=None, max_examples=5000, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "wire"))

U64 = 2**64
DECODERS: dict[Kind, Callable[[tuple], Any]] = {
    Kind.WELCOME: wire.as_welcome, Kind.TICK: wire.as_tick, Kind.NEWS: wire.as_news, Kind.DOORBELL: wire.as_doorbell,
    Kind.ORDER: wire.as_order, Kind.REPLY: wire.as_reply, Kind.EOS: wire.as_eos, Kind.TICKS: wire.as_ticks,
    Kind.PING: wire.as_ping,
}
FIELD_COUNTS = {Kind.WELCOME: 2, Kind.TICK: 7, Kind.NEWS: 4, Kind.DOORBELL: 3, Kind.ORDER: 10, Kind.REPLY: 6,
                Kind.EOS: 2, Kind.TICKS: 7, Kind.ORDERS: 1, Kind.REPLIES: 1, Kind.PING: 1, Kind.PONG: 1}

# --------------------------------------------------------------------------- value strategies
ints = st.integers(-(2**63), U64 - 1)                        # every int msgpack can carry
uints = st.integers(0, U64 - 1)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # surrogates cannot be UTF-8
finite = st.floats(allow_nan=False, allow_infinity=False)
prices = finite | ints
any_float = st.floats()                                        # NaN, +-inf, -0.0, subnormals


def ext_types() -> st.SearchStrategy:
    """Application ext types (codes 0..127) and msgpack's timestamp ext (-1); an ext of any other
    code, or a timestamp with garbage data, is made by the byte-level tests."""
    return (st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12))
            | st.builds(msgpack.Timestamp, st.integers(0, 2**34 - 1), st.integers(0, 999_999_999)))


scalars = st.none() | st.booleans() | ints | any_float | texts | st.binary(max_size=12) | ext_types()
msgpack_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(scalars.filter(lambda k: not isinstance(k, (list, dict))), inner, max_size=3),
    max_leaves=20)
"""Any msgpack value: maps with non-str keys, bins, ext types, NaN, bools, nested arrays."""


def pack(*items: Any) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


# --------------------------------------------------------------------------- what a decoded value must be
def is_int(x: Any) -> bool:
    return type(x) is int


def is_uint(x: Any) -> bool:
    return type(x) is int and 0 <= x < U64


def is_price(x: Any) -> bool:
    return type(x) in (int, float) and math.isfinite(x)


def check_decoded(kind: Kind, m: Any) -> None:
    """The documented contract of a decoded message (wire.py's module docstring)."""
    if kind is Kind.TICK:
        assert type(m) is wire.Tick
        assert is_uint(m.seq) and is_uint(m.size) and is_uint(m.ts_ns) and type(m.symbol) is str
        assert is_price(m.bid) and is_price(m.ask) and is_price(m.last)
    elif kind is Kind.TICKS:
        assert type(m) is wire.Ticks
        n = len(m.symbols)
        assert 1 <= n <= MAX_BATCH and is_uint(m.first_seq) and is_uint(m.first_seq + n - 1)
        assert all(type(c) is tuple and len(c) == n for c in m[1:])
        assert all(type(s) is str for s in m.symbols)
        assert all(is_price(p) for p in m.bids + m.asks + m.lasts)
        assert all(is_uint(x) for x in m.sizes + m.ts_ns)
        assert [t.seq for t in m.each()] == list(range(m.first_seq, m.first_seq + n))
    elif kind is Kind.NEWS:
        assert type(m) is wire.News
        assert is_uint(m.seq) and is_uint(m.ts_ns) and type(m.symbol) is str
        assert is_int(m.sentiment) and 0 <= m.sentiment <= 100
    elif kind is Kind.DOORBELL:
        assert type(m) is wire.Doorbell
        assert is_uint(m.seq) and is_uint(m.ts_ns) and type(m.slots) is tuple and all(map(is_int, m.slots))
    elif kind is Kind.ORDER:
        assert type(m) is wire.Order
        assert all(map(is_int, (m.clordid, m.qty, m.tick_ts, m.book_ts, m.decide_ts, m.send_ts)))
        assert all(0 <= v < 2**63 for v in (m.clordid, m.tick_ts, m.book_ts, m.decide_ts, m.send_ts))
        assert type(m.strategy) is str and type(m.symbol) is str and type(m.side) is str
        assert is_price(m.price)
    elif kind is Kind.REPLY:
        assert type(m) is wire.Reply
        assert all(map(is_int, (m.clordid, m.order_id, m.recv_ts, m.ts_ns)))
        assert m.status in (wire.FILLED, wire.REJECTED)
        assert is_price(m.detail) if m.filled else type(m.detail) is str
    elif kind is Kind.WELCOME:
        assert type(m) is wire.Welcome and type(m.stream) is str and is_int(m.session)
    elif kind is Kind.EOS:
        assert type(m) is wire.Eos and type(m.stream) is str and is_uint(m.last_seq)
    elif kind is Kind.PING:
        assert is_uint(m)
    else:
        raise AssertionError(kind)


def decode_all_ways(body: bytes) -> None:
    """Feed a body through unpack, then through every decoder: each decodes to a well-typed
    message or raises WireError, whatever the body's kind says."""
    fast_agrees(body)
    try:
        kind, fields = wire.unpack(body)
    except WireError as exc:
        assert len(str(exc)) < 200  # never echoes a hostile body back
        return
    assert type(kind) is Kind and type(fields) is tuple
    try_fields(fields)


def try_fields(fields: tuple) -> None:
    for k, decode in DECODERS.items():
        try:
            m = decode(fields)
        except WireError as exc:
            assert len(str(exc)) < 300
            continue
        check_decoded(k, m)
    try:
        items = wire.as_batch(fields)
    except WireError:
        return
    assert type(items) is tuple and 1 <= len(items) <= MAX_BATCH  # each item fails or decodes on its own
    for item in items:
        for k in (Kind.ORDER, Kind.REPLY):
            try:
                check_decoded(k, DECODERS[k](item))
            except WireError:
                pass


def fast_agrees(body: bytes) -> None:
    """The C decoders (fastwire) take a subset of what the checked ones take, and give the same
    values; they never raise."""
    for fast, one, many, decode in ((fastwire.orders, Kind.ORDER, Kind.ORDERS, wire.as_order),
                                    (fastwire.replies, Kind.REPLY, Kind.REPLIES, wire.as_reply)):
        got = fast(body)
        if got is None:
            continue
        kind, fields = wire.unpack(body)
        assert kind in (one, many)
        expected = (decode(fields),) if kind is one else tuple(map(decode, wire.as_batch(fields)))
        if one is Kind.ORDER:
            assert got[0] is (kind is many)
            got = got[1]
        same(got, expected)


# --------------------------------------------------------------------------- round trips
def same(got: Any, expected: Any) -> None:
    """Equal, and of the same types all the way down (1 == 1.0 == True would hide a swap)."""
    assert type(got) is type(expected)
    if isinstance(got, tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            same(g, e)
    else:
        assert got == expected or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))


def roundtrip(body: bytes, kind: Kind) -> tuple:
    assert len(body) <= MAX_BODY
    got_kind, fields = wire.unpack(body)
    assert got_kind is kind
    return fields


@given(uints, texts, prices, prices, prices, uints, uints)
def test_tick_round_trip(seq, sym, bid, ask, last, size, ts):
    m = wire.as_tick(roundtrip(wire.encode_tick(seq, sym, bid, ask, last, size, ts), Kind.TICK))
    same(m, wire.Tick(seq, sym, bid, ask, last, size, ts))
    check_decoded(Kind.TICK, m)


@st.composite
def tick_columns(draw: st.DrawFn, max_n: int = 20) -> tuple:
    n = draw(st.integers(1, max_n))
    first = draw(st.integers(0, U64 - n))
    col = lambda s: draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    return first, col(texts), col(prices), col(prices), col(prices), col(uints), col(uints)


@given(tick_columns())
def test_ticks_round_trip(cols):
    m = wire.as_ticks(roundtrip(wire.encode_ticks(*cols), Kind.TICKS))
    same(m, wire.Ticks(cols[0], *map(tuple, cols[1:])))
    check_decoded(Kind.TICKS, m)
    assert m.each() == [wire.Tick(cols[0] + i, *row) for i, row in enumerate(zip(*cols[1:]))]


def test_ticks_round_trip_at_the_batch_limit():
    n = MAX_BATCH
    cols = (U64 - n, ["SYM"] * n, [1.5] * n, [2] * n, [1.75] * n, [U64 - 1] * n, list(range(n)))
    body = wire.encode_ticks(*cols)
    assert len(body) <= MAX_BODY
    same(wire.as_ticks(roundtrip(body, Kind.TICKS)), wire.Ticks(cols[0], *map(tuple, cols[1:])))


@given(uints, texts, st.integers(0, 100), uints)
def test_news_round_trip(seq, sym, sentiment, ts):
    same(wire.as_news(roundtrip(wire.encode_news(seq, sym, sentiment, ts), Kind.NEWS)),
         wire.News(seq, sym, sentiment, ts))


@given(uints, st.lists(ints, max_size=50), uints)
def test_doorbell_round_trip(seq, slots, ts):
    same(wire.as_doorbell(roundtrip(wire.encode_doorbell(seq, slots, ts), Kind.DOORBELL)),
         wire.Doorbell(seq, tuple(slots), ts))


i63 = st.integers(0, 2**63 - 1)                               # an order's clordid and timestamps
orders = st.builds(wire.Order, i63, texts, texts, texts, ints, prices, i63, i63, i63, i63)
replies = st.one_of(
    st.tuples(ints, st.just(wire.FILLED), ints, prices, ints, ints),
    st.tuples(ints, st.just(wire.REJECTED), ints, texts, ints, ints))


@given(orders)
def test_order_round_trip(o):
    body = wire.encode_order(o)
    same(wire.as_order(roundtrip(body, Kind.ORDER)), o)
    same(fastwire.orders(body), (False, (o,)))


@given(st.lists(orders, min_size=1, max_size=8))
def test_orders_round_trip_as_order_or_batch(os_):
    body = wire.encode_orders(os_)
    kind, fields = wire.unpack(body)
    if len(os_) == 1:
        assert kind is Kind.ORDER
        same(wire.as_order(fields), os_[0])
    else:
        assert kind is Kind.ORDERS
        got = [wire.as_order(i) for i in wire.as_batch(fields)]
        for g, o in zip(got, os_, strict=True):
            same(g, o)
    same(fastwire.orders(body), (len(os_) > 1, tuple(os_)))


@given(replies)
def test_reply_round_trip(r):
    m = wire.as_reply(roundtrip(wire.encode_reply(*r), Kind.REPLY))
    same(m, wire.Reply(*r))
    assert m.filled == (r[1] == wire.FILLED)


@given(st.lists(replies, min_size=1, max_size=8))
def test_replies_round_trip_as_reply_or_batch(rs):
    body = wire.encode_replies(rs)
    kind, fields = wire.unpack(body)
    got = [wire.as_reply(fields)] if kind is Kind.REPLY else [wire.as_reply(i) for i in wire.as_batch(fields)]
    assert kind is (Kind.REPLY if len(rs) == 1 else Kind.REPLIES)
    for g, r in zip(got, rs, strict=True):
        same(g, wire.Reply(*r))
    same(fastwire.replies(body), tuple(wire.Reply(*r) for r in rs))


@given(texts, ints)
def test_welcome_round_trip(stream, session):
    same(wire.as_welcome(roundtrip(wire.encode_welcome(stream, session), Kind.WELCOME)), wire.Welcome(stream, session))


@given(texts, uints)
def test_eos_round_trip(stream, last_seq):
    same(wire.as_eos(roundtrip(wire.encode_eos(stream, last_seq), Kind.EOS)), wire.Eos(stream, last_seq))


@given(uints)
def test_ping_and_pong_round_trip(ts):
    same(wire.as_ping(roundtrip(wire.encode_ping(ts), Kind.PING)), ts)
    same(wire.as_ping(roundtrip(wire.encode_pong(ts), Kind.PONG)), ts)


# --------------------------------------------------------------------------- hostile input
@given(st.binary(max_size=200))
@example(b"")
@example(b"\x91" * 5000 + b"\x01")       # nested deeper than msgpack's stack
@example(b"\xd6\xff\x00\x00\x00\x01")     # a bare timestamp ext
@example(b"\xd5\xff\x00\x00")             # a timestamp ext with invalid data
def test_arbitrary_bytes_decode_or_raise_wire_error(body):
    decode_all_ways(body)
    got = wire.order_clordid(body)
    assert got is None or is_int(got)


@given(st.sampled_from([wire.encode_tick(1, "A", 1.0, 2.0, 1.5, 3, 4), wire.encode_order(
    wire.Order(7, "s", "A", "BUY", 1, 1.0, 1, 2, 3, 4)), wire.encode_ticks(1, ["A", "B"], [1, 2], [1, 2], [1, 2],
                                                                             [1, 2], [1, 2])]),
       st.data())
def test_mutated_valid_bodies_decode_or_raise_wire_error(body, data):
    """Byte flips, truncations and splices of real bodies: the shapes closest to valid."""
    b = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(b) - 1)))
        if op == "flip" and b:
            b[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del b[i:i + data.draw(st.integers(1, 8))]
        else:
            b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    decode_all_ways(bytes(b))


@given(st.one_of(st.sampled_from(list(Kind)).map(int), ints, msgpack_values),
       st.one_of(st.just(VERSION), msgpack_values),
       st.lists(msgpack_values, max_size=11))
def test_arbitrary_msgpack_arrays_decode_or_raise_wire_error(kind, version, fields):
    decode_all_ways(pack(kind, version, *fields))


@given(msgpack_values)
def test_any_msgpack_value_as_a_body(value):
    decode_all_ways(msgpack.packb(value, use_bin_type=True))


@st.composite
def almost_valid(draw: st.DrawFn) -> bytes:
    """A valid envelope and the right field count, with some fields replaced by anything: what
    gets past the cheap length checks to the type and range checks."""
    kind = draw(st.sampled_from(sorted(FIELD_COUNTS)))
    n = FIELD_COUNTS[kind]
    base: list[Any] = list(wire.unpack(VALID[kind])[1])
    assert len(base) == n
    for i in draw(st.sets(st.integers(0, n - 1), min_size=1)):
        base[i] = draw(msgpack_values | st.sampled_from([True, False, -1, U64 - 1, -(2**63), math.nan, math.inf,
                                                          -math.inf, -0.0, "", (), []]))
    return pack(int(kind), VERSION, *base)


VALID = {
    Kind.WELCOME: wire.encode_welcome("prices", 1),
    Kind.TICK: wire.encode_tick(1, "A", 1.0, 2.0, 1.5, 3, 4),
    Kind.NEWS: wire.encode_news(1, "A", 50, 2),
    Kind.DOORBELL: wire.encode_doorbell(1, [0, 1], 2),
    Kind.ORDER: wire.encode_order(wire.Order(7, "s", "A", "BUY", 1, 1.0, 1, 2, 3, 4)),
    Kind.REPLY: wire.encode_reply(7, wire.FILLED, 1, 1.0, 2, 3),
    Kind.EOS: wire.encode_eos("prices", 1),
    Kind.TICKS: wire.encode_ticks(1, ["A", "B"], [1.0, 2.0], [1.5, 2.5], [1.2, 2.2], [1, 2], [3, 4]),
    Kind.ORDERS: wire.encode_orders([wire.Order(i, "s", "A", "BUY", 1, 1.0, 1, 2, 3, 4) for i in (1, 2)]),
    Kind.REPLIES: wire.encode_replies([(1, wire.FILLED, 1, 1.0, 2, 3), (2, wire.REJECTED, 0, "no", 2, 3)]),
    Kind.PING: wire.encode_ping(5),
    Kind.PONG: wire.encode_pong(5),
}


@given(almost_valid())
def test_almost_valid_messages_decode_or_raise_wire_error(body):
    decode_all_ways(body)


@given(st.lists(st.one_of(st.lists(scalars, min_size=10, max_size=10), st.lists(scalars, max_size=12),
                          msgpack_values), min_size=0, max_size=4))
def test_batches_with_bad_items_decode_item_by_item(items):
    """An ORDERS batch: the envelope is checked once, then each item decodes or fails alone."""
    decode_all_ways(pack(int(Kind.ORDERS), VERSION, items))


@st.composite
def bad_tick_columns(draw: st.DrawFn) -> tuple:
    """Valid columns with one cell replaced: the batch checks must catch it wherever it is."""
    cols = [list(c) if isinstance(c, list) else c for c in draw(tick_columns(max_n=6))]
    col = draw(st.integers(1, 6))
    row = draw(st.integers(0, len(cols[1]) - 1))
    cols[col][row] = draw(st.sampled_from([True, None, -1, math.nan, math.inf, "x", 1.5, b"b", [1]]) | msgpack_values)
    return tuple(cols)


@given(bad_tick_columns())
def test_ticks_with_one_bad_cell(cols):
    try:
        m = wire.as_ticks(wire.unpack(pack(int(Kind.TICKS), VERSION, *cols))[1])
    except WireError:
        return
    check_decoded(Kind.TICKS, m)  # the replacement happened to be valid for its column (e.g. 1.5 as a price)


# --------------------------------------------------------------------------- what hypothesis found (kept as examples)
@pytest.mark.parametrize("fields", [
    pytest.param((1, "A", 1.0, 2.0, 1.5, -1, 4), id="negative-size"),        # killed the orderbook mid seqlock write
    pytest.param((1, "A", 1.0, 2.0, 1.5, 3, -4), id="negative-ts"),
    pytest.param((-1, "A", 1.0, 2.0, 1.5, 3, 4), id="negative-seq"),
])
def test_tick_rejects_what_the_book_cannot_store(fields):
    with pytest.raises(WireError):
        wire.as_tick(wire.unpack(pack(int(Kind.TICK), VERSION, *fields))[1])


@pytest.mark.parametrize("cols", [
    pytest.param((1, ("A", "B"), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1, -1), (1, 1)), id="negative-size"),
    pytest.param((1, ("A", "B"), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1, 1), (-(2**63), 1)), id="negative-ts"),
    pytest.param((-1, ("A", "B"), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1, 1), (1, 1)), id="negative-first-seq"),
    pytest.param((U64 - 1, ("A", "B"), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (1, 1), (1, 1)), id="last-seq-past-u64"),
])
def test_ticks_reject_what_the_book_cannot_store(cols):
    with pytest.raises(WireError):
        wire.as_ticks(wire.unpack(pack(int(Kind.TICKS), VERSION, *cols))[1])


@pytest.mark.parametrize("fields", [
    pytest.param((1, wire.FILLED, 1, "101.5", 2, 3), id="filled-str"),
    pytest.param((1, wire.FILLED, 1, None, 2, 3), id="filled-nil"),
    pytest.param((1, wire.FILLED, 1, math.nan, 2, 3), id="filled-nan"),
    pytest.param((1, wire.FILLED, 1, True, 2, 3), id="filled-bool"),
    pytest.param((1, wire.REJECTED, 0, 1.5, 2, 3), id="rejected-float"),
    pytest.param((1, wire.REJECTED, 0, [["deep"]], 2, 3), id="rejected-array"),
])
def test_reply_detail_must_match_status(fields):
    with pytest.raises(WireError):
        wire.as_reply(wire.unpack(pack(int(Kind.REPLY), VERSION, *fields))[1])


@pytest.mark.parametrize("kind, fields", [
    pytest.param(Kind.NEWS, (-1, "A", 50, 1), id="news-negative-seq"),
    pytest.param(Kind.DOORBELL, (1, (0,), -1), id="doorbell-negative-ts"),
    pytest.param(Kind.EOS, ("prices", -1), id="eos-negative-last-seq"),
])
def test_sequence_numbers_and_timestamps_are_unsigned(kind, fields):
    with pytest.raises(WireError):
        DECODERS[kind](wire.unpack(pack(int(kind), VERSION, *fields))[1])


def test_errors_do_not_echo_hostile_input():
    """A reject quoting a 60 KB version field would itself break MAX_BODY at the client."""
    for body in (pack(int(Kind.ORDER), "v" * 60_000), pack("k" * 60_000, VERSION)):
        with pytest.raises(WireError) as exc:
            wire.unpack(body)
        assert len(str(exc.value)) < 100


@pytest.mark.parametrize("body", [msgpack.packb(b"\x00\x00\x05", use_bin_type=True), msgpack.packb("abc")])
def test_order_clordid_reads_only_arrays(body):
    assert wire.order_clordid(body) is None


plain_values = st.recursive(st.none() | st.booleans() | ints | any_float | texts | st.binary(max_size=12),
                            lambda inner: st.lists(inner, max_size=6) | st.lists(inner, max_size=6).map(tuple),
                            max_leaves=20)


@given(plain_values)
def test_encoders_write_what_msgpack_writes(value):
    """The encoders use msgspec's packer: a client reading the protocol with any msgpack library
    gets the bytes msgpack itself would write (smallest int and str forms, float64 prices)."""
    assert wire._pack(value) == msgpack.packb(value, use_bin_type=True)


@pytest.mark.parametrize("body", [
    pack(int(Kind.ORDER), VERSION, 7, "s", "A" * MAX_BODY, "BUY", 1, 100.0, 1, 2, 3, 4),
    pack(int(Kind.ORDERS), VERSION, [[7, "s", "A" * (MAX_BODY // 2), "BUY", 1, 1.0, 1, 2, 3, 4]] * 2),
    pack(int(Kind.REPLY), VERSION, 7, wire.REJECTED, 0, "r" * MAX_BODY, 1, 2)])
def test_a_body_over_the_limit_is_refused_on_both_paths(body):
    """Sockets let a little over MAX_BODY through (MAXMSGSIZE has room for framing): the C
    decoders refuse it too, so it is rejected with the checked path's reason."""
    assert MAX_BODY < len(body) < MAX_BODY + 1024
    assert fastwire.orders(body) is None and fastwire.replies(body) is None
    with pytest.raises(WireError, match="exceeds"):
        wire.unpack(body)


def test_an_encoder_falls_back_to_msgpack_for_what_msgspec_refuses():
    class Side(str):  # a strategy's own str subclass
        pass
    o = wire.Order(7, "s", "A", Side("BUY"), 1, 1.0, 1, 2, 3, 4)
    assert wire.as_order(wire.unpack(wire.encode_order(o))[1]).side == "BUY"
