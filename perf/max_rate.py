"""Maximum sustained rate: the highest tick rate a stack carries with zero gaps, at least 97%
of the scheduled ticks delivered to the book and tick-to-ack p99 under 5 ms.

    python -m perf.max_rate [--quick]

Searched upward over a ladder of rates for zmqtrade one order per tick, zmqtrade conflated,
and the classic baseline (event-driven and 1 ms polling), each run in the same invocation.
"""
from __future__ import annotations

import argparse
from typing import Callable

from perf import baseline
from perf.stack import Setup, run

P99_LIMIT_US = 5000.0
DELIVERED_MIN = 0.97
WINDOW_US = 500.0
"""gateway.batch_window_us for zmqtrade's runs here: at 2k/s and above, ticks due within 0.5 ms
share a message, which is what lets every hop downstream batch too."""
LADDER = [2_000, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000, 120_000]


def passes(gaps: int, delivered: float, p99: float, acked: int) -> bool:
    return gaps == 0 and delivered >= DELIVERED_MIN and p99 < P99_LIMIT_US and acked > 0


Trial = Callable[[int], tuple[bool, str, dict[str, float]]]


def search(name: str, trial: Trial, ladder: list[int]) -> dict[str, float]:
    """Climb the ladder until a rate fails; the best rate with its p99 and CPU there."""
    best: dict[str, float] = {"rate": 0, "p99_us": 0.0, "cpu": 0.0}
    for rate in ladder:
        ok, detail, figures = trial(rate)
        print(f"  {name:<28}{rate:>8,}/s  {'ok  ' if ok else 'FAIL'}  {detail}", flush=True)
        if not ok:
            break
        best = {"rate": rate, **figures}
    return best


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s per point on a short ladder (< 60 s)")
    args = p.parse_args(argv)
    duration = 2.0 if args.quick else 6.0
    ladder = [5_000, 15_000, 30_000] if args.quick else LADDER

    def ours(per_tick: bool) -> Trial:
        def trial(rate: int) -> tuple[bool, str, dict[str, float]]:
            r = run(Setup(rate=rate, per_tick=per_tick, duration_s=duration, window_us=WINDOW_US))
            lat, c = r["latency_us"]["tick_to_ack"], r["counters"]
            detail = (f"delivered {r['delivered'] * 100:5.1f}%  gaps {c['tick_gaps']}  p99 {lat['p99']:.0f} us  "
                      f"orders {c['orders_acked']}  cpu {r['cpu_total']:.0f}%")
            return (passes(c["tick_gaps"], r["delivered"], lat["p99"], c["orders_acked"]), detail,
                    {"p99_us": lat["p99"], "cpu": r["cpu_total"]})
        return trial

    def classic(mode: str) -> Trial:
        def trial(rate: int) -> tuple[bool, str, dict[str, float]]:
            b = baseline.run(rate, duration, mode=mode)
            delivered = b["ticks_applied"] / max(rate * duration, b["ticks_published"])
            lat = b["tick_to_ack_us"]
            detail = (f"delivered {delivered * 100:5.1f}%  gaps {b['tick_gaps']}  p99 {lat['p99']:.0f} us  "
                      f"orders {b['orders_acked']}  cpu {b['cpu_total']:.0f}%")
            return (passes(b["tick_gaps"], delivered, lat["p99"], b["orders_acked"]), detail,
                    {"p99_us": lat["p99"], "cpu": b["cpu_total"]})
        return trial

    print(f"maximum sustained rate: zero gaps, >= {DELIVERED_MIN:.0%} delivered, p99 < {P99_LIMIT_US / 1000:g} ms; "
          f"{duration:g} s per point; zmqtrade with gateway.batch_window_us {WINDOW_US:g}")
    best = {
        "zmqtrade one order per tick": search("zmqtrade one order per tick", ours(True), ladder),
        "zmqtrade conflated": search("zmqtrade conflated", ours(False), ladder),
        "baseline event": search("baseline event", classic("event"), ladder),
        "baseline poll 1 ms": search("baseline poll 1 ms", classic("poll"), ladder),
    }
    print("  best:", ", ".join(f"{k} {v['rate']:,}/s (p99 {v['p99_us']:.0f} us, cpu {v['cpu']:.0f}%)"
                                for k, v in best.items()))
    return best


if __name__ == "__main__":
    main()
