"""Soak: the whole stack at 10k ticks/s for minutes; memory must stay flat, nothing lost.

One conflated every_quote strategy on six symbols (thousands of orders a second), the
default journal fsync policy (``batch``), psutil samples every 0.5 s. Prints, per process,
RSS after warm-up and at the end and its growth per minute (a least-squares slope over the
samples after the first minute: a leak shows as a steady slope, a one-off allocation does
not), and the run's loss figures: tick gaps, orders unanswered, acked orders not in the
journal or in it twice. Exits 1 if any check fails:

    python -m perf.soak              # 5 minutes
    python -m perf.soak --minutes 1  # a quicker look
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from statistics import median

from perf.stack import Setup, run

WARMUP_S = 60.0
GROWTH_LIMIT_MB_PER_MIN = 0.5
"""Above this a process is called leaking: 0.5 MB/min is 30 MB an hour of running."""


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y)."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=10_000.0)
    args = p.parse_args(argv)
    duration = args.minutes * 60
    warmup = min(WARMUP_S, duration / 3)
    print(f"soak: {args.rate:,.0f} ticks/s for {args.minutes:g} min, fsync batch ...", flush=True)
    rep = run(Setup(rate=args.rate, per_tick=False, duration_s=duration, pm_qos=True, fsync="batch"), samples=True)

    rss: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in rep["resources"]:
        rss[row["process"]].append((float(row["t_s"]), int(row["rss_bytes"]) / 1e6))
    t_end = max(t for pts in rss.values() for t, _ in pts)
    failures = []
    print(f"\n  {'process':<14}{'rss MB @warm':>13}{'rss MB end':>12}{'MB/min':>9}")
    for name, pts in rss.items():
        after = [(t, y) for t, y in pts if t >= t_end - duration + warmup]
        if len(after) < 4:
            continue
        growth = slope(after) * 60
        print(f"  {name:<14}{after[0][1]:>13.1f}{after[-1][1]:>12.1f}{growth:>9.2f}")
        if growth > GROWTH_LIMIT_MB_PER_MIN:
            failures.append(f"{name} grows {growth:.2f} MB/min")

    c = rep["counters"]
    journaled = rep["journaled"]
    twice = [k for k, n in journaled.items() if n > 1]
    acked = {(name, i) for name, p in rep["processes"].items()
             for lo, hi in p.get("acked_ids", []) for i in range(lo, hi + 1)}
    acked_not_journaled = len(acked - journaled.keys())
    lat = rep["latency_us"]["tick_to_ack"]
    print(f"\n  ticks published {c['ticks_published']:,}  applied {c['ticks_applied']:,}  gaps {c['tick_gaps']}"
          f"  delivered {rep['delivered']:.1%}")
    print(f"  orders sent {c['orders_sent']:,}  acked {c['orders_acked']:,}  rejected {c['orders_rejected']:,}"
          f"  unanswered {c['orders_unanswered']}  re-sent {c['orders_resent']}  journal {sum(journaled.values()):,}")
    print(f"  tick_to_ack p50 {lat['p50']:.0f} us  p99 {lat['p99']:.0f} us  max {lat['max']:.0f} us;"
          f"  stack CPU {rep['cpu_total']:.0f}%  RSS of the stack {rep['rss_stack_mb']:.0f} MB"
          f"  (median process CPU {median(p['cpu_percent']['mean'] for p in rep['processes'].values()):.0f}%)")
    for bad, what in ((c["tick_gaps"], "tick gaps"), (c["news_gaps"], "news gaps"),
                      (c["orders_unanswered"], "orders unanswered"), (len(twice), "orders journaled twice"),
                      (acked_not_journaled, "acked orders missing from the journal"), (len(rep["failures"]), "failures")):
        if bad:
            failures.append(f"{bad} {what}")
    print("\n" + ("FAIL: " + "; ".join(failures) if failures else "PASS: memory flat, no gaps, no lost or doubled orders"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
