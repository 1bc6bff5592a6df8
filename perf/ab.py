"""Compare stack variants against the lean chain, run alternately: is an idea worth keeping?

    python -m perf.ab [--rates 1000,10000] [--pairs 3] [--seconds 6] [--pm-qos]
                      [--variant NAME:KEY=VALUE[,KEY=VALUE...]] ... [--tree NAME:PATH]

Every round runs the lean chain (:mod:`perf.lean`) and each variant once, in turn, so all of
them see the same machine; a figure is the median over the rounds, with its min-max spread,
and its ratio to the lean chain's median (below 1: faster than the lean chain). The default
variant is zmqtrade as the benchmarks run it (one order per tick, tcp); ``--variant`` adds
one with topology keys overridden (values are YAML: ``orderbook.conflate=false``), ``--tree``
one running another checkout's code (``git worktree add /tmp/before HEAD~1``), for a
before/after comparison of a hot-path change in one invocation.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any, Callable

import yaml

from perf import lean, procstat
from perf.stack import ROOT, Setup, run

Runner = Callable[[float, float], dict[str, Any]]
FIGURES = ("p50", "p99", "p999")
HOPS = ("tick_to_book", "book_to_decision", "order_to_om", "om_process", "reply_to_strategy")


def stack_runner(overrides: tuple[tuple[str, Any], ...] = (), root: Path = ROOT, pm_qos: bool = False,
                 fsync: str = "off", window_us: float | None = None, env: dict[str, str] | None = None) -> Runner:
    def go(rate: float, seconds: float) -> dict[str, Any]:
        extra = {} if window_us is None else {"window_us": window_us}
        r = run(Setup(rate=rate, duration_s=seconds, pm_qos=pm_qos, fsync=fsync, overrides=overrides, **extra),
                budget=True, root=root, env=env)
        lat = r["latency_us"]
        return {"tick_to_ack": lat["tick_to_ack"], "scheduled": lat["tick_to_ack"],  # stamped on the schedule already
                "hops": {h: lat[h] for h in HOPS if h in lat},
                "gateway_lag": lat.get("gateway_lag"), "cpu": r["cpu_total"], "cost": r.get("cost") or {},
                "lost": r["counters"]["tick_gaps"]}
    return go


def lean_runner(pm_qos: bool = False, wake: str = "zmq") -> Runner:
    def go(rate: float, seconds: float) -> dict[str, Any]:
        r = lean.run(rate, seconds, wake=wake, pm_qos=pm_qos)
        return {"tick_to_ack": r["tick_to_ack_us"], "scheduled": r["scheduled_to_ack_us"],
                "hops": {h: r["hops_us"][h] for h in HOPS},
                "gateway_lag": r["gateway_lag_us"], "cpu": r["cpu_total"], "cost": r["cost"],
                "lost": r["sent"] - r["acks"]}
    return go


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], base: float | None = None) -> str:
    ratio = f" {s['median'] / base:4.2f}x" if base else ""
    return f"{s['median']:6.0f} [{s['min']:.0f}-{s['max']:.0f}]{ratio}"


def compare(variants: dict[str, Runner], rates: list[float], pairs: int, seconds: float,
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Alternate the variants ``pairs`` times per rate; the first variant is the baseline of the ratios."""
    results: dict[str, Any] = {}
    for rate in rates:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for i in range(pairs):
            for name, go in variants.items():
                r = go(rate, seconds)
                runs[name].append(r)
                t = r["tick_to_ack"]
                echo(f"    round {i + 1} {name:<22} {rate:>7,.0f}/s  p50 {t['p50']:6.0f}  p99 {t['p99']:6.0f}  "
                     f"cpu {r['cpu']:4.0f}%")
        summary = {name: summarize(rs) for name, rs in runs.items()}
        base = next(iter(summary.values()))
        echo(f"  {rate:,.0f} ticks/s, one order per tick, {pairs} rounds of {seconds:g} s: median [min-max], "
             f"ratio to {next(iter(variants))}")
        echo(f"    {'variant':<22}{'tick_to_ack p50 us':>26}{'p99 us':>26}{'cpu %':>20}{'cpu us/tick':>14}"
             f"{'wakeups/tick':>14}")
        for name, s in summary.items():
            echo(f"    {name:<22}{fmt(s['p50'], base['p50']['median']):>26}{fmt(s['p99'], base['p99']['median']):>26}"
                 f"{fmt(s['cpu'], base['cpu']['median']):>20}{s['cpu_us']:>14.1f}{s['wakeups']:>14.1f}")
        echo("    per hop, p50 / p99 us (medians): " + "; ".join(
            f"{name}: " + ", ".join(f"{h} {v[0]:.0f}/{v[1]:.0f}" for h, v in s["hops"].items())
            for name, s in summary.items()))
        echo(f"    timed alike, from each tick's scheduled time, p50 / p99 us (ratio to {next(iter(variants))}): "
             + "; ".join(f"{name} " + " / ".join(f"{s['scheduled'][f]['median']:.0f}" for f in ("p50", "p99"))
                         + " (" + " / ".join(f"{s['scheduled'][f]['median'] / base['scheduled'][f]['median']:.2f}x"
                                             for f in ("p50", "p99")) + ")" for name, s in summary.items()))
        results[str(int(rate))] = {"summary": summary, "runs": runs}
    return results


