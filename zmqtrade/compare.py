"""Side by side: runs' throughput, loss, latency, CPU and memory, each with its ratio to the first.

    python -m zmqtrade compare RUN_DIR [RUN_DIR ...]

Sweeps print the same table at their end. Reads only each run's report.json, so runs from
any version of the same report format can be compared.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


@dataclass(frozen=True)
class Row:
    name: str
    ticks_per_s: float
    loss_pct: float
    orders: int
    p50: float
    p99: float
    p999: float
    cpu_pct: float
    rss_mb: float
    exit_code: int


def load(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: no report here; is {run_dir} a run directory?") from None
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}: not valid JSON ({exc})") from None


def row(report: dict[str, Any], name: str) -> Row:
    c = report["counters"]
    lat = report["latency_us"]["tick_to_ack"]
    duration = report["duration_s"] or 1.0
    published = c["ticks_published"]
    lost = published - c["ticks_applied"]  # gaps are ticks that never got applied: already in here
    procs = report["processes"].values()
    return Row(name, c["ticks_applied"] / duration, 100.0 * max(0, lost) / published if published else 0.0,
               c["orders_acked"], lat["p50"], lat["p99"], lat["p999"],
               sum(p["cpu_percent"]["mean"] for p in procs),
               max(p["rss_bytes"]["max"] for p in procs) / 1e6, report["exit_code"])


def _ratio(value: float, first: float) -> str:
    return f"{value / first:5.2f}x" if first else "    -"


def table(rows: Sequence[Row]) -> str:
    """One line per run; the ratio columns compare each run with the first."""
    width = max([len(r.name) for r in rows] + [4])
    head = (f"{'run':<{width}} {'ticks/s':>10} {'loss%':>6} {'orders':>8} {'p50 us':>8} {'p99 us':>8} "
            f"{'p999 us':>8} {'cpu%':>6} {'rssMB':>6} {'exit':>4} | vs first: {'ticks/s':>7} {'p99':>6} {'cpu':>6}")
    lines = [head, "-" * len(head)]
    first = rows[0]
    for r in rows:
        lines.append(f"{r.name:<{width}} {r.ticks_per_s:>10,.0f} {r.loss_pct:>6.2f} {r.orders:>8} {r.p50:>8.0f} "
                     f"{r.p99:>8.0f} {r.p999:>8.0f} {r.cpu_pct:>6.0f} {r.rss_mb:>6.1f} {r.exit_code:>4} | "
                     f"{'':>10}{_ratio(r.ticks_per_s, first.ticks_per_s):>7} {_ratio(r.p99, first.p99):>6} "
                     f"{_ratio(r.cpu_pct, first.cpu_pct):>6}")
    return "\n".join(lines)


def compare(run_dirs: Sequence[str | Path], names: Sequence[str] | None = None) -> str:
    reports = [load(d) for d in run_dirs]
    names = names or [f"{Path(d).name}" for d in run_dirs]
    return table([row(r, n) for r, n in zip(reports, names)])


def compare_html(run_dirs: Sequence[str | Path], out: str | Path, names: Sequence[str] | None = None) -> Path:
    """A self-contained page: the table above and the runs' tick-to-ack CDFs overlaid."""
    import html

    from zmqtrade.htmlreport import CSS, cdf_plot

    names = list(names or [Path(d).name for d in run_dirs])
    curves = {}
    for d, n in zip(run_dirs, names):
        path = Path(d) / "latency.json"
        curves[n] = json.loads(path.read_text()).get("tick_to_ack", []) if path.exists() else []
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>zmqtrade comparison</title>"
            f"<style>{CSS}</style></head><body><h1>zmqtrade comparison</h1>"
            f"<pre>{html.escape(compare(run_dirs, names))}</pre>"
            f"<div class='plot'>{cdf_plot(curves, 'tick_to_ack, all runs (CDF)')}</div></body></html>\n")
    out = Path(out)
    out.write_text(page)
    return out
