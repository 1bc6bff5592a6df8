"""Run the zmqtrade stack for a benchmark: a topology built from a few knobs, its report back.

Each run goes through ``launch.py`` in a fresh temp directory with ports the OS picks (or
ipc paths in that directory), exactly as a user would run it.
"""
from __future__ import annotations

import csv
import json
import os
from collections import Counter
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from perf import procstat
from zmqtrade import journal
from zmqtrade.report import compare

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]


@dataclass(frozen=True)
class Setup:
    """One benchmark point."""

    rate: float
    transport: str = "tcp"            # tcp | ipc
    per_tick: bool = True             # one order per tick (no conflation) or conflated
    duration_s: float = 5.0
    strategies: int = 1
    lossless: bool = False
    batch: int = 256
    pm_qos: bool = False              # hold cpu_dma_latency at 0 for the run (tuning; not a default)
    window_us: float = 150.0          # gateway.batch_window_us (the default)
    orders: bool = True               # False: no strategy at all (ingest)
    news_rate: float = 10.0
    fsync: str = "off"                # ordermanager.fsync, the default: records in the kernel before the ack
    overrides: tuple[tuple[str, Any], ...] = ()
    """Further topology keys, as (dotted key, value) pairs applied last (e.g. ("gateway.hwm", 1000))."""

    def label(self) -> str:
        mode = "per-tick" if self.per_tick else "conflated"
        return f"{self.rate:>8,.0f}/s {self.transport:<3} {mode}"


def topology(s: Setup, tmp: Path) -> dict[str, Any]:
    def ep(name: str) -> str:
        return f"ipc://{tmp}/{name}.ipc" if s.transport == "ipc" else "tcp://127.0.0.1:*"

    topo: dict[str, Any] = {
        "name": "bench",
        "duration_s": s.duration_s,
        "control": ep("control"),
        "symbols": SYMBOLS,
        "gateway": {"prices": ep("prices"), "news": ep("news"), "rate": s.rate, "news_rate": s.news_rate,
                    "lossless": s.lossless, "batch": s.batch, "batch_window_us": s.window_us, "feed": {"seed": 3}},
        "orderbook": {"doorbell": ep("doorbell"), "conflate": not s.per_tick},
        "ordermanager": {"endpoint": ep("orders"), "fsync": s.fsync,
                         "risk": {"max_orders_per_s": 10_000_000, "max_order_qty": 1000, "max_position": 10_000}},
        "strategies": {},
        "report": {"sample_interval_s": 0.5},
    }
    if s.pm_qos:
        topo["tuning"] = {"cpu_dma_latency_us": 0}
    if s.orders:
        for i in range(s.strategies):
            topo["strategies"][f"s{i + 1}"] = {"class": "every_quote", "symbols": SYMBOLS, "qty": 1,
                                              "conflate": not s.per_tick}
    for key, value in s.overrides:
        *path, last = key.split(".")
        node = topo
        for part in path:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return topo


BUDGET_MARGIN_S = 0.5
"""The per-tick budget skips this much of the stream at each end (start-up, end of stream)."""


def _budget(proc: subprocess.Popen, run_dir: Path, s: Setup) -> dict[str, Any] | None:
    """Per-process CPU, run-queue wait and wake-ups per tick over the middle of the stream
    (:mod:`perf.procstat`), read from /proc while the launcher runs; None if it ended first."""
    stack = run_dir / "stack.json"
    deadline = time.monotonic() + 60
    while not stack.exists():  # written once every process is ready, just before the stream starts
        if proc.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    pids = {n: p["pid"] for n, p in json.loads(stack.read_text())["processes"].items()}
    t_ready = time.monotonic()
    time.sleep(BUDGET_MARGIN_S)
    before = procstat.snapshot(pids)
    t0 = time.monotonic()
    time.sleep(max(0.1, t_ready + s.duration_s - BUDGET_MARGIN_S - t0))
    after = procstat.snapshot(pids)
    elapsed = time.monotonic() - t0
    return procstat.cost(before, after, int(s.rate * elapsed), elapsed)


def _knows_report_html(root: Path) -> bool:
    """Whether ``root``'s topology has the ``report.html`` key: a checkout from before it (an
    older tree for ``perf.ab --tree``) refuses the key, so its runs draw their pages."""
    schema = root / "zmqtrade" / "topology" / "schema.py"
    return schema.exists() and "    html: bool = True" in schema.read_text()


def run(s: Setup, samples: bool = False, budget: bool = False, root: Path = ROOT,
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one point; returns report.json plus ``delivered``: ticks applied over ticks due, where
    due is the larger of what the schedule called for in the launcher's window and what the
    gateway published (it streams a little past that window), so it never reads above 100%.
    With ``samples``, also ``resources``: the rows of resources.csv (psutil samples over time)
    and ``journaled``: how often each (strategy, clordid) is in the journal. With ``budget``,
    also ``cost``: each process's CPU per tick from /proc (:func:`_budget`). ``root`` is the checkout
    whose ``launch.py`` runs (another worktree, for a before/after comparison in one invocation);
    ``env`` adds to the environment of the launcher and its children."""
    with tempfile.TemporaryDirectory(prefix="zmqtrade-bench-") as d:
        tmp = Path(d)
        path = tmp / "bench.yaml"
        topo = topology(s, tmp)
        if _knows_report_html(root):  # nobody opens a benchmark's page: ~1.5 s a run saved
            topo["report"]["html"] = False
        path.write_text(yaml.safe_dump(topo))
        child_env = {**os.environ, **(env or {})}
        if root != ROOT:
            child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), child_env.get("PYTHONPATH")]))
        with subprocess.Popen([sys.executable, str(root / "launch.py"), str(path), "--run-dir", str(tmp / "run"), "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
                              cwd=str(root)) as proc:
            cost = _budget(proc, tmp / "run", s) if budget else None
            try:
                out, _ = proc.communicate(timeout=s.duration_s + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        report_path = tmp / "run" / "report.json"
        if proc.returncode != 0 or not report_path.exists():
            raise RuntimeError(f"benchmark run failed ({proc.returncode}):\n{out[-6000:]}")
        report = json.loads(report_path.read_text())
        if cost is not None:
            report["cost"] = cost
        if samples:
            with open(tmp / "run" / "resources.csv", newline="") as fh:
                report["resources"] = list(csv.DictReader(fh))
            report["journaled"] = Counter((r["strategy"], r["clordid"]) for r in journal.read(tmp / "run" / journal.FILENAME))
    c = report["counters"]
    scheduled = s.rate * report["duration_s"]
    due = max(scheduled, c["ticks_published"])
    report["delivered"] = c["ticks_applied"] / due if due else 0.0
    summary = compare.row(report, "")
    report["cpu_total"] = round(summary.cpu_pct, 1)
    report["rss_stack_mb"] = round(summary.stack_mb, 1)
    return report


def ratio(ours: float, base: float) -> str:
    """How many times better ours is (lower is better for latency)."""
    if not ours or not base:
        return "   -"
    return f"{base / ours:5.1f}x"
