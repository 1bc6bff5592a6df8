"""Pre-trade risk: order size, position per strategy and symbol, and order rate per strategy."""
from __future__ import annotations

from typing import Mapping

from zmqtrade.topology import Risk
from zmqtrade.wire import Order


class RiskBook:
    """Limits checked against the ledger's positions, and a token bucket per strategy for the
    order rate."""

    def __init__(self, limits: Risk, positions: Mapping[tuple[str, str], int]) -> None:
        self.limits = limits
        self.positions = positions  # the ledger's: booking a fill moves them
        self._buckets: dict[str, list[float]] = {}  # strategy -> [tokens, last refill ns]

    def take(self, order: Order, now_ns: int) -> str | None:
        """Why the order breaks a limit, or None: then it may be filled (a rate token is taken;
        the fill itself is booked in the ledger). One call per order on the order manager's hot path."""
        lim = self.limits
        qty = order.qty
        if qty > lim.max_order_qty:
            return f"qty {qty} exceeds max order qty {lim.max_order_qty}"
        key = (order.strategy, order.symbol)
        after = self.positions.get(key, 0) + (qty if order.side == "BUY" else -qty)
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
        return None
