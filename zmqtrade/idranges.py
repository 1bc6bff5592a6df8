"""Sets of increasing integers kept as runs: a strategy's acked client order ids, a few runs
rather than a number per order."""
from __future__ import annotations


class IdRanges:
    """A set of increasing integers kept as [first, last] runs: the ids of acked orders, for the
    run's stats, in a few runs rather than a number per order."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs: list[list[int]] = []

    def add(self, n: int) -> None:
        runs = self.runs
        if runs and runs[-1][1] + 1 == n:
            runs[-1][1] = n
        elif runs and runs[-1][1] >= n:  # out of order (a re-sent order's reply): rare, do it fully
            runs.append([n, n])
            runs.sort()
            merged = [runs[0]]
            for lo, hi in runs[1:]:
                if lo <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self.runs[:] = merged
        else:
            runs.append([n, n])
