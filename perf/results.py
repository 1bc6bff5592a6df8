"""Run every benchmark in full mode and write perf/RESULTS.md (docs/concepts/performance.md quotes it).

    python -m perf.results            # full run, about 30 minutes on 2 cores
    python -m perf.results --quick    # the same in quick mode (does not overwrite RESULTS.md)

Everything runs in this one invocation, zmqtrade and the baseline alternating, so ratios
compare like with like on whatever the machine is doing at the time.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from perf import (book, budget, codec, ideas, ingest, latency, max_rate, quickstart, recorder, recovery, relay,
                  transport)
from perf import spread as hosts_spread
from zmqtrade.report import manifest

OUT = Path(__file__).resolve().parent / "RESULTS.md"
ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"
"""The profiled explanation of the misses, written by hand, included as is."""
RAW = Path(__file__).resolve().parent / "RESULTS.raw.json"


BENCHMARKS: tuple[tuple[str, Callable[[list[str]], Any], str], ...] = (
    ("Codec", codec.main, "codec"), ("Book", book.main, "book"), ("Latency recording", recorder.main, "recorder"),
    ("Transport cost per message", transport.main, "transport"), ("Relay cost per hop", relay.main, "relay"),
    ("Raw ingest", ingest.main, "ingest"), ("Tick-to-ack latency", latency.main, "latency"),
    ("Quick start", quickstart.main, "quickstart"), ("Ideas", ideas.main, "ideas"),
    ("Per-tick budget", budget.main, "budget"), ("Maximum sustained rate", max_rate.main, "max_rate"),
    ("Recovery", recovery.main, "recovery"), ("Strategies spread over hosts", hosts_spread.main, "spread"))
"""(section title, the benchmark's main, its key in RESULTS.raw.json), in the order they run."""


def machine() -> str:
    m, v = manifest.machine(), manifest.versions()
    return (f"{m['cpus']} x {m['cpu_model'] or 'unknown CPU'}, Linux {m['kernel']}, Python {v['python']}, "
            f"pyzmq {v['pyzmq']} (libzmq {v['libzmq']}), msgpack {v['msgpack']}, msgspec {v['msgspec']}, numpy {v['numpy']}")


def capture(fn: Callable[[list[str]], Any], argv: list[str]) -> tuple[Any, str]:
    """Run a benchmark's main, echoing its output live and keeping a copy."""
    buf = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            sys.__stdout__.flush()
            return buf.write(s)

    with contextlib.redirect_stdout(Tee()):
        result = fn(argv)
    return result, buf.getvalue()


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def x(ours: float, base: float) -> str:
    """zmqtrade's figure over the other chain's: below 1 is better for latency, CPU and memory,
    above 1 for rates."""
    return f"{ours / base:.2f}x" if ours and base else "-"


def per_tick_us(cpu_percent: float, rate: float) -> float:
    """CPU microseconds per tick from a whole stack's CPU in percent of one core."""
    return cpu_percent / 100 * 1e6 / rate


def spread(s: dict[str, float]) -> str:
    return f"{s['median']:.0f} [{s['min']:.0f}-{s['max']:.0f}]"


def targets(raw: dict[str, Any]) -> list[str]:
    """The per-tick targets of issue 11, each against the lean chain measured in the same run."""
    lat, rates, quick, ideas = raw["latency"], raw["max_rate"], raw["quickstart"], raw["ideas"]
    rows = []
    for rate in (1000, 10_000):
        r = lat[f"{rate}-tcp"]
        z, le = r["zmqtrade"], r["lean"]
        rows.append((f"tick_to_ack at {rate // 1000}k ticks/s, one order per tick, tcp, defaults",
                     "p50 and p99 <= 1.0x the lean chain's",
                     f"p50 {spread(z['p50'])}, p99 {spread(z['p99'])} us",
                     f"p50 {spread(le['p50'])}, p99 {spread(le['p99'])} us",
                     f"p50 {r['ratio']['p50']:.2f}x, p99 {r['ratio']['p99']:.2f}x",
                     r["ratio"]["p50"] <= 1.0 and r["ratio"]["p99"] <= 1.0))
    best = best_idea(ideas)
    rows.append(("the best idea, at 1k and 10k ticks/s", "report how close to 0.8x",
                 f"{best['name']}: " + "; ".join(f"{k} p50 {v[0]:.2f}x, p99 {v[1]:.2f}x" for k, v in best["ratios"].items()),
                 "(see Ideas)", "-", all(max(v) <= 0.8 for v in best["ratios"].values())))
    m = quick["merged"]
    rows.append(("the quick start (topology.yaml as shipped)", "p50 <= 400 us, p99 <= 1 ms",
                 f"p50 {m['p50']:.0f}, p99 {m['p99']:.0f} us ({m['count']} samples)", "-", "-",
                 m["p50"] <= 400 and m["p99"] <= 1000))
    zt, ln = rates["zmqtrade one order per tick"], rates["lean chain"]
    if ln["rate"]:
        theirs, ratio = f"{ln['rate']:,}/s (p99 {ln['p99_us']:.0f} us, cpu {ln['cpu']:.0f}%)", x(zt["rate"], ln["rate"])
    else:  # a noisy hour can fail even the first step: say so rather than print 0/s and call it met
        theirs, ratio = f"below {max_rate.PER_TICK[0]:,}/s: it failed the ladder's first step (see below)", "-"
    rows.append(("max sustained rate, one order per tick", ">= the lean chain's",
                 f"{zt['rate']:,}/s (p99 {zt['p99_us']:.0f} us, cpu {zt['cpu']:.0f}%)", theirs, ratio,
                 zt["rate"] >= ln["rate"]))
    zc = rates["zmqtrade conflated"]
    rows.append(("max sustained rate, conflated", ">= 100k ticks/s",
                 f"{zc['rate']:,}/s (p99 {zc['p99_us']:.0f} us, cpu {zc['cpu']:.0f}%)", "-", "-", zc["rate"] >= 100_000))
    r10 = lat["10000-tcp"]
    zc10, lc10 = r10["zmqtrade"]["cpu"]["median"], r10["lean"]["cpu"]["median"]
    rows.append(("CPU per tick at 10k ticks/s, all processes", "<= the lean chain's",
                 f"{per_tick_us(zc10, 10_000):.0f} us ({zc10:.0f}% of a core)",
                 f"{per_tick_us(lc10, 10_000):.0f} us ({lc10:.0f}%)", x(zc10, lc10), zc10 <= lc10))
    lost = max(v["zmqtrade"]["lost_max"] for v in lat.values())
    rows.append(("nothing lost in the latency runs", "0 gaps, every order answered", f"{lost} gaps", "-", "-", lost == 0))
    out = ["| figure | target | zmqtrade | lean chain | zmqtrade / lean | |", "|---|---|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} | {e} | {verdict(ok)} |" for a, b, c, d, e, ok in rows]
    out += ["", "Latency figures are the median of 3 rounds with their [min-max]; each round ran the chains in "
            "turn. zmqtrade stamps ticks with their scheduled time, the lean chain with the time it made them, "
            "so the gateway's own lag counts against zmqtrade only. Timed alike, the lean chain too from each "
            "tick's scheduled time (its gateway records when each was due; context, not the target): "
            + "; ".join(f"{rate // 1000}k ticks/s p50 {lat[f'{rate}-tcp']['ratio_scheduled']['p50']:.2f}x, "
                        f"p99 {lat[f'{rate}-tcp']['ratio_scheduled']['p99']:.2f}x" for rate in (1000, 10_000)) + "."]
    return out


def best_idea(ideas: dict[str, Any]) -> dict[str, Any]:
    """The variant (tuned pass included) with the lowest worst ratio over 1k and 10k ticks/s."""
    cands: dict[str, dict[str, tuple[float, float]]] = {}
    for pass_name, per_rate in ideas.items():
        if pass_name == "durability":
            continue
        for rate, data in per_rate.items():
            summary = data["summary"]
            base = summary["lean"]
            for name, s in summary.items():
                if name == "lean":
                    continue
                key = name if pass_name == "plain" else f"{name}, tuned"
                cands.setdefault(key, {})[f"{int(rate) // 1000}k"] = (
                    s["p50"]["median"] / base["p50"]["median"], s["p99"]["median"] / base["p99"]["median"])
    name, ratios = min(cands.items(), key=lambda kv: max(max(v) for v in kv[1].values()))
    return {"name": name, "ratios": ratios}


def classic_targets(raw: dict[str, Any]) -> list[str]:
    """The earlier targets, kept, against the classic baseline."""
    lat, ing, bk = raw["latency"], raw["ingest"], raw["book"]
    t10 = lat["10000-tcp"]
    ingest_best = max(v["ticks_per_s"] for k, v in ing.items() if k.startswith("zmqtrade"))
    ingest_gaps = max(v["gaps"] for k, v in ing.items() if k.startswith("zmqtrade"))
    rss = {n: mb for n, mb in t10["zmqtrade"]["rss_mb"].items() if n != "launcher"}
    worst = max(((v, n) for n, v in rss.items()), default=(0.0, "-"))
    rows = [
        ("tick_to_ack at 10k ticks/s against the classic baseline", "-",
         f"p50 {t10['zmqtrade']['p50']['median']:.0f}, p99 {t10['zmqtrade']['p99']['median']:.0f} us",
         f"p50 {t10['classic']['p50']['median']:.0f}, p99 {t10['classic']['p99']['median']:.0f} us",
         f"p50 {x(t10['zmqtrade']['p50']['median'], t10['classic']['p50']['median'])}, "
         f"p99 {x(t10['zmqtrade']['p99']['median'], t10['classic']['p99']['median'])}", None),
        ("raw ingest into the book, batching", ">= 1M ticks/s, 0 gaps", f"{ingest_best:,.0f}/s, {ingest_gaps} gaps",
         f"{ing['baseline']['ticks_per_s']:,.0f}/s", x(ingest_best, ing["baseline"]["ticks_per_s"]),
         ingest_best >= 1e6 and ingest_gaps == 0),
        ("seqlock consistent read / write", "<= 1 us each", f"{bk['read_ns']:.0f} / {bk['write_ns']:.0f} ns",
         f"Lock + numpy row: {bk['lock_read_ns']:.0f} / {bk['lock_write_ns']:.0f} ns",
         f"{x(bk['read_ns'], bk['lock_read_ns'])} / {x(bk['write_ns'], bk['lock_write_ns'])}",
         bk["read_ns"] <= 1000 and bk["write_ns"] <= 1000),
        ("RSS per process (10k ticks/s run)", "<= 30 MB", f"max {worst[0]:.1f} MB ({worst[1]})", "-", "-",
         worst[0] <= 30),
    ]
    out = ["| figure | target | zmqtrade | classic baseline | zmqtrade / classic | |", "|---|---|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} | {e} | {'-' if ok is None else verdict(ok)} |" for a, b, c, d, e, ok in rows]
    return out


def recovery_targets(raw: dict[str, Any]) -> list[str]:
    """Issue 13's: restart time and memory of the order manager against the journal's length."""
    rec = raw["recovery"]
    longest = rec[max(rec, key=int)]
    rejoin = longest["rejoin_s"]
    peaks = {int(n): statistics.median(r["rss_mb"]) for n, r in rec.items()}
    flat = max(peaks.values()) - min(peaks.values())
    rows = [
        (f"kill -9 of the order manager with a {int(max(rec, key=int)):,}-fill journal: kill to rejoined", "< 2 s",
         f"{statistics.median(rejoin):.2f} [{min(rejoin):.2f}-{max(rejoin):.2f}] s", statistics.median(rejoin) < 2.0),
        ("its peak RSS against the journal's length", "flat",
         ", ".join(f"{mb:.0f} MB at {n:,}" for n, mb in sorted(peaks.items())) + f" (spread {flat:.0f} MB)",
         flat <= 16),
        ("the same without a checkpoint (whole journal replayed)", "-",
         f"{longest['full_s']:.1f} s, {longest['full_rss_mb']:.0f} MB", None),
    ]
    out = ["| figure | target | measured | |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {'-' if ok is None else verdict(ok)} |" for a, b, c, ok in rows]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="quick mode; prints only, RESULTS.md untouched")
    args = p.parse_args(argv)
    mode = ["--quick"] if args.quick else []
    started = time.monotonic()
    sections: list[tuple[str, str]] = []
    raw: dict[str, Any] = {}
    for title, fn, key in BENCHMARKS:
        result, text = capture(fn, mode)
        sections.append((title, text))
        raw[key] = result
    elapsed = time.monotonic() - started
    if args.quick:  # the tables, from the quick figures; RESULTS.md untouched
        print("\n".join(["", *targets(raw), "", *classic_targets(raw), "", *recovery_targets(raw)]))
        return
    RAW.write_text(json.dumps(raw, indent=1, default=str))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# zmqtrade benchmark results",
        "",
        f"Generated by `python -m perf.results` on {now} in {elapsed / 60:.1f} minutes.",
        f"Machine: {machine()}.",
        "Each figure below is from this one run: zmqtrade, the lean chain (`perf/lean.py`: the same four",
        "ZeroMQ hops and nothing else) and the classic baseline (`perf/baseline/`) ran in turn in the same",
        "invocation. Percentiles are noisy on a shared 2-vCPU VM: trust the ratios of one run over the",
        "absolute figures of two.",
        "",
        "## Targets (issue 11): against the lean chain",
        "",
        *targets(raw),
        "",
        "## Earlier targets, against the classic baseline",
        "",
        *classic_targets(raw),
        "",
        "## Recovery targets (issue 13)",
        "",
        *recovery_targets(raw),
        "",
        "## Where the time goes",
        "",
        ANALYSIS.read_text().split("-->", 1)[-1].strip() if ANALYSIS.exists() else "(perf/ANALYSIS.md is missing)",
        "",
    ]
    for title, text in sections:
        lines += [f"## {title}", "", "```", text.rstrip(), "```", ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
