"""Wire protocol v1: every kind round-trips, and hostile bodies raise WireError, never crash."""
from __future__ import annotations

import itertools

import msgpack
import pytest

from zmqtrade import wire
from zmqtrade.wire import MAX_BODY, VERSION, Kind, WireError

NAN, INF = float("nan"), float("inf")

ORDER = wire.Order(clordid=42, strategy="trend", symbol="AAPL", side="BUY", qty=10, price=101.25,
                   tick_ts=1_700_000_000_000_000_001, book_ts=1_700_000_000_000_000_002,
                   decide_ts=1_700_000_000_000_000_003, send_ts=1_700_000_000_000_000_004)

DECODERS = {
    Kind.TICK: wire.as_tick, Kind.NEWS: wire.as_news, Kind.DOORBELL: wire.as_doorbell, Kind.ORDER: wire.as_order,
    Kind.REPLY: wire.as_reply, Kind.WELCOME: wire.as_welcome, Kind.EOS: wire.as_eos,
    Kind.POSITIONS_ASK: wire.as_positions_ask, Kind.POSITIONS: wire.as_positions,
}
HELD = [wire.Holding("AAPL", -30, 101.25, 12.5, 0.75, 9), wire.Holding("MSFT", 0, 0.0, -3.0, 0.0, 2)]

# (id, body, kind, expected decoded message)
ROUND_TRIPS = [
    ("tick", wire.encode_tick(7, "AAPL", 99.5, 100.5, 100.0, 300, 1_700_000_000_123_456_789), Kind.TICK,
     wire.Tick(7, "AAPL", 99.5, 100.5, 100.0, 300, 1_700_000_000_123_456_789)),
    ("tick-int-prices", wire.encode_tick(0, "X", 1, 2, 3, 0, 0), Kind.TICK, wire.Tick(0, "X", 1, 2, 3, 0, 0)),
    ("news", wire.encode_news(3, "MSFT", 73, 123), Kind.NEWS, wire.News(3, "MSFT", 73, 123)),
    ("news-low", wire.encode_news(0, "M", 0, 0), Kind.NEWS, wire.News(0, "M", 0, 0)),
    ("news-high", wire.encode_news(1, "M", 100, 1), Kind.NEWS, wire.News(1, "M", 100, 1)),
    ("doorbell", wire.encode_doorbell(11, [0, 3, 5], 456), Kind.DOORBELL, wire.Doorbell(11, (0, 3, 5), 456)),
    ("doorbell-tuple", wire.encode_doorbell(12, (2,), 1), Kind.DOORBELL, wire.Doorbell(12, (2,), 1)),
    ("doorbell-empty", wire.encode_doorbell(13, [], 1), Kind.DOORBELL, wire.Doorbell(13, (), 1)),
    ("order", wire.encode_order(ORDER), Kind.ORDER, ORDER),
    ("order-sell", wire.encode_order(ORDER._replace(side="SELL", qty=1, price=7)), Kind.ORDER,
     ORDER._replace(side="SELL", qty=1, price=7)),
    ("reply-filled", wire.encode_reply(42, wire.FILLED, 9001, 101.5, 10, 20), Kind.REPLY,
     wire.Reply(42, "filled", 9001, 101.5, 10, 20)),
    ("reply-rejected", wire.encode_reply(43, wire.REJECTED, 0, "max position", 11, 21), Kind.REPLY,
     wire.Reply(43, "rejected", 0, "max position", 11, 21)),
    ("welcome", wire.encode_welcome("prices", 123456789), Kind.WELCOME, wire.Welcome("prices", 123456789)),
    ("eos", wire.encode_eos("news", 999), Kind.EOS, wire.Eos("news", 999)),
    ("positions-ask", wire.encode_positions_ask("trend", 5), Kind.POSITIONS_ASK, wire.PositionsAsk("trend", 5)),
    ("positions", wire.encode_positions("trend", HELD, 77), Kind.POSITIONS,
     wire.Positions("trend", "ok", tuple(HELD), 77)),
    ("positions-none", wire.encode_positions("trend", [], 78), Kind.POSITIONS, wire.Positions("trend", "ok", (), 78)),
    ("positions-refused", wire.encode_positions("x", None, 79, "unknown strategy 'x'"), Kind.POSITIONS,
     wire.Positions("x", "rejected", "unknown strategy 'x'", 79)),
]


