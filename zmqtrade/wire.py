"""Wire protocol, version 1: one MessagePack array per ZeroMQ frame.

Arrays rather than maps: half the bytes and about twice the speed to encode and decode.
Every body starts ``[kind, version, ...]``; the remaining fields are fixed per kind and listed
field by field in docs/reference/wire-protocol.md so a client in any language can join. Decoders treat their
input as hostile: anything that is not exactly the expected shape raises :class:`WireError`,
which callers count and (where a reply is possible) answer, and never crash on.

What a decoder guarantees about the values it returns (``tests/test_wire_properties.py``
checks it against arbitrary bytes and arbitrary msgpack objects):

- an int field is an ``int``, never a ``bool`` (msgpack ``true`` would pass ``== 1``);
- a price is an ``int`` or ``float`` and finite;
- a sequence number, size or timestamp of a TICK, TICKS, NEWS, DOORBELL or EOS is a
  non-negative int (so ``0 <= x < 2**64``: msgpack carries nothing larger). The book stores
  them as unsigned 64-bit words: a negative one used to kill the orderbook half-way through
  a seqlock write, leaving the slot torn for every reader. For TICKS the last tick's
  ``first_seq + n - 1`` is below ``2**64`` too;
- a REPLY's ``detail`` is a finite number when filled and a ``str`` when rejected.

Error messages never echo more than a few dozen characters of the input, so a reject
that quotes a hostile body stays far below :data:`MAX_BODY`.
"""
from __future__ import annotations

import math
import os
from enum import IntEnum
from typing import Any

import msgpack
import msgspec

# the message types are wire's API too: wire.Tick, wire.FILLED
from zmqtrade.messages import (  # noqa: F401
    FILLED,
    OK,
    REJECTED,
    SIDES,
    Doorbell,
    Eos,
    Holding,
    News,
    Order,
    Positions,
    PositionsAsk,
    Reply,
    Tick,
    Ticks,
    Welcome,
)

VERSION = 1
MAX_BODY = 64 * 1024
"""Largest body any socket accepts (set as ZMQ_MAXMSGSIZE too)."""
MAX_BATCH = 512
"""Most ticks in one TICKS message (about 30 KB)."""


class Kind(IntEnum):
    WELCOME = 0
    TICK = 1
    NEWS = 2
    DOORBELL = 3
    ORDER = 4
    REPLY = 5
    EOS = 6
    TICKS = 7
    ORDERS = 8
    REPLIES = 9
    POSITIONS_ASK = 10
    POSITIONS = 11
    PING = 12
    PONG = 13


class WireError(ValueError):
    """A body that is not a well-formed message of the expected kind."""


_encode = msgspec.msgpack.Encoder().encode
_msgpack_pack = msgpack.Packer(use_bin_type=True).pack


def _pack(obj: Any) -> bytes:
    """msgspec's encoder (half msgpack's time for an order or a batch of replies; the same bytes
    for every value msgpack packs), and msgpack's for a value msgspec refuses (a str subclass a
    strategy made, say). A few types msgpack refused msgspec packs (a Decimal as a string, a set
    as an array): a strategy's order with such a qty is then refused by the order manager, with
    its reason, instead of raising in the strategy."""
    try:
        return _encode(obj)
    except TypeError:
        return _msgpack_pack(obj)


(_K_WELCOME, _K_TICK, _K_NEWS, _K_DOORBELL, _K_ORDER, _K_REPLY, _K_EOS, _K_TICKS, _K_ORDERS,
 _K_REPLIES, _K_POSITIONS_ASK, _K_POSITIONS, _K_PING, _K_PONG) = map(int, Kind)
"""Kinds as plain ints for the encoders: msgpack packs an IntEnum member a fifth slower."""


# --------------------------------------------------------------------------- encoders
def encode_tick(seq: int, symbol: str, bid: float, ask: float, last: float, size: int, ts_ns: int) -> bytes:
    return _pack((_K_TICK, VERSION, seq, symbol, bid, ask, last, size, ts_ns))


def encode_ticks(first_seq: int, symbols: list[str], bids: list[float], asks: list[float],
                 lasts: list[float], sizes: list[int], ts_ns: list[int]) -> bytes:
    return _pack((_K_TICKS, VERSION, first_seq, symbols, bids, asks, lasts, sizes, ts_ns))


