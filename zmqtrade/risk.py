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

    def take(self, order: Order, now_ns: int) -> str | None:
        """Why the order breaks a limit, or None: then it counts as filled (its position and a
        rate token are taken). One call per order on the order manager's hot path."""
        lim = self.limits
        qty = order.qty
        if qty > lim.max_order_qty:
            return f"qty {qty} exceeds max order qty {lim.max_order_qty}"
        key = (order.strategy, order.symbol)
        positions = self.positions
        after = positions.get(key, 0) + (qty if order.side == "BUY" else -qty)
        if abs(after) > lim.max_position:
            return f"position would be {after}, limit is +/-{lim.max_position}"
        rate = lim.max_orders_per_s
        bucket = self._buckets.get(order.strategy)
        if bucket is None:
            bucket = self._buckets[order.strategy] = [rate, now_ns]
        tokens = min(rate, bucket[0] + (now_ns - bucket[1]) * rate / 1e9)
        bucket[1] = now_ns
        if tokens < 1.0:
            bucket[0] = tokens
            return f"order rate above {rate:g}/s"
        bucket[0] = tokens - 1.0
        positions[key] = after
        return None

    def apply(self, order: Order) -> None:
        key = (order.strategy, order.symbol)
        self.positions[key] = self.positions.get(key, 0) + self.signed(order)
