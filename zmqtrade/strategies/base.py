"""The base class a user subclasses to write a strategy.

The strategy process calls these callbacks, all on one thread, never concurrently:

- ``on_positions(holdings)``: once, before any other, with what the order manager (the book
  of record) says this strategy holds: empty at a run's start, its positions after a restart.
  :attr:`position` is already set from them; override it to rebuild state that follows from
  what you hold (a target, a side to trade next).
- ``on_quote(quote)``: a symbol of yours changed in the shared book. ``quote`` is the latest
  consistent value (bid, ask, last, size, tick_seq, tick_ts...). Updates that arrived while
  you were busy are conflated: you see the newest value once, not every tick.
- ``on_news(news)``: a sentiment reading (0-100) for one of your symbols.
- ``on_reply(reply, order)``: the order manager filled or rejected ``order``.

``on_quote`` and ``on_news`` may return orders (an iterable of :class:`OrderRequest`) or call
:meth:`submit`; both are sent. :attr:`position` holds the filled position per symbol in shares.
Parameters come from the topology's ``params`` and are checked against :attr:`defaults`
before anything starts: an unknown name or a value of the wrong type is refused.
"""
from __future__ import annotations

import difflib
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple, Sequence

from zmqtrade.book import Quote
from zmqtrade.wire import Holding, News, Reply

BUY, SELL = "BUY", "SELL"


class OrderRequest(NamedTuple):
    """An order a strategy wants sent; ``tag`` is the strategy's own, returned in ``on_reply``.
    Immutable; a NamedTuple because one is made per order (a third of a frozen dataclass's cost)."""

    symbol: str
    side: str
    qty: int
    price: float
    tag: Any = None


class Strategy:
    """Subclass this; override the callbacks you need and declare ``defaults``."""

    defaults: ClassVar[Mapping[str, Any]] = {}
    """Parameter names and default values; a value's type is the type a parameter must have."""
    ranges: ClassVar[Mapping[str, tuple[float | None, float | None]]] = {}
    """Optional inclusive (low, high) bounds for numeric parameters; None leaves a side open."""

    def __init__(self, name: str, symbols: Sequence[str], qty: int, params: Mapping[str, Any]) -> None:
        self.name = name
        self.symbols = tuple(symbols)
        self.qty = qty
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.position: dict[str, int] = {s: 0 for s in self.symbols}
        self._outbox: list[OrderRequest] = []

    # ------------------------------------------------------------------ callbacks
    def on_positions(self, holdings: Mapping[str, Holding]) -> None:
        return None

    def on_quote(self, quote: Quote) -> Iterable[OrderRequest] | None:
        return None

    def on_news(self, news: News) -> Iterable[OrderRequest] | None:
        return None

    def on_reply(self, reply: Reply, order: OrderRequest) -> None:
        return None

    # ------------------------------------------------------------------ helpers
    def start_from(self, holdings: Iterable[Holding]) -> None:
        """Take the order manager's positions (the process calls this once, before any quote)."""
        held = {h.symbol: h for h in holdings}
        for symbol, h in held.items():
            self.position[symbol] = h.position
        self.on_positions(held)

    def submit(self, order: OrderRequest) -> None:
        """Queue an order; it is sent when the current callback returns."""
        self._outbox.append(order)

    def take_orders(self, returned: Iterable[OrderRequest] | None) -> list[OrderRequest]:
        """Orders from a callback's return value and from :meth:`submit`, in that order."""
        orders = list(returned) if returned else []
        if self._outbox:
            orders.extend(self._outbox)
            self._outbox.clear()
        return orders

    def record_fill(self, order: OrderRequest) -> None:
        delta = order.qty if order.side == BUY else -order.qty
        self.position[order.symbol] = self.position.get(order.symbol, 0) + delta

    @classmethod
    def problems(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(parameter, why) for each unacceptable parameter; ``""`` names the combination."""
        out = [(k, msg) for k, v in params.items() if (msg := cls.check_param(k, v))]
        if not out:
            out = [("", msg) for msg in cls.check_combination({**cls.defaults, **params})]
        return out

    @classmethod
    def check_combination(cls, params: Mapping[str, Any]) -> list[str]:
        """Override to refuse parameter combinations (each value already passed its own check)."""
        return []

    @classmethod
    def check_param(cls, key: str, value: Any) -> str | None:
        """Why ``key: value`` is not acceptable, or None if it is."""
        if key not in cls.defaults:
            known = ", ".join(sorted(cls.defaults)) or "none"
            close = difflib.get_close_matches(str(key), list(cls.defaults), n=1)
            return f"unknown parameter for {cls.__name__} (known: {known})" + (f"; did you mean {close[0]!r}?" if close else "")
        want = type(cls.defaults[key])
        ok = isinstance(value, want) and not (isinstance(value, bool) and want is not bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            return f"expected {want.__name__}, got {type(value).__name__} {value!r}"
        lo, hi = cls.ranges.get(key, (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{value!r} is outside {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
        return None