def summarize(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {f: spread([r["tick_to_ack"][f] for r in rs]) for f in FIGURES}
    out["scheduled"] = {f: spread([r["scheduled"][f] for r in rs]) for f in FIGURES}
    out["cpu"] = spread([r["cpu"] for r in rs])
    totals = [procstat.summed(r["cost"]) for r in rs if r["cost"]]
    out["cpu_us"] = statistics.median(t["cpu_us"] for t in totals) if totals else 0.0
    out["wakeups"] = statistics.median(t["wakeups"] for t in totals) if totals else 0.0
    out["hops"] = {h: (statistics.median(r["hops"][h]["p50"] for r in rs),
                       statistics.median(r["hops"][h]["p99"] for r in rs))
                   for h in HOPS if all(h in r["hops"] for r in rs)}
    out["lost_max"] = max(r["lost"] for r in rs)
    return out


def parse_variant(text: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    name, _, keys = text.partition(":")
    pairs = []
    for kv in filter(None, keys.split(",")):
        key, _, value = kv.partition("=")
        pairs.append((key.strip(), yaml.safe_load(value)))
    return name, tuple(pairs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="1000,10000")
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--pm-qos", action="store_true", help="hold cpu_dma_latency at 0 for every run (both chains)")
    p.add_argument("--fsync", default="off", help="ordermanager.fsync for the stack variants")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    p.add_argument("--tree", action="append", default=[], metavar="NAME:PATH")
    p.add_argument("--no-default", action="store_true", help="leave out the plain zmqtrade variant")
    p.add_argument("--lean-pipe", action="store_true", help="also run the lean chain with a pipe doorbell")
    a = p.parse_args(argv)
    variants: dict[str, Runner] = {"lean": lean_runner(a.pm_qos)}
    if a.lean_pipe:
        variants["lean-pipe"] = lean_runner(a.pm_qos, wake="pipe")
    if not a.no_default:
        variants["zmqtrade"] = stack_runner(pm_qos=a.pm_qos, fsync=a.fsync)
    for text in a.tree:
        name, _, path = text.partition(":")
        variants[name] = stack_runner(root=Path(path).resolve(), pm_qos=a.pm_qos, fsync=a.fsync)
    for text in a.variant:
        name, overrides = parse_variant(text)
        variants[name] = stack_runner(overrides, pm_qos=a.pm_qos, fsync=a.fsync)
    print(f"A/B: {', '.join(variants)}; pm_qos {'held at 0' if a.pm_qos else 'not held'}; fsync {a.fsync}")
    return compare(variants, [float(r) for r in a.rates.split(",")], a.pairs, a.seconds)


if __name__ == "__main__":
    main()