def encode_news(seq: int, symbol: str, sentiment: int, ts_ns: int) -> bytes:
    return _pack((_K_NEWS, VERSION, seq, symbol, sentiment, ts_ns))


def encode_doorbell(seq: int, slots: list[int] | tuple[int, ...], ts_ns: int) -> bytes:
    return _pack((_K_DOORBELL, VERSION, seq, slots, ts_ns))


def encode_order(o: Order) -> bytes:
    return _pack((_K_ORDER, VERSION, *o))


def encode_orders(orders: list[Order]) -> bytes:
    """One order alone as ORDER; several (produced in one wake-up) as one ORDERS message."""
    if len(orders) == 1:
        return _pack((_K_ORDER, VERSION, *orders[0]))
    return _pack((_K_ORDERS, VERSION, orders))


def encode_reply(clordid: int, status: str, order_id: int, detail: Any, recv_ts: int, ts_ns: int) -> bytes:
    return _pack((_K_REPLY, VERSION, clordid, status, order_id, detail, recv_ts, ts_ns))


def encode_fields(fields: list | tuple) -> bytes:
    """A message's fields alone, as one msgpack array (how the order manager keeps an answer)."""
    return _pack(fields)


def encode_replies(replies: list[tuple], batch: bool = False) -> bytes:
    """Reply tuples (fields after kind and version): the answer to an ORDERS (``batch``) is
    always one REPLIES, in its items' order; to an ORDER, one REPLY."""
    if len(replies) == 1 and not batch:
        return _pack((_K_REPLY, VERSION, *replies[0]))
    return _pack((_K_REPLIES, VERSION, replies))


def encode_positions_ask(strategy: str, ts_ns: int) -> bytes:
    return _pack((_K_POSITIONS_ASK, VERSION, strategy, ts_ns))


def encode_positions(strategy: str, holdings: list[Holding] | None, ts_ns: int, reason: str = "") -> bytes:
    """The answer: the holdings (status "ok"), or, with ``holdings`` None, a refusal and why."""
    if holdings is None:
        return _pack((_K_POSITIONS, VERSION, strategy, REJECTED, reason, ts_ns))
    return _pack((_K_POSITIONS, VERSION, strategy, OK, holdings, ts_ns))


def encode_ping(ts_ns: int) -> bytes:
    return _pack((_K_PING, VERSION, ts_ns))


def encode_pong(ts_ns: int) -> bytes:
    return _pack((_K_PONG, VERSION, ts_ns))


def new_session() -> int:
    """A publisher's session id: random, so a restarted publisher is told apart from a reconnect."""
    return int.from_bytes(os.urandom(4), "little") >> 1


def encode_welcome(stream: str, session: int) -> bytes:
    return _pack((_K_WELCOME, VERSION, stream, session))


def encode_eos(stream: str, last_seq: int) -> bytes:
    return _pack((_K_EOS, VERSION, stream, last_seq))


# --------------------------------------------------------------------------- decoders
# Hot path: a decoder is a fast check of the common shape and one tuple construction;
# building the precise error message is left to the rare failing case. ``Kind(k)`` costs
# ~300 ns, so kinds are looked up by index in a tuple instead.
_KINDS = tuple(Kind)
_INF = math.inf
_U64 = 1 << 64
"""Bound (exclusive) of the unsigned 64-bit words the book stores (a batch's last seq must fit)."""
_unpackb = msgpack.unpackb
_INT = {int}
_STR = {str}


def brief(x: Any, limit: int = 40) -> str:
    """repr of hostile input for an error message or a reject reason, cut to ``limit`` characters:
    echoed whole, a 60 KB field (4x longer once escaped) would make the reply itself too big."""
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + "..."


