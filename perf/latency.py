"""Tick-to-ack latency at fixed rates, zmqtrade against the classic baseline, alternating.

    python -m perf.latency [--quick]

For each rate and transport: p50/p99/p999 of tick-to-ack, the share of scheduled ticks that
reached the book, gaps, and the CPU of all processes (100% = one core). One order per tick.
"""
from __future__ import annotations

import argparse
from typing import Any

from perf import baseline
from perf.stack import Setup, ratio, run

HEADER = (f"  {'setup':<28}{'p50 us':>9}{'p99 us':>9}{'p999 us':>9}{'deliv%':>8}{'gaps':>6}"
          f"{'orders':>8}{'cpu%':>7}{'rssMB':>7}  vs baseline p50 / p99")


def ours_row(s: Setup, r: dict[str, Any], base: dict[str, Any] | None) -> str:
    lat = r["latency_us"]["tick_to_ack"]
    vs = ""
    if base:
        b = base["tick_to_ack_us"]
        vs = f"  {ratio(lat['p50'], b['p50'])} / {ratio(lat['p99'], b['p99'])}"
    return (f"  {'zmqtrade ' + s.label():<28}{lat['p50']:>9.0f}{lat['p99']:>9.0f}{lat['p999']:>9.0f}"
            f"{r['delivered'] * 100:>8.1f}{r['counters']['tick_gaps']:>6}{r['counters']['orders_acked']:>8}"
            f"{r['cpu_total']:>7.0f}{r['rss_max_mb']:>7.0f}{vs}")


def base_row(label: str, b: dict[str, Any], rate: float, duration: float) -> str:
    lat = b["tick_to_ack_us"]
    delivered = b["ticks_applied"] / max(rate * duration, b["ticks_published"]) * 100
    return (f"  {label:<28}{lat['p50']:>9.0f}{lat['p99']:>9.0f}{lat['p999']:>9.0f}{delivered:>8.1f}"
            f"{b['tick_gaps']:>6}{b['orders_acked']:>8}{b['cpu_total']:>7.0f}"
            f"{max(b['rss_bytes'].values()) / 1e6:>7.0f}")


def median_run(runs: list[dict[str, Any]], key: Any) -> dict[str, Any]:
    """The run whose tick-to-ack p99 is the median of the repeats (so its row is one real run)."""
    ordered = sorted(runs, key=key)
    return ordered[len(ordered) // 2]


def spread(values: list[float]) -> str:
    return f"{min(values):.0f}-{max(values):.0f}" if len(values) > 1 else "-"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 s per point, once, tcp only plus ipc at 10k (< 60 s)")
    args = p.parse_args(argv)
    duration, repeats = (2.0, 1) if args.quick else (6.0, 3)
    points = [(1000, "tcp"), (10_000, "tcp"), (20_000, "tcp"), (10_000, "ipc")] if args.quick else \
             [(r, t) for r in (1000, 10_000, 20_000) for t in ("tcp", "ipc")]
    print(f"tick-to-ack latency, one order per tick, {duration:g} s per run, {repeats} run(s) per point "
          f"(the row is the run with the median p99; 'p99 spread' is min-max over the runs), "
          f"cpu_dma_latency held at 0, default gateway.batch_window_us")
    print(HEADER + "  p99 spread")
    results: dict[str, Any] = {}
    for rate, transport in points:
        s = Setup(rate=rate, transport=transport, duration_s=duration)
        ours, base = [], []
        for _ in range(repeats):  # alternate, so both see the same machine
            if transport == "tcp":
                base.append(baseline.run(rate, duration, mode="event"))
            ours.append(run(s))
        r = median_run(ours, lambda x: x["latency_us"]["tick_to_ack"]["p99"])
        b = median_run(base, lambda x: x["tick_to_ack_us"]["p99"]) if base else None
        if b:
            print(base_row(f"baseline {rate:>8,.0f}/s tcp event", b, rate, duration)
                  + f"  {spread([x['tick_to_ack_us']['p99'] for x in base])}")
        print(ours_row(s, r, b) + f"  {spread([x['latency_us']['tick_to_ack']['p99'] for x in ours])}", flush=True)
        results[f"{rate}-{transport}"] = {"zmqtrade": r, "baseline": b,
                                          "zmqtrade_p99s": [x["latency_us"]["tick_to_ack"]["p99"] for x in ours]}
    return results


if __name__ == "__main__":
    main()
