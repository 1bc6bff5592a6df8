"""Run every benchmark in full mode and write perf/RESULTS.md (the README quotes it).

    python -m perf.results            # full run, about 10 minutes on 2 cores
    python -m perf.results --quick    # the same in quick mode (does not overwrite RESULTS.md)

Everything runs in this one invocation, zmqtrade and the baseline alternating, so ratios
compare like with like on whatever the machine is doing at the time.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import msgpack
import numpy
import zmq

from perf import book, codec, ingest, latency, max_rate, recorder, relay, transport

OUT = Path(__file__).resolve().parent / "RESULTS.md"
ANALYSIS = Path(__file__).resolve().parent / "ANALYSIS.md"
"""The profiled explanation of the misses, written by hand, included as is."""
RAW = Path(__file__).resolve().parent / "RESULTS.raw.json"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} x {cpu}, Linux {platform.release()}, Python {platform.python_version()}, "
            f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}), msgpack {'.'.join(map(str, msgpack.version))}, "
            f"numpy {numpy.__version__}")


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


def x(ours: float, base: float, lower_is_better: bool = True) -> str:
    """How many times better zmqtrade is than the baseline (above 1: better)."""
    if not ours or not base:
        return "-"
    return f"{(base / ours) if lower_is_better else (ours / base):.2f}x"


def targets(raw: dict[str, Any]) -> list[str]:
    lat, rates, ing, bk = raw["latency"], raw["max_rate"], raw["ingest"], raw["book"]
    t10, b10 = lat["10000-tcp"]["zmqtrade"], lat["10000-tcp"]["baseline"]
    t1, b1 = lat["1000-tcp"]["zmqtrade"], lat["1000-tcp"]["baseline"]
    a10, a1 = t10["latency_us"]["tick_to_ack"], t1["latency_us"]["tick_to_ack"]
    ba10, ba1 = b10["tick_to_ack_us"], b1["tick_to_ack_us"]
    rtt = t1["latency_us"]["order_rtt"]["p50"]
    ingest_best = max(v["ticks_per_s"] for k, v in ing.items() if k.startswith("zmqtrade"))
    ingest_gaps = max(v["gaps"] for k, v in ing.items() if k.startswith("zmqtrade"))
    rss = {n: p["rss_bytes"]["max"] / 1e6 for n, p in t10["processes"].items()}
    worst_rss = max((v, n) for n, v in rss.items())
    base_rss = max(b10["rss_bytes"].values()) / 1e6
    per_tick, conflated = rates["zmqtrade one order per tick"], rates["zmqtrade conflated"]
    base_event = rates["baseline event"]
    base_best = max(rates["baseline event"], rates["baseline poll 1 ms"], key=lambda v: (v["rate"], -v["cpu"]))

    def at(v: dict[str, float]) -> str:
        return f"{v['rate']:,.0f}/s (p99 {v['p99_us']:.0f} us, cpu {v['cpu']:.0f}%)"
    rows = [
        ("tick_to_ack at 10k ticks/s, one order per tick", "p50 <= 250 us, p99 <= 1 ms, p999 <= 3 ms, 0 gaps",
         f"p50 {a10['p50']:.0f}, p99 {a10['p99']:.0f}, p999 {a10['p999']:.0f} us, {t10['counters']['tick_gaps']} gaps",
         f"p50 {ba10['p50']:.0f}, p99 {ba10['p99']:.0f}, p999 {ba10['p999']:.0f} us, {b10['tick_gaps']} gaps",
         f"p50 {x(a10['p50'], ba10['p50'])}, p99 {x(a10['p99'], ba10['p99'])}",
         a10["p50"] <= 250 and a10["p99"] <= 1000 and a10["p999"] <= 3000 and t10["counters"]["tick_gaps"] == 0),
        ("tick_to_ack at 1k ticks/s", "p50 <= 350 us, p99 <= 1 ms",
         f"p50 {a1['p50']:.0f}, p99 {a1['p99']:.0f} us", f"p50 {ba1['p50']:.0f}, p99 {ba1['p99']:.0f} us",
         f"p50 {x(a1['p50'], ba1['p50'])}, p99 {x(a1['p99'], ba1['p99'])}", a1["p50"] <= 350 and a1["p99"] <= 1000),
        ("order round trip (at 1k/s)", "p50 <= 100 us", f"p50 {rtt:.0f} us", "not measured separately", "-", rtt <= 100),
        ("max sustained rate, one order per tick", ">= 20k ticks/s", at(per_tick), at(base_event) + ", event-driven",
         x(per_tick["rate"], base_event["rate"], False), per_tick["rate"] >= 20_000),
        ("max sustained rate, conflated", ">= 30k ticks/s", at(conflated), at(base_best) + ", its best mode",
         f"rate {x(conflated['rate'], base_best['rate'], False)}, cpu {x(conflated['cpu'], base_best['cpu'])}",
         conflated["rate"] >= 30_000),
        ("raw ingest into the book, batching", ">= 1M ticks/s, 0 gaps", f"{ingest_best:,.0f}/s, {ingest_gaps} gaps",
         f"{ing['baseline']['ticks_per_s']:,.0f}/s", x(ingest_best, ing["baseline"]["ticks_per_s"], False),
         ingest_best >= 1e6 and ingest_gaps == 0),
        ("seqlock consistent read / write", "<= 1 us each", f"{bk['read_ns']:.0f} / {bk['write_ns']:.0f} ns",
         f"Lock + numpy row: {bk['lock_read_ns']:.0f} / {bk['lock_write_ns']:.0f} ns",
         f"{x(bk['read_ns'], bk['lock_read_ns'])} / {x(bk['write_ns'], bk['lock_write_ns'])}",
         bk["read_ns"] <= 1000 and bk["write_ns"] <= 1000),
        ("CPU at 10k ticks/s, all processes", "<= 170%", f"{t10['cpu_total']:.0f}%", f"{b10['cpu_total']:.0f}%",
         x(t10["cpu_total"], b10["cpu_total"]), t10["cpu_total"] <= 170),
        ("RSS per process", "<= 30 MB", f"max {worst_rss[0]:.1f} MB ({worst_rss[1]})", f"max {base_rss:.1f} MB",
         x(worst_rss[0], base_rss), worst_rss[0] <= 30),
    ]
    out = ["| figure | target | zmqtrade | classic baseline | zmqtrade vs baseline | |", "|---|---|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} | {e} | {verdict(ok)} |" for a, b, c, d, e, ok in rows]
    out += ["", "Ratios above 1 mean zmqtrade is better (lower latency, CPU or memory; higher rate)."]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="quick mode; prints only, RESULTS.md untouched")
    args = p.parse_args(argv)
    mode = ["--quick"] if args.quick else []
    started = time.monotonic()
    sections: list[tuple[str, str]] = []
    raw: dict[str, Any] = {}
    for title, fn, key in (("Codec", codec.main, "codec"), ("Book", book.main, "book"),
                           ("Latency recording", recorder.main, "recorder"),
                           ("Transport cost per message", transport.main, "transport"),
                           ("Relay cost per hop", relay.main, "relay"), ("Raw ingest", ingest.main, "ingest"),
                           ("Tick-to-ack latency", latency.main, "latency"), ("Maximum sustained rate", max_rate.main, "max_rate")):
        result, text = capture(fn, mode)
        sections.append((title, text))
        raw[key] = result
    elapsed = time.monotonic() - started
    if args.quick:
        return
    RAW.write_text(json.dumps(raw, indent=1, default=str))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# zmqtrade benchmark results",
        "",
        f"Generated by `python -m perf.results` on {now} in {elapsed / 60:.1f} minutes.",
        f"Machine: {machine()}.",
        "Each figure below is from this one run; zmqtrade and the classic baseline (`perf/baseline/`) ran",
        "alternately in the same invocation. Medians and percentiles are noisy on a shared 2-core VM:",
        "trust ratios and orders of magnitude over the last digit.",
        "",
        "## Targets",
        "",
        *targets(raw),
        "",
        "## What bounds the misses",
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
