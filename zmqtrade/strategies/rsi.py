"""RSI mean reversion: buy what has fallen too far, sell what has risen too far."""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping, Sequence

from zmqtrade.book import Quote
from zmqtrade.strategies import signals
from zmqtrade.strategies.base import OrderRequest
from zmqtrade.strategies.ma_news import TargetPosition


class RsiReversion(TargetPosition):
    defaults = {"period": 14, "oversold": 30.0, "overbought": 70.0}
    ranges = {"period": (2, None), "oversold": (0, 100), "overbought": (0, 100)}

    def __init__(self, name: str, symbols: Sequence[str], qty: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, symbols, qty, params)
        self.prices: dict[str, deque[float]] = {s: deque(maxlen=self.params["period"] + 1) for s in self.symbols}

    @classmethod
    def check_combination(cls, params: Mapping[str, Any]) -> list[str]:
        if params["oversold"] >= params["overbought"]:
            return [f"oversold ({params['oversold']}) must be below overbought ({params['overbought']})"]
        return []

    def on_quote(self, quote: Quote) -> list[OrderRequest] | None:
        window = self.prices[quote.symbol]
        window.append(quote.last)
        value = signals.rsi(window, self.params["period"])
        return self.act(quote, signals.rsi_signal(value, self.params["oversold"], self.params["overbought"]))