@pytest.mark.parametrize("fields", [
    ("trend", "ok", ((("AAPL", 1.5, 1.0, 0.0, 0.0, 1),)), 1),   # a fractional position
    ("trend", "ok", (("AAPL", 1, float("nan"), 0.0, 0.0, 1),), 1),
    ("trend", "ok", "no", 1), ("trend", "rejected", (), 1), ("trend", "maybe", (), 1), ("trend", "ok", (), -0.5),
])
def test_a_bad_positions_answer_is_refused(fields):
    with pytest.raises(WireError):
        wire.as_positions(fields)


@pytest.mark.parametrize(("body", "kind", "expected"), [c[1:] for c in ROUND_TRIPS], ids=[c[0] for c in ROUND_TRIPS])
def test_round_trip(body, kind, expected):
    assert isinstance(body, bytes) and len(body) <= MAX_BODY
    got_kind, fields = wire.unpack(body)
    assert got_kind is kind
    msg = DECODERS[kind](fields)
    assert type(msg) is type(expected)
    assert msg == expected
    assert [type(v) for v in msg] == [type(v) for v in expected]  # 1 == 1.0 would hide a swap


def test_reply_filled_property():
    assert wire.as_reply(wire.unpack(wire.encode_reply(1, wire.FILLED, 2, 3.0, 4, 5))[1]).filled
    assert not wire.as_reply(wire.unpack(wire.encode_reply(1, wire.REJECTED, 0, "no", 4, 5))[1]).filled


def test_body_starts_with_kind_and_version():
    raw = msgpack.unpackb(wire.encode_news(1, "A", 50, 2))
    assert raw[:2] == [int(Kind.NEWS), VERSION]


# --------------------------------------------------------------------------- unpack rejects
def pack(*items) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


TICK_FIELDS = (1, "AAPL", 99.5, 100.5, 100.0, 3, 4)


def _max_body_welcome(extra: int) -> bytes:
    """A welcome whose body is exactly MAX_BODY + extra bytes long."""
    overhead = len(wire.encode_welcome("", 1))
    stream_len = MAX_BODY + extra - overhead - 2  # str8 -> str16 header adds two bytes
    body = wire.encode_welcome("s" * stream_len, 1)
    assert len(body) == MAX_BODY + extra
    return body


UNPACK_REJECTS = [
    ("empty", b""),
    ("reserved-byte", b"\xc1"),
    ("truncated", wire.encode_tick(*TICK_FIELDS)[:-3]),
    ("trailing-bytes", wire.encode_eos("s", 1) + b"\x00"),
    ("text", b"hello, not msgpack"),
    ("map", msgpack.packb({"kind": 1, "version": 1})),
    ("empty-map", msgpack.packb({})),
    ("int", msgpack.packb(1)),
    ("str", msgpack.packb("tick")),
    ("nil", msgpack.packb(None)),
    ("empty-array", pack()),
    ("one-item-array", pack(1)),
    ("version-0", pack(Kind.TICK, 0, *TICK_FIELDS)),
    ("version-2", pack(Kind.TICK, 2, *TICK_FIELDS)),
    ("version-str", pack(Kind.TICK, "1", *TICK_FIELDS)),
    ("version-nil", pack(Kind.TICK, None, *TICK_FIELDS)),
    ("version-true", pack(Kind.TICK, True, *TICK_FIELDS)),   # true == 1 in Python
    ("version-float", pack(Kind.TICK, 1.0, *TICK_FIELDS)),
    ("kind-99", pack(99, VERSION)),
    ("kind-negative", pack(-1, VERSION)),
    ("kind-str", pack("tick", VERSION, *TICK_FIELDS)),
    ("kind-nil", pack(None, VERSION)),
    ("kind-true", pack(True, VERSION, *TICK_FIELDS)),        # would be Kind.TICK by value
    ("kind-float", pack(1.0, VERSION, *TICK_FIELDS)),
    ("kind-one-past-last", pack(max(Kind) + 1, VERSION)),
    ("bin-field", pack(Kind.TICK, VERSION, 1, b"AAPL", 99.5, 100.5, 100.0, 3, 4)),
    ("bin-body", msgpack.packb(b"\x01\x01", use_bin_type=True)),
    ("invalid-utf8-str", b"\x94\x00\x01\xa1\xff\x01"),
    ("array-too-long", wire.encode_doorbell(1, list(range(5000)), 2)),
    ("oversized-garbage", b"\x00" * (MAX_BODY + 1)),
    ("oversized-valid", _max_body_welcome(1)),
]


