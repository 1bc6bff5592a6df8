"""What a stall costs after it ends: one process SIGSTOPped mid-run, the latency of what follows.

    python -m perf.stall [--rate 10000] [--rounds 3] [--seconds 6] [--stall-ms 300]
                         [--process orderbook] [--tree NAME:PATH] ...

A steady stream never reaches the stack's drain bounds or high-water marks (a queue holds a
message or two), so alternating steady runs cannot tell their values apart; a backlog can.
Each run streams one order per tick over tcp and pauses ``--process`` for ``--stall-ms``,
``--at-s`` seconds in, through the topology's own fault injection (``faults``: SIGSTOP, then
SIGCONT); the stream queues meanwhile and is drained after. The figures are tick_to_ack over the
whole run (every order is there, the stalled ones too: p99 and p99.9 are how long the backlog
took to clear), alternating the trees given (``--tree``, another checkout: ``git worktree add
/tmp/x HEAD`` and change a constant there) with this one, round after round; medians with
their min-max spread.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from perf.stack import ROOT, Setup, run

FIGURES = ("p50", "p90", "p99", "p999", "max")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--stall-ms", type=float, default=300.0)
    p.add_argument("--at-s", type=float, default=2.5)
    p.add_argument("--process", default="orderbook", help="gateway, orderbook, s1 or ordermanager")
    p.add_argument("--tree", action="append", default=[], metavar="NAME:PATH")
    a = p.parse_args(argv)
    trees = {"this tree": ROOT, **{t.split(":", 1)[0]: Path(t.split(":", 1)[1]) for t in a.tree}}
    fault = {"process": a.process, "at_s": a.at_s, "action": "pause", "for_s": a.stall_ms / 1000}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    print(f"{a.process} paused {a.stall_ms:.0f} ms at {a.at_s} s into {a.seconds} s at {a.rate:,.0f} ticks/s, "
          f"one order per tick, tcp; tick_to_ack in us")
    for i in range(a.rounds):
        for name, root in trees.items():
            r = run(Setup(rate=a.rate, duration_s=a.seconds, overrides=(("faults", [fault]),)), root=root)
            t = r["latency_us"]["tick_to_ack"]
            runs[name].append({**{f: t[f] for f in FIGURES}, "orders": t["count"], "cpu": r["cpu_total"]})
            print(f"  round {i + 1} {name:<12} " + "  ".join(f"{f} {t[f]:8.0f}" for f in FIGURES)
                  + f"  orders {t['count']}", flush=True)
    print(f"  medians of {a.rounds} rounds [min-max]:")
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        out[name] = {f: {"median": statistics.median(r[f] for r in rs), "min": min(r[f] for r in rs),
                         "max": max(r[f] for r in rs)} for f in (*FIGURES, "cpu")}
        print(f"    {name:<12} " + "  ".join(f"{f} {out[name][f]['median']:.0f} [{out[name][f]['min']:.0f}-"
                                           f"{out[name][f]['max']:.0f}]" for f in ("p50", "p99", "p999", "max")))
    return out


if __name__ == "__main__":
    main()
