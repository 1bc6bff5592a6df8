"""The order path's messages decoded in C: ORDER and ORDERS for the order manager, REPLY and
REPLIES for a strategy, by msgspec's typed msgpack decoders (the value checks of
:mod:`zmqtrade.wire`'s decoders, made while decoding: about half their time).

A fast decoder accepts a subset of what the checked decoders in :mod:`zmqtrade.wire` accept,
and returns the same values for it (``tests/test_wire_properties.py`` holds them to that
against arbitrary bodies): on anything else it returns None, and the caller decodes the body
the checked way, which says precisely what is wrong (the reject reason a client reads) and
decodes the items of a batch one by one, so a bad one fails alone. The checks msgspec cannot
express are made after it: a price is finite, and a reply's detail matches its status.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import msgspec

from zmqtrade.messages import FILLED, REJECTED, Order, Reply
from zmqtrade.wire import _K_ORDER, _K_ORDERS, _K_REPLIES, _K_REPLY, MAX_BATCH, MAX_BODY, VERSION

_INF = math.inf
_new = tuple.__new__
_ID = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
"""A clordid or an order's timestamp: 0..2^63-1, as :func:`zmqtrade.wire.as_order` requires."""
_NUMBER = Union[int, float]
"""A price as sent: an int stays an int (a journal records a client's ``100`` as ``100``)."""
_ORDER = (_ID, str, str, str, int, _NUMBER, _ID, _ID, _ID, _ID)
_REPLY = (int, str, int, Union[int, float, str], int, int)
_HEAD = (Literal[VERSION],)


def _body(kind: int, fields: tuple) -> msgspec.msgpack.Decoder:
    return msgspec.msgpack.Decoder(tuple[(Literal[kind], *_HEAD, *fields)])


def _batch(kind: int, fields: tuple) -> msgspec.msgpack.Decoder:
    items = Annotated[tuple[tuple[fields], ...], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    return msgspec.msgpack.Decoder(tuple[Literal[kind], Literal[VERSION], items])


_ORDER_BODY, _ORDERS_BODY = _body(_K_ORDER, _ORDER).decode, _batch(_K_ORDERS, _ORDER).decode
_REPLY_BODY, _REPLIES_BODY = _body(_K_REPLY, _REPLY).decode, _batch(_K_REPLIES, _REPLY).decode
_FAILED = (msgspec.ValidationError, msgspec.DecodeError)
_FIXARRAY_12, _FIXARRAY_8, _FIXARRAY_3 = 0x9C, 0x98, 0x93
"""The first byte of an ORDER (12 elements), a REPLY (8) and a batch (3): msgpack fixarrays."""


def orders(body: bytes) -> tuple[bool, tuple[Order, ...]] | None:
    """A well-formed ORDER's or ORDERS' orders, and whether it was an ORDERS (answered with one
    REPLIES whatever it held); None for any other body."""
    if not 2 <= len(body) <= MAX_BODY:  # a socket lets a little more through; wire.unpack refuses it
        return None
    head, kind = body[0], body[1]
    try:
        if head == _FIXARRAY_12 and kind == _K_ORDER:
            m = _ORDER_BODY(body)
            price = m[7]
            return (False, (_new(Order, m[2:]),)) if -_INF < price < _INF else None
        if head == _FIXARRAY_3 and kind == _K_ORDERS:
            out = tuple([_new(Order, f) for f in _ORDERS_BODY(body)[2]])
            return (True, out) if all([-_INF < o[5] < _INF for o in out]) else None
    except _FAILED:
        pass
    return None


def _reply_ok(r: tuple) -> bool:
    status, detail = r[1], r[3]
    if status == FILLED:
        return type(detail) is not str and -_INF < detail < _INF
    return status == REJECTED and type(detail) is str


def replies(body: bytes) -> tuple[Reply, ...] | None:
    """A well-formed REPLY's or REPLIES' replies; None for any other body."""
    if not 2 <= len(body) <= MAX_BODY:  # a socket lets a little more through; wire.unpack refuses it
        return None
    head, kind = body[0], body[1]
    try:
        if head == _FIXARRAY_8 and kind == _K_REPLY:
            m = _REPLY_BODY(body)[2:]
            return (_new(Reply, m),) if _reply_ok(m) else None
        if head == _FIXARRAY_3 and kind == _K_REPLIES:
            out = tuple([_new(Reply, f) for f in _REPLIES_BODY(body)[2]])
            return out if all(map(_reply_ok, out)) else None
    except _FAILED:
        pass
    return None