@pytest.mark.parametrize("body", [c[1] for c in UNPACK_REJECTS], ids=[c[0] for c in UNPACK_REJECTS])
def test_unpack_rejects(body):
    with pytest.raises(WireError):
        wire.unpack(body)


def test_oversized_message_names_the_limit():
    with pytest.raises(WireError, match=f"exceeds {MAX_BODY}"):
        wire.unpack(_max_body_welcome(1))


def test_body_of_exactly_max_body_is_accepted():
    kind, fields = wire.unpack(_max_body_welcome(0))
    assert kind is Kind.WELCOME and wire.as_welcome(fields).session == 1


def test_wire_error_is_a_value_error():
    assert issubclass(WireError, ValueError)


# --------------------------------------------------------------------------- decoders reject
ORDER_FIELDS = tuple(ORDER)


def _order(**changes) -> tuple:
    return tuple(ORDER._replace(**changes))


# (id, kind, fields after [kind, version]), or a pytest.param(kind, fields, id=...)
DECODER_REJECTS = [
    # tick
    ("tick-short", Kind.TICK, TICK_FIELDS[:-1]),
    ("tick-long", Kind.TICK, (*TICK_FIELDS, 5)),
    ("tick-seq-str", Kind.TICK, ("1", *TICK_FIELDS[1:])),
    ("tick-seq-float", Kind.TICK, (1.0, *TICK_FIELDS[1:])),
    ("tick-seq-bool", Kind.TICK, (True, *TICK_FIELDS[1:])),
    ("tick-symbol-int", Kind.TICK, (1, 5, *TICK_FIELDS[2:])),
    ("tick-symbol-nil", Kind.TICK, (1, None, *TICK_FIELDS[2:])),
    ("tick-bid-nan", Kind.TICK, (1, "A", NAN, 1.0, 1.0, 3, 4)),
    ("tick-ask-inf", Kind.TICK, (1, "A", 1.0, INF, 1.0, 3, 4)),
    ("tick-last-neg-inf", Kind.TICK, (1, "A", 1.0, 1.0, -INF, 3, 4)),
    ("tick-bid-str", Kind.TICK, (1, "A", "1.0", 1.0, 1.0, 3, 4)),
    pytest.param(Kind.TICK, (1, "A", 1.0, True, 1.0, 3, 4), id="tick-ask-bool"),
    pytest.param(Kind.TICK, (1, "A", False, 1.0, 1.0, 3, 4), id="tick-bid-bool"),
    ("tick-last-nil", Kind.TICK, (1, "A", 1.0, 1.0, None, 3, 4)),
    ("tick-size-float", Kind.TICK, (1, "A", 1.0, 1.0, 1.0, 3.0, 4)),
    ("tick-ts-str", Kind.TICK, (1, "A", 1.0, 1.0, 1.0, 3, "4")),
    # news
    ("news-short", Kind.NEWS, (1, "A", 50)),
    ("news-sentiment-101", Kind.NEWS, (1, "A", 101, 2)),
    ("news-sentiment-negative", Kind.NEWS, (1, "A", -1, 2)),
    ("news-sentiment-float", Kind.NEWS, (1, "A", 50.0, 2)),
    ("news-sentiment-bool", Kind.NEWS, (1, "A", True, 2)),
    ("news-sentiment-str", Kind.NEWS, (1, "A", "50", 2)),
    ("news-sentiment-nan", Kind.NEWS, (1, "A", NAN, 2)),
    ("news-symbol-int", Kind.NEWS, (1, 2, 50, 2)),
    ("news-ts-float", Kind.NEWS, (1, "A", 50, 2.5)),
    # doorbell
    ("doorbell-short", Kind.DOORBELL, (1, (0,))),
    ("doorbell-slots-int", Kind.DOORBELL, (1, 0, 2)),
    ("doorbell-slots-str", Kind.DOORBELL, (1, "0", 2)),
    ("doorbell-slot-str", Kind.DOORBELL, (1, (0, "1"), 2)),
    ("doorbell-slot-float", Kind.DOORBELL, (1, (0, 1.0), 2)),
    ("doorbell-slot-bool", Kind.DOORBELL, (1, (True,), 2)),
    ("doorbell-seq-float", Kind.DOORBELL, (1.0, (0,), 2)),
    # order
    ("order-9-fields", Kind.ORDER, ORDER_FIELDS[:-1]),
    ("order-11-fields", Kind.ORDER, (*ORDER_FIELDS, 0)),
    ("order-qty-str", Kind.ORDER, _order(qty="10")),
    ("order-qty-float", Kind.ORDER, _order(qty=10.0)),
    ("order-clordid-float", Kind.ORDER, _order(clordid=42.0)),
    ("order-clordid-bool", Kind.ORDER, _order(clordid=True)),
    ("order-clordid-nil", Kind.ORDER, _order(clordid=None)),
    ("order-ts-float", Kind.ORDER, _order(send_ts=1.5)),
    ("order-strategy-int", Kind.ORDER, _order(strategy=1)),
    ("order-symbol-nil", Kind.ORDER, _order(symbol=None)),
    ("order-side-int", Kind.ORDER, _order(side=0)),
    ("order-price-nan", Kind.ORDER, _order(price=NAN)),
    ("order-price-inf", Kind.ORDER, _order(price=INF)),
    ("order-price-neg-inf", Kind.ORDER, _order(price=-INF)),
    ("order-price-str", Kind.ORDER, _order(price="101.25")),
    ("order-price-bool", Kind.ORDER, _order(price=True)),
    ("order-price-nil", Kind.ORDER, _order(price=None)),
    # reply
    ("reply-short", Kind.REPLY, (1, "filled", 2, 3.0, 4)),
    ("reply-status-unknown", Kind.REPLY, (1, "ok", 2, 3.0, 4, 5)),
    ("reply-status-upper", Kind.REPLY, (1, "FILLED", 2, 3.0, 4, 5)),
    ("reply-clordid-str", Kind.REPLY, ("1", "filled", 2, 3.0, 4, 5)),
    ("reply-order-id-float", Kind.REPLY, (1, "filled", 2.0, 3.0, 4, 5)),
    ("reply-recv-ts-bool", Kind.REPLY, (1, "filled", 2, 3.0, True, 5)),
    # welcome / eos
    ("welcome-long", Kind.WELCOME, ("prices", 1, 2)),
    ("welcome-stream-int", Kind.WELCOME, (1, 1)),
    ("welcome-session-str", Kind.WELCOME, ("prices", "1")),
    ("welcome-session-bool", Kind.WELCOME, ("prices", True)),
    ("eos-short", Kind.EOS, ("news",)),
    ("eos-last-seq-float", Kind.EOS, ("news", 1.0)),
    ("eos-stream-nil", Kind.EOS, (None, 1)),
]


