"""Side by side: runs' throughput, loss, latency, CPU and memory, each with its ratio to the first.

    python -m zmqtrade compare RUN_DIR [RUN_DIR ...]

Sweeps print the same table at their end. Reads only each run's report.json, so runs from
any version of the same report format can be compared. Runs are labelled by what differs
between them (their manifests' settings and overrides), not by directory name. Memory is the
stack's: its processes' peak RSS summed, the launcher apart (it grows with what it records,
not with the load). Each tail figure says how many samples it rests on, and is marked ``*``
when they are too few to be more than an estimate.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from zmqtrade.report.manifest import differing
from zmqtrade.report.summary import FEW, percentile_cell


@dataclass(frozen=True)
class Row:
    name: str
    ticks_per_s: float
    loss_pct: float
    orders: int
    p50: float
    p99: float
    p999: float
    samples: int
    cpu_pct: float
    stack_mb: float
    launcher_mb: float
    exit_code: int
    pnl: dict[str, float]
    """Net PnL per strategy (the order manager's ledger; empty for a run from before it)."""

    @property
    def net_pnl(self) -> float:
        return sum(self.pnl.values())


class CompareError(ValueError):
    """A run directory that cannot be compared (no report, or a damaged one)."""


def load(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "report.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise CompareError(f"{path}: no report here; is {run_dir} a run directory (one a finished run wrote)?") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}: not valid JSON ({exc})") from None


def row(report: dict[str, Any], name: str) -> Row:
    c = report["counters"]
    lat = report["latency_us"]["tick_to_ack"]
    duration = report["duration_s"] or 1.0
    published = c["ticks_published"]
    lost = published - c["ticks_applied"]  # gaps are ticks that never got applied: already in here
    procs = report["processes"].values()
    stack = [p for p in procs if p.get("kind") != "launcher"]
    return Row(name, c["ticks_applied"] / duration, 100.0 * max(0, lost) / published if published else 0.0,
               c["orders_acked"], lat["p50"], lat["p99"], lat["p999"], lat.get("count", 0),
               sum(p["cpu_percent"]["mean"] for p in procs),
               sum(p["rss_bytes"]["max"] for p in stack) / 1e6,
               max((p["rss_bytes"]["max"] for p in procs if p.get("kind") == "launcher"), default=0) / 1e6,
               report["exit_code"], {n: r["net_pnl"] for n, r in (report.get("strategies") or {}).items()})


def pnl_columns(rows: Sequence[Row]) -> list[str]:
    """The PnL columns: the stack's net PnL, and each strategy's when there are several (a sweep
    over one strategy's parameters compares that strategy's)."""
    names = list(dict.fromkeys(n for r in rows for n in r.pnl))
    return ["net pnl"] + ([f"pnl {n}" for n in names] if len(names) > 1 else [])


def pnl_cells(r: Row, columns: Sequence[str]) -> list[str]:
    return [f"{r.net_pnl:,.2f}" if c == "net pnl" else f"{r.pnl.get(c[4:], 0.0):,.2f}" for c in columns]


def _ratio(value: float, first: float) -> str:
    return f"{value / first:5.2f}x" if first else "    -"


def table(rows: Sequence[Row]) -> str:
    """One line per run; the ratio columns compare each run with the first."""
    width = max([len(r.name) for r in rows] + [4])
    money = pnl_columns(rows)
    mw = [max(len(c), 10) for c in money]
    head = (f"{'run':<{width}} {'ticks/s':>10} {'loss%':>6} {'orders':>8} {'samples':>8} {'p50 us':>8} {'p99 us':>8} "
            f"{'p999 us':>8} {'cpu%':>6} {'stackMB':>8} {'launchMB':>8} {'exit':>4} "
            + "".join(f"{c:>{w}} " for c, w in zip(money, mw))
            + f"| vs first: {'ticks/s':>7} {'p99':>6} {'cpu':>6}")
    lines = [head, "-" * len(head)]
    first = rows[0]
    flagged = False
    few_first = first.samples < FEW["p99"]
    for r in rows:
        lat = {"p50": r.p50, "p99": r.p99, "p999": r.p999, "count": r.samples}
        p50, p99, p999 = (percentile_cell(lat, q) for q in ("p50", "p99", "p999"))
        flagged = flagged or "*" in p50 + p99 + p999
        p99_ratio = _ratio(r.p99, first.p99) + ("*" if few_first or r.samples < FEW["p99"] else " ")
        lines.append(f"{r.name:<{width}} {r.ticks_per_s:>10,.0f} {r.loss_pct:>6.2f} {r.orders:>8} {r.samples:>8} "
                     f"{p50:>8} {p99:>8} {p999:>8} {r.cpu_pct:>6.0f} {r.stack_mb:>8.1f} {r.launcher_mb:>8.1f} "
                     f"{r.exit_code:>4} " + "".join(f"{c:>{w}} " for c, w in zip(pnl_cells(r, money), mw))
                     + f"| {'':>10}{_ratio(r.ticks_per_s, first.ticks_per_s):>7} "
                     f"{p99_ratio:>7}{_ratio(r.cpu_pct, first.cpu_pct):>6}")
    lines.append("")
    lines.append("samples: tick_to_ack samples; stackMB: the stack's processes' peak RSS summed (launchMB: the "
                 "launcher's, apart); net pnl: realized + unrealized (at the book's mid) - fees, from the order "
                 "manager's ledger")
    if flagged:
        lines.append(f"* too few samples for that figure (p99 < {FEW['p99']}, p99.9 < {FEW['p999']}): an estimate; "
                     f"a ratio of two such figures is noise")
    return "\n".join(lines)


def labels(reports: Sequence[dict[str, Any]], run_dirs: Sequence[str | Path]) -> list[str]:
    """What sets each run apart (its manifest's differing settings), else its directory's name."""
    if len(reports) > 1 and all(r.get("manifest") for r in reports):
        diffs = differing([r["manifest"] for r in reports])
        if all(diffs) and len(set(diffs)) == len(diffs):
            return diffs
    return [Path(d).name for d in run_dirs]


def compare(run_dirs: Sequence[str | Path], names: Sequence[str] | None = None) -> str:
    reports = [load(d) for d in run_dirs]
    names = names or labels(reports, run_dirs)
    return table([row(r, n) for r, n in zip(reports, names)])


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def repeated(groups: Sequence[tuple[str, Sequence[str | Path]]]) -> str:
    """One line per point run several times: each figure's median [min-max] over the repeats,
    and its ratio to the first point's median, marked ``~`` when the two points' ranges overlap
    (the difference is within the runs' own spread: noise, not an effect)."""
    points = [(name, [row(load(d), name) for d in dirs]) for name, dirs in groups]
    width = max([len(n) for n, _ in points] + [5])
    head = (f"{'point':<{width}} {'runs':>4} {'ticks/s':>9} {'p50 us median [range]':>22} "
            f"{'p99 us median [range]':>22} {'cpu%':>5} {'stackMB':>8} {'exit':>4} {'net pnl median [range]':>28} "
            f"| vs first: {'p50':>7} "
            f"{'p99':>7} {'cpu':>7}")
    lines = [head, "-" * len(head)]
    figures = ("p50", "p99", "cpu_pct")
    first = {f: _spread([getattr(r, f) for r in points[0][1]]) for f in figures}
    few_any = False
    for i, (name, rows) in enumerate(points):
        s = {f: _spread([getattr(r, f) for r in rows]) for f in figures}

        def vs(f: str) -> str:
            (med, lo, hi), (fmed, flo, fhi) = s[f], first[f]
            return _ratio(med, fmed).strip() + ("~" if i and lo <= fhi and flo <= hi else " ")

        few = "*" if min(r.samples for r in rows) < FEW["p99"] else ""
        few_any = few_any or bool(few)
        p50 = f"{s['p50'][0]:.0f} [{s['p50'][1]:.0f}-{s['p50'][2]:.0f}]"
        p99 = f"{s['p99'][0]:.0f}{few} [{s['p99'][1]:.0f}-{s['p99'][2]:.0f}]"
        med, lo, hi = _spread([r.net_pnl for r in rows])
        pnl = f"{med:,.2f} [{lo:,.2f} .. {hi:,.2f}]"
        lines.append(f"{name:<{width}} {len(rows):>4} {statistics.median(r.ticks_per_s for r in rows):>9,.0f} "
                     f"{p50:>22} {p99:>22} {s['cpu_pct'][0]:>5.0f} {statistics.median(r.stack_mb for r in rows):>8.1f} "
                     f"{max(r.exit_code for r in rows):>4} {pnl:>28} | {'':>10}{vs('p50'):>8}{vs('p99'):>8}{vs('cpu_pct'):>8}")
    lines += ["", "~ its range overlaps the first point's: the difference is within the runs' own noise"]
    if few_any:
        lines.append(f"* a run of that point has fewer than {FEW['p99']} tick_to_ack samples: its p99 is an estimate")
    return "\n".join(lines)


def compare_html(run_dirs: Sequence[str | Path], out: str | Path, names: Sequence[str] | None = None) -> Path:
    """A self-contained page: the table above and the runs' tick-to-ack CDFs overlaid."""
    import html

    from zmqtrade.report.html import CSS, _table, percentile_plot

    reports = [load(d) for d in run_dirs]
    names = list(names or labels(reports, run_dirs))
    curves = {}
    for d, n in zip(run_dirs, names):
        path = Path(d) / "latency.json"
        curves[n] = json.loads(path.read_text()).get("tick_to_ack", []) if path.exists() else []
    rows = [row(r, n) for r, n in zip(reports, names)]
    first = rows[0]
    money = pnl_columns(rows)
    cells = []
    for r in rows:
        lat = {"p50": r.p50, "p99": r.p99, "p999": r.p999, "count": r.samples}
        cells.append([r.name, f"{r.ticks_per_s:,.0f}", f"{r.loss_pct:.2f}", r.orders, r.samples,
                      *[percentile_cell(lat, q) for q in ("p50", "p99", "p999")], f"{r.cpu_pct:.0f}",
                      f"{r.stack_mb:.1f}", f"{r.launcher_mb:.1f}", r.exit_code, *pnl_cells(r, money),
                      _ratio(r.ticks_per_s, first.ticks_per_s).strip(), _ratio(r.p99, first.p99).strip(),
                      _ratio(r.cpu_pct, first.cpu_pct).strip()])
    head = ["run (what differs)", "ticks/s", "loss %", "orders", "samples", "p50 us", "p99 us", "p99.9 us", "cpu %",
            "stack MB", "launcher MB", "exit", *money, "ticks/s vs first", "p99 vs first", "cpu vs first"]
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>zmqtrade comparison</title>"
            f"<style>{CSS}</style></head><body><h1>zmqtrade comparison</h1>"
            f"{_table(head, cells)}<p>* too few samples for that figure (p99 &lt; {FEW['p99']}, p99.9 &lt; "
            f"{FEW['p999']}): an estimate. stack MB: the stack's processes' peak RSS summed.</p>"
            f"<div class='plot'>{percentile_plot(curves, 'tick_to_ack by percentile, all runs')}</div>"
            f"<p>Runs: {', '.join(html.escape(str(Path(d))) for d in run_dirs)}</p></body></html>\n")
    out = Path(out)
    out.write_text(page)
    return out