def unpack(body: bytes) -> tuple[Kind, tuple]:
    """Split a body into its kind and its fields; every decoder starts here."""
    if len(body) > MAX_BODY:
        raise WireError(f"body of {len(body)} bytes exceeds {MAX_BODY}")
    try:
        # literal keywords: passing **limits costs 150 ns a call; no maps or bins on our wire
        msg = _unpackb(body, use_list=False, raw=False, strict_map_key=True, max_array_len=4096,
                       max_map_len=64, max_str_len=MAX_BODY, max_bin_len=0)  # a map is a wrong type, not bad msgpack
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise WireError(f"not msgpack: {type(exc).__name__}") from None
    if type(msg) is not tuple or len(msg) < 2:
        raise WireError("not an array of [kind, version, ...]")
    kind = msg[0]
    if msg[1] != VERSION or type(msg[1]) is not int:
        raise WireError(f"protocol version {brief(msg[1])}, expected {VERSION}")
    if type(kind) is not int or not 0 <= kind < len(_KINDS):
        raise WireError(f"unknown message kind {brief(kind)}")
    return _KINDS[kind], msg[2:]


def _finite(x: Any) -> bool:
    return (type(x) is float or type(x) is int) and -_INF < x < _INF


def as_tick(f: tuple) -> Tick:
    if len(f) == 7:
        seq, sym, bid, ask, last, size, ts = f
        # inlined _finite: the chained comparison rejects NaN and inf, the type test bools and strings;
        # the sign tests keep the book's unsigned words safe (msgpack ints are < 2**64 anyway)
        if (type(seq) is int and type(sym) is str and type(size) is int and type(ts) is int
                and (type(bid) is float or type(bid) is int) and -_INF < bid < _INF
                and (type(ask) is float or type(ask) is int) and -_INF < ask < _INF
                and (type(last) is float or type(last) is int) and -_INF < last < _INF
                and seq >= 0 and size >= 0 and ts >= 0):
            return _new(Tick, f)
    raise WireError("tick must be [seq:int, symbol:str, bid, ask, last, size:int, ts_ns:int] with finite prices "
                    "and seq, size, ts_ns >= 0")


_NUMBER = {float, int}


def as_ticks(f: tuple) -> Ticks:
    """A batch: every column checked whole, by C loops (``set(map(type, ...))``, ``min``)."""
    if len(f) == 7 and type(f[0]) is int:
        first, syms, bids, asks, lasts, sizes, ts = f
        if (type(syms) is tuple and 0 < len(syms) <= MAX_BATCH
                and type(bids) is tuple and type(asks) is tuple and type(lasts) is tuple
                and type(sizes) is tuple and type(ts) is tuple
                and len(bids) == len(asks) == len(lasts) == len(sizes) == len(ts) == len(syms)
                and 0 <= first and first + len(syms) <= _U64
                and set(map(type, syms)) == _STR):
            ints = sizes + ts
            prices = bids + asks + lasts
            if (set(map(type, ints)) == _INT and min(ints) >= 0  # no max: msgpack ints are < 2**64
                    and set(map(type, prices)) <= _NUMBER and all(map(math.isfinite, prices))):
                return _new(Ticks, f)
    raise WireError(f"ticks must be [first_seq:int, symbols, bids, asks, lasts, sizes, ts] columns of "
                    f"1..{MAX_BATCH} equal lengths with finite prices and seqs, sizes, ts >= 0")


def as_news(f: tuple) -> News:
    if len(f) == 4:
        seq, sym, sentiment, ts = f
        if (type(seq) is int and type(sym) is str and type(sentiment) is int and type(ts) is int
                and 0 <= sentiment <= 100 and (seq | ts) >= 0):
            return _new(News, f)
    raise WireError("news must be [seq:int, symbol:str, sentiment:0..100, ts_ns:int], seq and ts_ns >= 0")


def as_doorbell(f: tuple) -> Doorbell:
    if len(f) == 3:
        seq, slots, ts = f
        if (type(seq) is int and type(ts) is int and (seq | ts) >= 0
                and type(slots) is tuple and set(map(type, slots)) <= _INT):
            return _new(Doorbell, f)
    raise WireError("doorbell must be [seq:int, slots:[int], ts_ns:int], seq and ts_ns >= 0")


_I64 = 1 << 63


