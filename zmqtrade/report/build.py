"""The run report: ``report.json`` (a documented contract), ``latency.json``, ``progress.csv`` and
``resources.csv``, built from what the processes reported.

``counters`` adds each process's counters into stack-wide totals, each taken from the kind of
process that owns it, so ``orders_rejected`` means rejects as the strategies saw them and is
not counted twice by the order manager.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from zmqtrade import journal, ledger, metrics
from zmqtrade.launch.child import Child
from zmqtrade.ledger import PNL_PREFIX

REPORT_VERSION = 1

TOTALS: dict[str, tuple[str, ...]] = {
    "ticks_published": ("gateway",),
    "news_published": ("gateway",),
    "ticks_applied": ("orderbook",),
    "tick_gaps": ("orderbook",),
    "tick_duplicates": ("orderbook",),
    "doorbells": ("orderbook",),
    "batches": ("orderbook",),
    "price_messages": ("gateway",),
    "news_received": ("strategy",),
    "news_gaps": ("strategy",),
    "doorbell_gaps": ("strategy",),
    "quotes_read": ("strategy",),
    "orders_sent": ("strategy",),
    "orders_acked": ("strategy",),
    "orders_rejected": ("strategy",),
    "orders_unanswered": ("strategy",),
    "orders_received": ("ordermanager",),
    "orders_filled": ("ordermanager",),
    "duplicate_orders": ("ordermanager",),
    "malformed_messages": ("gateway", "orderbook", "strategy", "ordermanager"),
    "orders_resent": ("strategy",),
    "stale_book_skips": ("strategy",),
    "resyncs": ("orderbook", "strategy"),
}


def totals(children: Iterable[Child]) -> dict[str, int]:
    """Stack-wide counts, every life of a restarted process included."""
    out = {k: 0 for k in TOTALS}
    for c in children:
        lives = [*c.earlier_lives, (c.stats or {}).get("counters", {})]
        for key, kinds in TOTALS.items():
            if c.kind in kinds:
                out[key] += sum(int(counters.get(key, 0)) for counters in lives)
    return out


LATENCY_SERIES = (*metrics.ORDER_HOPS, "gateway_lag")
"""``latency_us`` always has these, in this order (zeros when a run made no samples)."""


def histograms(children: Iterable[Child]) -> dict[str, metrics.Histogram]:
    """Every latency series of the run, the processes' histograms merged."""
    series: dict[str, list[bytes]] = {name: [] for name in (*LATENCY_SERIES, "book_staleness")}
    for c in children:
        for name, chunk in ((c.stats or {}).get("latency_ns") or {}).items():
            series.setdefault(name, []).append(chunk)
    return {name: metrics.merged(chunks) for name, chunks in series.items()}


def latency(children: Iterable[Child]) -> dict[str, dict[str, float | int]]:
    return {name: metrics.summarize_us(h) for name, h in histograms(children).items()}


BY_HOST = ("tick_to_book", "book_to_decision", "tick_to_ack")
"""The series that depend on which host's book a strategy read, for ``latency_by_host``."""


def latency_by_host(children: Iterable[Child]) -> dict[str, dict[str, Any]]:
    """With books on several hosts: per book host, its orderbooks and the latency series of the
    strategies that read its book (empty with one book)."""
    children = list(children)
    hosts = sorted({c.host for c in children if c.kind == "orderbook"})
    if len(hosts) < 2:
        return {}
    out = {}
    for h in hosts:
        lat = latency([c for c in children if c.kind == "strategy" and c.host == h])
        out[h] = {"orderbooks": [c.name for c in children if c.kind == "orderbook" and c.host == h],
                  "strategies": [c.name for c in children if c.kind == "strategy" and c.host == h],
                  "latency_us": {k: lat[k] for k in BY_HOST}}
    return out


