"""Pre-trade risk: order size, position per strategy and symbol, and order rate per strategy."""
from __future__ import annotations

from typing import Mapping

from zmqtrade.topology import Risk
from zmqtrade.wire import Order


class RiskBook:
    """Limits checked against the ledger's positions, and a token bucket per strategy for the
    order rate."""

    def __init__(self, limits: Risk, positions: Mapping[tuple[str, str], int]) -> None:
        self.positions = positions  # the ledger's: booking a fill moves them
        self._buckets: dict[str, list[float]] = {}  # strategy -> [tokens, last refill ns]
        self._max_qty, self._max_position = limits.max_order_qty, limits.max_position
        self._rate = float(limits.max_orders_per_s)
        self._per_ns = self._rate / 1e9

    def take(self, order: Order, now_ns: int) -> str | None:
        """Why the order breaks a limit, or None: then it may be filled (a rate token is taken;
        the fill itself is booked in the ledger). One call per order on the order manager's hot
        path, so the limits are read from plain attributes, not the frozen dataclass."""
        qty = order.qty
        if qty > self._max_qty:
            return f"qty {qty} exceeds max order qty {self._max_qty}"
        after = self.positions.get((order.strategy, order.symbol), 0) + (qty if order.side == "BUY" else -qty)
        if not -self._max_position <= after <= self._max_position:
            return f"position would be {after}, limit is +/-{self._max_position}"
        rate = self._rate
        bucket = self._buckets.get(order.strategy)
        if bucket is None:
            bucket = self._buckets[order.strategy] = [rate, now_ns]
        tokens = bucket[0] + (now_ns - bucket[1]) * self._per_ns
        if tokens > rate:
            tokens = rate
        bucket[1] = now_ns
        if tokens < 1.0:
            bucket[0] = tokens
            return f"order rate above {rate:g}/s"
        bucket[0] = tokens - 1.0
        return None
