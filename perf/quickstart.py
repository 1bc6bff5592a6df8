"""The quick start as a user runs it: the shipped topology.yaml, its two strategies, 1k ticks/s.

    python -m perf.quickstart [--quick]

``python launch.py topology.yaml`` three times (once with --quick), only its ports turned into
ones the OS picks (so a running stack cannot clash). The two built-in strategies order a few
times a second, so a run holds a few hundred tick-to-ack samples: the figures below merge the
runs' histograms (latency.json) and say how many samples they rest on.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from perf.stack import ROOT
from zmqtrade import metrics

PORTS = ("control", "gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint")


def once(seconds: float) -> tuple[dict[str, Any], metrics.Histogram]:
    with tempfile.TemporaryDirectory(prefix="zmqtrade-quickstart-") as d:
        run_dir = Path(d) / "run"
        argv = [sys.executable, str(ROOT / "launch.py"), str(ROOT / "topology.yaml"), "--run-dir", str(run_dir),
                "--duration", str(seconds), "-q", *[a for k in PORTS for a in ("--set", f"{k}=tcp://127.0.0.1:*")]]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"quick start failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        report = json.loads((run_dir / "report.json").read_text())
        buckets = json.loads((run_dir / "latency.json").read_text())["tick_to_ack"]
    hist = metrics.Histogram()
    for us, n in buckets:  # bucket middles back to nanoseconds: within the histogram's 0.8%
        for _ in range(int(n)):
            hist.record(int(us * 1000))
    return report, hist


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one run of 5 s")
    args = p.parse_args(argv)
    runs, seconds = (1, 5.0) if args.quick else (3, 10.0)
    print(f"quick start: topology.yaml as shipped (ports picked by the OS), {runs} run(s) of {seconds:g} s")
    total = metrics.Histogram()
    per_run = []
    for i in range(runs):
        report, hist = once(seconds)
        total.merge(hist)
        lat = report["latency_us"]["tick_to_ack"]
        per_run.append(lat)
        print(f"  run {i + 1}: tick_to_ack p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us, {lat['count']} samples; "
              f"om_process p50 {report['latency_us']['om_process']['p50']:.0f} us; exit {report['exit_code']}", flush=True)
    merged = metrics.summarize_us(total)
    print(f"  all runs: tick_to_ack p50 {merged['p50']:.0f} us, p99 {merged['p99']:.0f} us over {merged['count']} samples "
          f"(median of the runs' p50 {statistics.median(r['p50'] for r in per_run):.0f}, "
          f"p99 {statistics.median(r['p99'] for r in per_run):.0f})")
    return {"merged": merged, "runs": per_run}


if __name__ == "__main__":
    main()
