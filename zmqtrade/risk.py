"""Pre-trade risk: order size, position per strategy and symbol, and order rate per strategy."""
from __future__ import annotations

from zmqtrade.topology import Risk
from zmqtrade.wire import Order


class RiskBook:
    """Positions after fills, and a token bucket per strategy for the order rate."""

    def __init__(self, limits: Risk) -> None:
        self.limits = limits
        self.positions: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, list[float]] = {}  # strategy -> [tokens, last refill ns]

    @staticmethod
    def signed(order: Order) -> int:
        return order.qty if order.side == "BUY" else -order.qty

    def check(self, order: Order, now_ns: int) -> str | None:
        """Why the order breaks a limit, or None. Takes a rate token only when it passes."""
        lim = self.limits
        if order.qty > lim.max_order_qty:
            return f"qty {order.qty} exceeds max order qty {lim.max_order_qty}"
        after = self.positions.get((order.strategy, order.symbol), 0) + self.signed(order)
        if abs(after) > lim.max_position:
            return f"position would be {after}, limit is +/-{lim.max_position}"
        bucket = self._buckets.get(order.strategy)
        if bucket is None:
            bucket = self._buckets[order.strategy] = [lim.max_orders_per_s, now_ns]
        bucket[0] = min(lim.max_orders_per_s, bucket[0] + (now_ns - bucket[1]) * lim.max_orders_per_s / 1e9)
        bucket[1] = now_ns
        if bucket[0] < 1.0:
            return f"order rate above {lim.max_orders_per_s:g}/s"
        bucket[0] -= 1.0
        return None

    def apply(self, order: Order) -> None:
        key = (order.strategy, order.symbol)
        self.positions[key] = self.positions.get(key, 0) + self.signed(order)