def build(topology: str, source: str, run_dir: Path, duration_s: float, exit_code: int,
          children: Iterable[Child], journal_records: int, failures: list[dict[str, Any]],
          launcher: Child | None = None, window: tuple[float, float] | None = None,
          events: list[dict[str, Any]] = (), recovered: list[dict[str, Any]] = (),
          ended_s: float = 0.0, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    children = list(children)
    processes: dict[str, Any] = {}
    for c in ([launcher] if launcher else []) + children:
        processes[c.name] = {
            "kind": c.kind, **({"host": c.host} if c.host else {}), "pid": c.pid,
            "exit_code": c.exit_code if c is not launcher else exit_code,
            "killed": c.killed,
            "restarts": len(c.restarts),
            **({"cpus": c.cpus} if c.cpus else {}),
            **({"io_threads": c.io_threads} if c.io_threads else {}),
            **c.resources(window),
            "counters": (c.stats or {}).get("counters", {}),
            **({"earlier_lives": c.earlier_lives} if c.earlier_lives else {}),
            **({"acked_ids": c.stats["acked_ids"]} if c.stats and "acked_ids" in c.stats else {}),
            **{k: c.stats[k] for k in ("position", "resumed_positions") if c.stats and k in c.stats},
            **({"lives": c.lives_record(ended_s)} if c is not launcher else {}),
        }
    counts = totals(children)
    counts["journal_records"] = journal_records
    lat = latency(children)
    staleness = lat.pop("book_staleness")
    return {
        "report_version": REPORT_VERSION,
        "topology": topology,
        "source": source,
        "manifest": dict(manifest or {}),
        "run_dir": str(run_dir),
        "duration_s": round(duration_s, 3),
        "window_s": [round(t, 3) for t in window] if window else None,
        "exit_code": exit_code,
        "failures": failures,
        "recovered": list(recovered),
        "events": list(events),
        "processes": processes,
        "counters": counts,
        "latency_us": lat,
        "book_staleness_us": staleness,
        "strategies": results(children, run_dir),
        **({"latency_by_host": by_host} if (by_host := latency_by_host(children)) else {}),
    }


def results(children: Iterable[Child], run_dir: Path) -> dict[str, Any]:
    """What each strategy held and earned: the order manager's ledger as its last life reported
    it (or, if it left no report, rebuilt from the journal, unmarked), with PnL over time from
    its progress reports."""
    om = next((c for c in children if c.kind == "ordermanager"), None)
    if om is None:
        return {}
    section = dict((om.stats or {}).get("strategies") or {})
    if not section and (run_dir / journal.FILENAME).exists():
        section = ledger.from_journal(run_dir / journal.FILENAME).results(
            sorted({k[len(PNL_PREFIX):] for _, p in om.progress for k in p if k.startswith(PNL_PREFIX)}), {})
    for name, entry in section.items():
        key = PNL_PREFIX + name
        entry["pnl_over_time"] = [[round(t, 3), p[key]] for t, p in om.progress if key in p]
    return section


def write(run_dir: Path, report: Mapping[str, Any], children: Iterable[Child]) -> None:
    children = list(children)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    hists = {name: metrics.points_us(h) for name, h in histograms(children).items()}
    (run_dir / "latency.json").write_text(json.dumps(hists) + "\n")  # [us, count] per bucket, for CDFs
    with open(run_dir / "progress.csv", "w", newline="") as fh:  # counters over time, long format
        w = csv.writer(fh)
        w.writerow(["t_s", "process", "counter", "value"])
        for c in children:
            for t, counters in c.progress:
                for name, value in sorted(counters.items()):
                    w.writerow([f"{t:.3f}", c.name, name, value])
    with open(run_dir / "resources.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t_s", "process", "cpu_percent", "rss_bytes", "uss_bytes", "threads", "ctx_switches", "open_fds"])
        rows = [(s.t_s, c.name, s) for c in children for s in c.samples]
        for t, name, s in sorted(rows, key=lambda r: (r[0], r[1])):
            w.writerow([f"{t:.3f}", name, s.cpu_percent, s.rss_bytes, s.uss_bytes, s.threads, s.ctx_switches, s.open_fds])
