"""Maximum sustained rate: the highest tick rate a chain carries with zero gaps, at least 97%
of the scheduled ticks delivered (and, one order per tick, every one answered) and
tick-to-ack p99 under 5 ms.

    python -m perf.max_rate [--quick]

Up a ladder of rates, each chain still passing is run in turn at every step, three times (once
with --quick): a step is passed when most of its runs pass. One order per tick: zmqtrade with
its defaults, the lean chain and the classic baseline (event-driven). Conflated: zmqtrade
against the classic baseline polling its book every 1 ms.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

from perf import baseline, lean
from perf.stack import Setup, run

P99_LIMIT_US = 5000.0
DELIVERED_MIN = 0.97
PER_TICK = [5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000]
CONFLATED = [20_000, 40_000, 60_000, 80_000, 100_000, 120_000]

Trial = Callable[[int, float], tuple[bool, dict[str, float]]]


def passes(gaps: int, delivered: float, p99: float, answered: bool) -> bool:
    return gaps == 0 and delivered >= DELIVERED_MIN and p99 < P99_LIMIT_US and answered


def ours(per_tick: bool) -> Trial:
    def trial(rate: int, seconds: float) -> tuple[bool, dict[str, float]]:
        r = run(Setup(rate=rate, per_tick=per_tick, duration_s=seconds))
        lat, c = r["latency_us"]["tick_to_ack"], r["counters"]
        answered = c["orders_acked"] > 0 and (not per_tick or c.get("orders_unanswered", 0) == 0)
        return (passes(c["tick_gaps"], r["delivered"], lat["p99"], answered),
                {"p99_us": lat["p99"], "cpu": r["cpu_total"], "delivered": r["delivered"]})
    return trial


def lean_chain(rate: int, seconds: float) -> tuple[bool, dict[str, float]]:
    r = lean.run(rate, seconds)
    delivered = r["applied"] / max(1, r["sent"]) * min(1.0, r["achieved_rate"] / rate)
    return (passes(r["gaps"], delivered, r["tick_to_ack_us"]["p99"], r["acks"] == r["sent"]),
            {"p99_us": r["tick_to_ack_us"]["p99"], "cpu": r["cpu_total"], "delivered": delivered})


def classic(mode: str) -> Trial:
    def trial(rate: int, seconds: float) -> tuple[bool, dict[str, float]]:
        b = baseline.run(rate, seconds, mode=mode)
        delivered = b["ticks_applied"] / max(rate * seconds, b["ticks_published"])
        return (passes(b["tick_gaps"], delivered, b["tick_to_ack_us"]["p99"], b["orders_acked"] > 0),
                {"p99_us": b["tick_to_ack_us"]["p99"], "cpu": b["cpu_total"], "delivered": delivered})
    return trial


def climb(chains: dict[str, Trial], ladder: list[int], runs: int, seconds: float) -> dict[str, dict[str, float]]:
    """Every chain still passing, in turn, ``runs`` times per step; the best rate each passed."""
    best = {name: {"rate": 0, "p99_us": 0.0, "cpu": 0.0, "passed": "-"} for name in chains}
    alive = dict(chains)
    for rate in ladder:
        if not alive:
            break
        outcomes: dict[str, list[tuple[bool, dict[str, float]]]] = {name: [] for name in alive}
        for _ in range(runs):
            for name, trial in alive.items():
                outcomes[name].append(trial(rate, seconds))
        for name, rs in outcomes.items():
            ok = sum(o for o, _ in rs)
            p99 = statistics.median(f["p99_us"] for _, f in rs)
            cpu = statistics.median(f["cpu"] for _, f in rs)
            delivered = min(f["delivered"] for _, f in rs)
            print(f"  {name:<30}{rate:>8,}/s  {'ok  ' if ok * 2 > runs else 'FAIL'}  passed {ok}/{runs}  "
                  f"p99 {p99:6.0f} us  delivered >= {delivered * 100:5.1f}%  cpu {cpu:4.0f}%", flush=True)
            if ok * 2 > runs:
                best[name] = {"rate": rate, "p99_us": p99, "cpu": cpu, "passed": f"{ok}/{runs}"}
            else:
                del alive[name]
    return best


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one 2 s run per step, short ladders")
    args = p.parse_args(argv)
    seconds, runs = (2.0, 1) if args.quick else (4.0, 3)
    per_tick, conflated = ([5_000, 15_000, 30_000], [30_000, 100_000]) if args.quick else (PER_TICK, CONFLATED)
    print(f"maximum sustained rate: zero gaps, >= {DELIVERED_MIN:.0%} delivered, p99 < {P99_LIMIT_US / 1000:g} ms; "
          f"{runs} run(s) of {seconds:g} s per step, chains in turn")
    print("one order per tick:")
    best = climb({"zmqtrade one order per tick": ours(True), "lean chain": lean_chain,
                  "classic baseline event": classic("event")}, per_tick, runs, seconds)
    print("conflated: zmqtrade against the classic baseline polling the book (it reads the latest value):")
    best.update(climb({"zmqtrade conflated": ours(False), "classic baseline poll 1 ms": classic("poll")},
                      conflated, runs, seconds))
    print("  best: " + ", ".join(f"{k} {v['rate']:,}/s" for k, v in best.items()))
    return best


if __name__ == "__main__":
    main()
