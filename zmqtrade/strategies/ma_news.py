"""Moving-average crossover confirmed by news sentiment."""
from __future__ import annotations

from collections import deque
from typing import Any, Mapping, Sequence

from zmqtrade.book import Quote
from zmqtrade.strategies import signals
from zmqtrade.strategies.base import BUY, SELL, OrderRequest, Strategy
from zmqtrade.wire import Holding, News, Reply


class TargetPosition(Strategy):
    """Shared by the built-ins: turn a signal into a move to LONG, SHORT or nothing.

    The target position is taken when the order is sent (so a signal that persists does not
    send again while the first order is in flight) and given back if the order is rejected.
    """

    def __init__(self, name: str, symbols: Sequence[str], qty: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, symbols, qty, params)
        self.target: dict[str, int] = {s: signals.FLAT for s in self.symbols}

    def on_positions(self, holdings: Mapping[str, Holding]) -> None:
        """A restarted strategy's targets are what it holds (in lots of ``qty``, LONG to SHORT)."""
        for symbol in self.symbols:
            self.target[symbol] = max(signals.SHORT, min(signals.LONG, round(self.position[symbol] / self.qty)))

    def act(self, quote: Quote, signal: int) -> list[OrderRequest] | None:
        current = self.target[quote.symbol]
        target = signals.next_position(current, signal)
        if target is None:
            return None
        self.target[quote.symbol] = target
        side = BUY if target > current else SELL
        price = quote.ask if side == BUY else quote.bid
        return [OrderRequest(quote.symbol, side, abs(target - current) * self.qty, price, tag=(current, target))]

    def on_reply(self, reply: Reply, order: OrderRequest) -> None:
        previous, target = order.tag
        if not reply.filled and self.target[order.symbol] == target:
            self.target[order.symbol] = previous  # undo this order's move, unless a later one replaced it


class MovingAverageNews(TargetPosition):
    """BUY when the short mean is above the long one and sentiment is bullish; SELL on the mirror."""

    defaults = {"short": 5, "long": 20, "bullish": 60.0, "bearish": 40.0}
    ranges = {"short": (1, None), "long": (2, None), "bullish": (0, 100), "bearish": (0, 100)}

    def __init__(self, name: str, symbols: Sequence[str], qty: int, params: Mapping[str, Any]) -> None:
        super().__init__(name, symbols, qty, params)
        p = self.params
        self.prices: dict[str, deque[float]] = {s: deque(maxlen=p["long"]) for s in self.symbols}
        self.sentiment: dict[str, int | None] = {s: None for s in self.symbols}

    @classmethod
    def check_combination(cls, params: Mapping[str, Any]) -> list[str]:
        out = []
        if params["short"] >= params["long"]:
            out.append(f"short ({params['short']}) must be below long ({params['long']})")
        if params["bearish"] > params["bullish"]:
            out.append(f"bearish ({params['bearish']}) must not be above bullish ({params['bullish']})")
        return out

    def on_news(self, news: News) -> None:
        self.sentiment[news.symbol] = news.sentiment

    def on_quote(self, quote: Quote) -> list[OrderRequest] | None:
        p = self.params
        window = self.prices[quote.symbol]
        window.append(quote.last)
        if len(window) < p["long"]:
            return None
        prices = list(window)
        price = signals.price_signal(signals.mean(prices, p["short"]), signals.mean(prices, p["long"]))
        news = signals.news_signal(self.sentiment[quote.symbol], p["bullish"], p["bearish"])
        return self.act(quote, signals.combine(price, news))
