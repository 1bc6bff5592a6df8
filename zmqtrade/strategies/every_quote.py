"""One order per quote: the load generator for latency and rate benchmarks.

Buys and sells in turn per symbol, so its position stays within one ``qty`` of flat and risk
limits never reject it. With conflation on it orders once per changed symbol per wake-up;
with ``conflate: false`` on the strategy and the orderbook, once per tick.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from zmqtrade.book import Quote
from zmqtrade.strategies.base import BUY, SELL, OrderRequest, Strategy
from zmqtrade.wire import Holding


class EveryQuote(Strategy):
    def __init__(self, name: str, symbols: Sequence[str], qty: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, symbols, qty, params)
        self.next_side = {s: BUY for s in self.symbols}

    def on_positions(self, holdings: Mapping[str, Holding]) -> None:
        """Resumed long, it sells next (and short, buys): its position stays within one qty of flat."""
        for symbol in self.symbols:
            pos = self.position[symbol]
            self.next_side[symbol] = SELL if pos > 0 else BUY

    def on_quote(self, quote: Quote) -> list[OrderRequest]:
        side = self.next_side[quote.symbol]
        self.next_side[quote.symbol] = SELL if side == BUY else BUY
        return [OrderRequest(quote.symbol, side, self.qty, quote.ask if side == BUY else quote.bid)]