@pytest.mark.parametrize(("kind", "fields"), [
    c if hasattr(c, "marks") else pytest.param(*c[1:], id=c[0]) for c in DECODER_REJECTS])
def test_decoder_rejects(kind, fields):
    got_kind, got_fields = wire.unpack(pack(kind, VERSION, *fields))  # the envelope itself is fine
    assert got_kind is kind
    with pytest.raises(WireError):
        DECODERS[kind](got_fields)


SAME_SHAPE = {frozenset(pair) for pair in itertools.combinations((Kind.WELCOME, Kind.EOS, Kind.POSITIONS_ASK), 2)}
"""All three are [str, int]: their kinds tell them apart."""


@pytest.mark.parametrize(("body_kind", "decoder_kind"), [
    (a, b) for a, b in itertools.permutations(DECODERS, 2) if frozenset({a, b}) not in SAME_SHAPE])
def test_decoder_rejects_other_kinds_fields(body_kind, decoder_kind):
    body = next(c[1] for c in ROUND_TRIPS if c[2] is body_kind)
    _, fields = wire.unpack(body)
    with pytest.raises(WireError):
        DECODERS[decoder_kind](fields)


# --------------------------------------------------------------------------- order_clordid
@pytest.mark.parametrize(("body", "expected"), [
    (wire.encode_order(ORDER), 42),
    (pack(Kind.ORDER, VERSION, *_order(qty="ten")), 42),   # undecodable order, readable clordid
    (pack(Kind.ORDER, VERSION, 7), 7),                      # truncated order
    (pack(Kind.ORDER, 99, 8, "x"), 8),                      # wrong version, still best effort
    (pack(Kind.ORDER, VERSION, "42"), None),
    (pack(Kind.ORDER, VERSION, 4.2), None),
    (pack(Kind.ORDER, VERSION, True), None),
    (pack(Kind.ORDER, VERSION), None),
    (msgpack.packb({"clordid": 1}), None),
    (msgpack.packb(42), None),
    (msgpack.packb("abc"), None),
    (b"", None),
    (b"\xc1\xc1\xc1", None),
], ids=["valid", "bad-qty", "truncated", "bad-version", "str", "float", "bool", "short", "map", "int", "str-body",
        "empty", "garbage"])