def as_order(f: tuple) -> Order:
    if type(f) is not tuple:
        raise WireError(f"an order must be an array of fields, got {type(f).__name__}")
    if len(f) != 10:
        raise WireError(f"order has {len(f)} fields, expected 10")
    cid, strategy, symbol, side, qty, price, t1, t2, t3, t4 = f
    if not (type(cid) is int and type(qty) is int and type(t1) is int and type(t2) is int
            and type(t3) is int and type(t4) is int):
        raise WireError("order clordid, qty and timestamps must be integers")
    if not (0 <= cid < _I64 and 0 <= t1 < _I64 and 0 <= t2 < _I64 and 0 <= t3 < _I64 and 0 <= t4 < _I64):
        raise WireError("order clordid and timestamps must be 0..2^63-1")
    if not (type(strategy) is str and type(symbol) is str and type(side) is str):
        raise WireError("order strategy, symbol and side must be strings")
    if not ((type(price) is float or type(price) is int) and -_INF < price < _INF):  # _finite, inlined
        raise WireError("order price must be a finite number")
    return _new(Order, f)


def as_reply(f: tuple) -> Reply:
    """``detail`` must match ``status``: a client reads it as a fill price or prints it as a reason."""
    if type(f) is tuple and len(f) == 6:
        cid, status, oid, detail, t1, t2 = f
        if (type(cid) is int and type(oid) is int and type(t1) is int and type(t2) is int
                and type(status) is str
                and ((status == FILLED and (type(detail) is float or type(detail) is int) and -_INF < detail < _INF)
                     or (status == REJECTED and type(detail) is str))):
            return _new(Reply, f)
    raise WireError("reply must be [clordid:int, status, order_id:int, detail, recv_ts:int, ts_ns:int] with "
                    "detail a finite price when filled, a str reason when rejected")


def as_positions_ask(f: tuple) -> PositionsAsk:
    if len(f) == 2 and type(f[0]) is str and type(f[1]) is int and 0 <= f[1] < _I64:
        return _new(PositionsAsk, f)
    raise WireError("positions ask must be [strategy:str, ts_ns:int]")


def _holding(h: Any) -> bool:
    return (type(h) is tuple and len(h) == 6 and type(h[0]) is str and type(h[1]) is int and type(h[5]) is int
            and h[5] >= 0 and _finite(h[2]) and _finite(h[3]) and _finite(h[4]))


def as_positions(f: tuple) -> Positions:
    if len(f) == 4 and type(f[0]) is str and type(f[3]) is int:
        strategy, status, detail, ts = f
        if status == OK and type(detail) is tuple and all(map(_holding, detail)):
            return Positions(strategy, status, tuple(_new(Holding, h) for h in detail), ts)
        if status == REJECTED and type(detail) is str:
            return _new(Positions, f)
    raise WireError("positions must be [strategy:str, status, detail, ts_ns:int]: \"ok\" with "
                    "[[symbol:str, position:int, avg_price, realized_pnl, fees, fills:int], ...], or "
                    "\"rejected\" with a str reason")


def as_ping(f: tuple) -> int:
    """A PING's or a PONG's ``ts_ns`` (a PONG echoes its PING's)."""
    if len(f) != 1 or type(f[0]) is not int or f[0] < 0:
        raise WireError("ping and pong must be [ts_ns:int >= 0]")
    return f[0]


def as_welcome(f: tuple) -> Welcome:
    if len(f) != 2 or type(f[0]) is not str or type(f[1]) is not int:
        raise WireError("welcome must be [stream:str, session:int]")
    return _new(Welcome, f)


def as_eos(f: tuple) -> Eos:
    if len(f) != 2 or type(f[0]) is not str or type(f[1]) is not int or f[1] < 0:
        raise WireError("eos must be [stream:str, last_seq:int >= 0]")
    return _new(Eos, f)


_new = tuple.__new__  # NamedTuple from a tuple of the right length, without re-packing args


def as_batch(f: tuple, limit: int = MAX_BATCH) -> tuple:
    """The items of an ORDERS or REPLIES message; each is decoded (and may fail) on its own, so an
    item that is not an array of fields fails alone, not its batch."""
    if len(f) != 1 or type(f[0]) is not tuple or not 0 < len(f[0]) <= limit:
        raise WireError(f"a batch must be [[item, ...]] with 1..{limit} items")
    return f[0]


def order_clordid(body: bytes) -> int | None:
    """Best effort: the client order id of a body that failed to decode, for the reject."""
    try:
        msg = msgpack.unpackb(body, use_list=False, raw=False, max_array_len=64, max_map_len=0)
    except Exception:
        return None
    # only an array: indexing a str or bin body would read a character or a byte as the id
    cid = msg[2] if type(msg) is tuple and len(msg) > 2 else None
    return cid if type(cid) is int else None
