"""Tick-to-ack latency at fixed rates: zmqtrade with its defaults, the lean chain and the classic
baseline, run in turn round after round.

    python -m perf.latency [--quick]

One order per tick. zmqtrade stamps a tick with its scheduled time and the lean chain with the
time it was made (as the reference chain does), so the gateway's own lag counts against
zmqtrade only; the lean chain's gateway also records when each tick was due, so each point
also gives the ratio timed alike (both from the schedule), as context for the target's. A
figure is the median over the rounds with its min-max spread; ratios are
zmqtrade's median over the lean chain's (below 1: zmqtrade is faster or leaner).
"""
from __future__ import annotations

import argparse
import statistics
from typing import Any

from perf import baseline, lean, procstat
from perf.stack import Setup, run

FIGURES = ("p50", "p99", "p999")
SCHEDULED = tuple(f"scheduled_{f}" for f in FIGURES)
"""The lean chain's tick_to_ack timed as zmqtrade's is, from each tick's scheduled time."""
SPREADS = (*FIGURES, *SCHEDULED, "cpu")


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def text(s: dict[str, float]) -> str:
    return f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"


def point(rate: float, transport: str, rounds: int, seconds: float, classic: bool) -> dict[str, Any]:
    """Rounds of (lean, zmqtrade[, classic]) at one rate; each chain's figures as spreads."""
    runs: dict[str, list[dict[str, Any]]] = {"lean": [], "zmqtrade": [], "classic": []}
    for _ in range(rounds):
        r = lean.run(rate, seconds, transport)
        runs["lean"].append({**{f: r["tick_to_ack_us"][f] for f in FIGURES},
                             **{f"scheduled_{f}": r["scheduled_to_ack_us"][f] for f in FIGURES}, "cpu": r["cpu_total"],
                             "cpu_us": procstat.summed(r["cost"])["cpu_us"], "lost": r["sent"] - r["acks"]})
        z = run(Setup(rate=rate, transport=transport, duration_s=seconds), budget=True)
        t = z["latency_us"]["tick_to_ack"]
        runs["zmqtrade"].append({**{f: t[f] for f in FIGURES}, "cpu": z["cpu_total"],
                                 "cpu_us": procstat.summed(z.get("cost") or {})["cpu_us"] if z.get("cost") else 0.0,
                                 "lost": z["counters"]["tick_gaps"], "delivered": z["delivered"],
                                 "hops": {h: (v["p50"], v["p99"]) for h, v in z["latency_us"].items()},
                                 "rss_mb": {n: p["rss_bytes"]["max"] / 2**20 for n, p in z["processes"].items()}})
        if classic:
            b = baseline.run(rate, seconds, mode="event")
            runs["classic"].append({**{f: b["tick_to_ack_us"][f] for f in FIGURES}, "cpu": b["cpu_total"],
                                    "lost": b["tick_gaps"]})
    out: dict[str, Any] = {"rate": rate, "transport": transport, "rounds": rounds, "seconds": seconds}
    for chain, rs in runs.items():
        if rs:
            out[chain] = {k: spread([r[k] for r in rs]) for k in rs[0] if k in SPREADS}
            out[chain]["lost_max"] = max(r["lost"] for r in rs)
            if all("cpu_us" in r for r in rs):
                out[chain]["cpu_us"] = spread([r["cpu_us"] for r in rs])
    z = runs["zmqtrade"]
    out["zmqtrade"]["hops"] = {h: tuple(statistics.median(r["hops"][h][i] for r in z) for i in (0, 1))
                               for h in z[0]["hops"]}
    out["zmqtrade"]["delivered_min"] = min(r["delivered"] for r in z)
    out["zmqtrade"]["rss_mb"] = {n: max(r["rss_mb"][n] for r in z) for n in z[0]["rss_mb"]}
    out["ratio"] = {k: out["zmqtrade"][k]["median"] / out["lean"][k]["median"] for k in (*FIGURES, "cpu")}
    out["ratio_scheduled"] = {f: out["zmqtrade"][f]["median"] / out["lean"][f"scheduled_{f}"]["median"] for f in FIGURES}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1k and 10k over tcp, one round of 2 s")
    args = p.parse_args(argv)
    seconds, rounds = (2.0, 1) if args.quick else (6.0, 3)
    points = [(1000, "tcp"), (10_000, "tcp")] if args.quick else \
             [(1000, "tcp"), (10_000, "tcp"), (20_000, "tcp"), (1000, "ipc"), (10_000, "ipc")]
    print(f"tick-to-ack, one order per tick, {rounds} round(s) of {seconds:g} s per point, chains in turn; "
          "median [min-max] of the rounds; zmqtrade with its defaults (fsync off, placement auto, "
          f"pipe doorbell, batch window {Setup(rate=1000).window_us:g} us), no cpu_dma_latency")
    print(f"  {'point':<16}{'chain':<10}{'p50 us':>16}{'p99 us':>18}{'p999 us':>18}{'cpu %':>14}"
          f"{'lost':>6}   zmqtrade / lean: p50  p99  cpu")
    results: dict[str, Any] = {}
    for rate, transport in points:
        r = point(rate, transport, rounds, seconds, classic=transport == "tcp")
        label = f"{rate:>7,}/s {transport}"
        for chain in ("lean", "zmqtrade", "classic"):
            if chain not in r:
                continue
            c = r[chain]
            tail = (f"   {r['ratio']['p50']:.2f}x {r['ratio']['p99']:.2f}x {r['ratio']['cpu']:.2f}x"
                    if chain == "zmqtrade" else "")
            print(f"  {label:<16}{chain:<10}{text(c['p50']):>16}{text(c['p99']):>18}{text(c['p999']):>18}"
                  f"{text(c['cpu']):>14}{c['lost_max']:>6}{tail}", flush=True)
            if chain == "lean":
                print(f"  {'':<16}lean timed from the schedule: " + ", ".join(
                    f"{f} {text(c[k])}" for f, k in zip(FIGURES, SCHEDULED)))
        same = r["ratio_scheduled"]
        print(f"  {'':<16}zmqtrade / lean timed alike (both from the schedule): p50 {same['p50']:.2f}x, "
              f"p99 {same['p99']:.2f}x")
        hops = r["zmqtrade"]["hops"]
        print(f"  {'':<16}zmqtrade per hop p50/p99: " + ", ".join(f"{h} {a:.0f}/{b:.0f}" for h, (a, b) in hops.items()))
        results[f"{rate}-{transport}"] = r
    return results


if __name__ == "__main__":
    main()
