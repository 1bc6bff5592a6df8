"""A tiny timing harness: repeat a loop, report the median and spread per operation."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def per_op_ns(loop: Callable[[int], object], n: int, repeats: int) -> tuple[float, float]:
    """Median ns per operation over ``repeats`` runs of ``loop(n)``, and the interquartile spread."""
    loop(min(n, 1000))  # warm up
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        loop(n)
        runs.append((time.perf_counter_ns() - t0) / n)
    q = statistics.quantiles(runs, n=4) if len(runs) >= 2 else [runs[0]] * 3
    return statistics.median(runs), q[2] - q[0]


def row(name: str, median: float, spread: float, baseline: float | None = None) -> str:
    ratio = f"  x{baseline / median:5.2f} vs baseline" if baseline else ""
    return f"  {name:<38}{median:9.0f} ns  ±{spread:6.0f}{ratio}"
