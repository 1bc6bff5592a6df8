"""The trading rules as pure functions, so tests (and users) can call them directly.

Signals are ``BUY`` (+1), ``SELL`` (-1) or ``HOLD`` (0); positions are ``LONG`` (+1),
``SHORT`` (-1) or ``FLAT`` (0), so a signal is also the position it asks for.
"""
from __future__ import annotations

from typing import Sequence

BUY, SELL, HOLD = 1, -1, 0
LONG, SHORT, FLAT = 1, -1, 0


def mean(prices: Sequence[float], n: int) -> float | None:
    """Mean of the last ``n`` prices, or None until there are ``n``."""
    if n <= 0 or len(prices) < n:
        return None
    window = prices[-n:] if isinstance(prices, list) else list(prices)[-n:]
    return sum(window) / n


def price_signal(short_ma: float | None, long_ma: float | None) -> int:
    """Moving-average crossover: BUY while the short mean is above the long one."""
    if short_ma is None or long_ma is None or short_ma == long_ma:
        return HOLD
    return BUY if short_ma > long_ma else SELL


def news_signal(sentiment: int | None, bullish: float, bearish: float) -> int:
    """BUY above the bullish threshold, SELL below the bearish one, else HOLD."""
    if sentiment is None:
        return HOLD
    if sentiment > bullish:
        return BUY
    if sentiment < bearish:
        return SELL
    return HOLD


def combine(price: int, news: int) -> int:
    """Act only when price and news agree."""
    return price if price == news else HOLD


def next_position(position: int, signal: int) -> int | None:
    """The position to move to, or None when the signal asks for nothing new."""
    if signal == HOLD or signal == position:
        return None
    return signal


def rsi(prices: Sequence[float], period: int) -> float | None:
    """Relative strength index (simple averages) over the last ``period`` changes."""
    if period <= 0 or len(prices) < period + 1:
        return None
    window = list(prices)[-(period + 1):]
    gains = losses = 0.0
    for a, b in zip(window, window[1:]):
        d = b - a
        if d > 0:
            gains += d
        else:
            losses -= d
    if losses == 0.0:
        return 100.0 if gains > 0 else 50.0
    rs = gains / losses
    return 100.0 - 100.0 / (1.0 + rs)


def rsi_signal(value: float | None, oversold: float, overbought: float) -> int:
    """Mean reversion: BUY when oversold, SELL when overbought."""
    if value is None:
        return HOLD
    if value < oversold:
        return BUY
    if value > overbought:
        return SELL
    return HOLD