def test_order_clordid(body, expected):
    assert wire.order_clordid(body) == expected



# --------------------------------------------------------------------------- TICKS batches
BATCH = (7, ("AAA", "BBB", "AAA"), (1.0, 2.0, 1.5), (1.1, 2.1, 1.6), (1.05, 2.05, 1.55), (100, 200, 300), (10, 20, 30))


def test_ticks_round_trip_and_expand():
    body = wire.encode_ticks(*(list(c) if isinstance(c, tuple) else c for c in BATCH))
    kind, fields = wire.unpack(body)
    assert kind is Kind.TICKS
    b = wire.as_ticks(fields)
    assert b == wire.Ticks(*BATCH)
    assert b.each() == [wire.Tick(7, "AAA", 1.0, 1.1, 1.05, 100, 10), wire.Tick(8, "BBB", 2.0, 2.1, 2.05, 200, 20),
                        wire.Tick(9, "AAA", 1.5, 1.6, 1.55, 300, 30)]


@pytest.mark.parametrize("fields", [
    pytest.param(BATCH[:-1], id="short"),
    pytest.param((7.0, *BATCH[1:]), id="first-seq-float"),
    pytest.param((7, (), (), (), (), (), ()), id="empty"),
    pytest.param((7, BATCH[1], BATCH[2][:2], *BATCH[3:]), id="ragged"),
    pytest.param((7, ("AAA", 5, "AAA"), *BATCH[2:]), id="symbol-int"),
    pytest.param((7, BATCH[1], (1.0, float("nan"), 1.5), *BATCH[3:]), id="bid-nan"),
    pytest.param((7, BATCH[1], BATCH[2], (1.1, float("inf"), 1.6), *BATCH[4:]), id="ask-inf"),
    pytest.param((7, BATCH[1], BATCH[2], BATCH[3], (1.0, "x", 1.0), *BATCH[5:]), id="last-str"),
    pytest.param((7, *BATCH[1:5], (100, True, 300), BATCH[6]), id="size-bool"),
    pytest.param((7, *BATCH[1:6], (10, 20.0, 30)), id="ts-float"),
    pytest.param((7, ("A",) * (wire.MAX_BATCH + 1), *(((1.0,) * (wire.MAX_BATCH + 1),) * 3),
                  ((1,) * (wire.MAX_BATCH + 1),) * 2), id="too-many"),
])
def test_ticks_rejects(fields):
    with pytest.raises(WireError, match="ticks must be"):
        wire.as_ticks(fields)
