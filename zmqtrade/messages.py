"""The messages of the wire protocol as Python values: one NamedTuple per kind, fields in wire
order (docs/reference/wire-protocol.md lists them field by field). :mod:`zmqtrade.wire` encodes and
decodes them; import them from there."""
from __future__ import annotations

from typing import Any, NamedTuple


class Tick(NamedTuple):
    seq: int
    symbol: str
    bid: float
    ask: float
    last: float
    size: int
    ts_ns: int


class Ticks(NamedTuple):
    """Consecutive ticks in columns: tick ``i`` has sequence number ``first_seq + i``."""

    first_seq: int
    symbols: tuple[str, ...]
    bids: tuple[float, ...]
    asks: tuple[float, ...]
    lasts: tuple[float, ...]
    sizes: tuple[int, ...]
    ts_ns: tuple[int, ...]

    def each(self) -> list[Tick]:
        """The batch as single ticks (for clients; the orderbook applies batches whole)."""
        cols = zip(self.symbols, self.bids, self.asks, self.lasts, self.sizes, self.ts_ns)
        return [Tick(self.first_seq + i, *row) for i, row in enumerate(cols)]


class News(NamedTuple):
    seq: int
    symbol: str
    sentiment: int
    ts_ns: int


class Doorbell(NamedTuple):
    seq: int
    slots: tuple[int, ...]
    ts_ns: int


class Order(NamedTuple):
    clordid: int
    strategy: str
    symbol: str
    side: str
    qty: int
    price: float
    tick_ts: int
    book_ts: int
    decide_ts: int
    send_ts: int


class Reply(NamedTuple):
    clordid: int
    status: str
    order_id: int
    detail: Any  # fill price (float) when filled, reason (str) when rejected
    recv_ts: int
    ts_ns: int

    @property
    def filled(self) -> bool:
        return self.status == FILLED


class PositionsAsk(NamedTuple):
    strategy: str
    ts_ns: int


class Holding(NamedTuple):
    """One strategy's standing in one symbol, as the order manager's ledger keeps it."""

    symbol: str
    position: int
    avg_price: float
    realized_pnl: float
    fees: float
    fills: int


class Positions(NamedTuple):
    """The order manager's answer to a POSITIONS_ASK. ``ts_ns`` is its clock when it answered:
    a client numbers its orders up from it (docs/reference/wire-protocol.md)."""

    strategy: str
    status: str
    detail: Any  # a tuple of Holding when "ok", the reason (str) when rejected
    ts_ns: int

    @property
    def holdings(self) -> tuple[Holding, ...]:
        return self.detail if self.status == OK else ()


class Welcome(NamedTuple):
    stream: str
    session: int


class Eos(NamedTuple):
    stream: str
    last_seq: int


OK = "ok"
FILLED = "filled"
REJECTED = "rejected"
SIDES = ("BUY", "SELL")
