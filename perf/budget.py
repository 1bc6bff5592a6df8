"""Where a tick's time goes, per process: zmqtrade beside the lean chain, from /proc.

    python -m perf.budget [--quick]

For each rate, rounds of (lean chain, zmqtrade with its defaults), one order per tick over tcp;
per process, the medians over the rounds of: CPU microseconds per tick in the Python thread and
in libzmq's I/O thread, run-queue wait (runnable, waiting for a CPU) and wake-ups per tick
(:mod:`perf.procstat`), and the latency of each hop.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from perf import lean
from perf.stack import Setup, run

PROCESSES = (("gateway", "gateway", "gateway"), ("orderbook", "orderbook", "orderbook"), ("strategy", "s1", "strategy"),
             ("ordermanager", "ordermanager", "ordermgr"))
"""(row name, zmqtrade's process, the lean chain's) below: same roles, other names."""
FIGURES = ("main_us", "io_us", "wait_us", "wakeups")
HOPS = ("tick_to_book", "book_to_decision", "order_to_om", "om_process", "reply_to_strategy", "tick_to_ack")


def median_cost(costs: list[dict[str, dict[str, float]]], name: str) -> dict[str, float]:
    return {f: statistics.median(c[name][f] for c in costs) for f in FIGURES}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one round of 3 s")
    args = p.parse_args(argv)
    rounds, seconds = (1, 3.0) if args.quick else (3, 5.0)
    out: dict[str, Any] = {}
    for rate in (1000, 10_000):
        ours, theirs, our_hops, their_hops = [], [], [], []
        for _ in range(rounds):
            r = lean.run(rate, seconds)
            theirs.append(r["cost"])
            their_hops.append({h: r["hops_us"][h] for h in HOPS})
            z = run(Setup(rate=rate, duration_s=seconds), budget=True)
            ours.append(z["cost"])
            our_hops.append({h: z["latency_us"][h] for h in HOPS})
        print(f"{rate:,} ticks/s, one order per tick, tcp: {rounds} round(s) of {seconds:g} s, medians; "
              "us per tick (CPU of the Python thread, of the I/O thread; run-queue wait) and wake-ups per tick")
        print(f"  {'process':<14}{'zmqtrade: main':>15}{'io':>7}{'wait':>7}{'wakes':>7}   "
              f"{'lean: main':>11}{'io':>7}{'wait':>7}{'wakes':>7}   {'total CPU, zmqtrade / lean':>28}")
        rows = {}
        for row, mine, lean_name in PROCESSES:
            a, b = median_cost(ours, mine), median_cost(theirs, lean_name)
            rows[row] = {"zmqtrade": a, "lean": b}
            ratio = (a["main_us"] + a["io_us"]) / max(1e-9, b["main_us"] + b["io_us"])
            print(f"  {row:<14}{a['main_us']:>15.1f}{a['io_us']:>7.1f}{a['wait_us']:>7.1f}{a['wakeups']:>7.2f}   "
                  f"{b['main_us']:>11.1f}{b['io_us']:>7.1f}{b['wait_us']:>7.1f}{b['wakeups']:>7.2f}   {ratio:>27.2f}x")
        tot = {side: {f: sum(rows[r][side][f] for r in rows) for f in FIGURES} for side in ("zmqtrade", "lean")}
        ratio = (tot["zmqtrade"]["main_us"] + tot["zmqtrade"]["io_us"]) / (tot["lean"]["main_us"] + tot["lean"]["io_us"])
        z, le = tot["zmqtrade"], tot["lean"]
        print(f"  {'total':<14}{z['main_us']:>15.1f}{z['io_us']:>7.1f}{z['wait_us']:>7.1f}{z['wakeups']:>7.2f}   "
              f"{le['main_us']:>11.1f}{le['io_us']:>7.1f}{le['wait_us']:>7.1f}{le['wakeups']:>7.2f}   {ratio:>27.2f}x")
        print("  per hop, p50 / p99 us: " + "; ".join(
            f"{h} {statistics.median(x[h]['p50'] for x in our_hops):.0f}/{statistics.median(x[h]['p99'] for x in our_hops):.0f}"
            f" (lean {statistics.median(x[h]['p50'] for x in their_hops):.0f}/"
            f"{statistics.median(x[h]['p99'] for x in their_hops):.0f})" for h in HOPS), flush=True)
        out[str(rate)] = {"processes": rows, "total": tot}
    return out


if __name__ == "__main__":
    main()
