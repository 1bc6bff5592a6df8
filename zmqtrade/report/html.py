"""report.html: a self-contained page (opens offline) with a run's plots and tables.

Plots are drawn with matplotlib and inlined as SVG, so the page has no images to break, no
scripts and no network references. The data come from the run directory only (report.json,
resources.csv, progress.csv, latency.json), so an old run can be rendered again with
``python -m zmqtrade.report.html RUN_DIR``.
"""
from __future__ import annotations

import argparse
import csv
import html
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from zmqtrade.report.figures import figure, legend, log_axis, new_figure, svg
from zmqtrade.report.live import RATE_COUNTER, rate_between
from zmqtrade.report.summary import FEW, manifest_lines, percentile_cell
from zmqtrade.topology import BIND_KEYS

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 2px 10px; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; } .plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plot svg { max-width: 100%; height: auto; } .failed { color: #b00; font-weight: bold; }
"""


KIND_ORDER = ("gateway", "orderbook", "strategy", "ordermanager")


def rates_plot(rates: dict[str, tuple[list[float], list[float]]], kinds: dict[str, str]) -> str:
    """Messages per second, one panel per process kind (each on its own scale: the order
    manager's dozen a second is not flattened against the gateway's thousands)."""
    present = [k for k in KIND_ORDER if any(kinds.get(n) == k for n in rates)]
    fig = new_figure(6.4, 1.3 + 1.1 * max(1, len(present)))
    axes = fig.subplots(max(1, len(present)), 1, sharex=True, squeeze=False)
    axes[0][0].set_title("Message rates over time, per kind")
    for row, kind in zip(axes, present):
        ax = row[0]
        for name, (ts, rs) in rates.items():
            if kinds.get(name) == kind:
                ax.plot(ts, rs, label=name)
        ax.set_ylabel(f"{RATE_COUNTER[kind].replace('_', ' ')}\n/ s", fontsize=7)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        legend(ax, outside=True)
    axes[-1][0].set_xlabel("seconds since launch")
    return svg(fig)


def hops_plot(latency: dict[str, Any]) -> str:
    """p50 and p99 of each hop side by side on a log axis, each bar labelled with its value."""
    hops = [h for h in ("tick_to_book", "book_to_decision", "order_to_om", "om_process", "reply_to_strategy")
            if latency.get(h, {}).get("count")]
    fig, ax = figure("Per-hop latency, p50 and p99", "hop", "us (log scale)")
    if hops:
        xs = range(len(hops))
        for offset, q in ((-0.2, "p50"), (0.2, "p99")):
            values = [max(latency[h][q], 0.1) for h in hops]
            bars = ax.bar([x + offset for x in xs], values, width=0.4, label=q)
            for bar, v in zip(bars, values):
                ax.annotate(f"{v:.0f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        log_axis(ax.yaxis)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(hops, rotation=20, fontsize=8)
        legend(ax)
    return svg(fig)


def _resources(run_dir: Path) -> dict[str, dict[str, list[float]]]:
    series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    path = run_dir / "resources.csv"
    if path.exists():
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                s = series[row["process"]]
                s["t"].append(float(row["t_s"]))
                s["cpu"].append(float(row["cpu_percent"]))
                s["rss"].append(int(row["rss_bytes"]) / 1e6)
    return series


def _rates(run_dir: Path, kinds: dict[str, str]) -> dict[str, tuple[list[float], list[float]]]:
    """Messages per second over time per process, from its main counter in progress.csv."""
    points: dict[str, list[tuple[float, int]]] = defaultdict(list)
    path = run_dir / "progress.csv"
    if path.exists():
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if RATE_COUNTER.get(kinds.get(row["process"], "")) == row["counter"]:
                    points[row["process"]].append((float(row["t_s"]), int(row["value"])))
    out = {}
    for name, pts in points.items():
        pairs = [((a[0] + b[0]) / 2, rate_between(a, b)) for a, b in zip(pts, pts[1:])]
        out[name] = ([t for t, r in pairs if r is not None], [r for _, r in pairs if r is not None])
    return out


def broken_at_restarts(ts: list[float], ys: list[float], lives: list[dict[str, Any]]) -> tuple[list, list]:
    """A process's samples with a gap (NaN) where a new life began: no line across a restart."""
    starts = sorted(life["started_s"] for life in lives[1:])
    out_t: list[float] = []
    out_y: list[float] = []
    i = 0
    for t, y in zip(ts, ys):
        if i < len(starts) and t >= starts[i]:
            while i < len(starts) and t >= starts[i]:
                i += 1
            out_t.append(t)
            out_y.append(float("nan"))
        out_t.append(t)
        out_y.append(y)
    return out_t, out_y


def timeline_plot(procs: dict[str, Any], events: list[dict[str, Any]], window: list[float] | None) -> str:
    """Each process's lives as bars (red: ended unexpectedly), supervision events and faults as marks."""
    names = [n for n, p in procs.items() if p.get("lives")]
    fig, ax = figure("Supervision: lives and events", "seconds since launch", "")
    end = window[1] if window else 0.0
    for life in (l for n in names for l in procs[n]["lives"]):
        end = max(end, life["ended_s"] or 0.0, life["started_s"])
    offset = window[0] if window else 0.0  # events are timed from the start of streaming
    for y, name in enumerate(names):
        for life in procs[name]["lives"]:
            stop = life["ended_s"] if life["ended_s"] is not None else end
            bad = life["reason"] not in (None, "stopped")
            ax.broken_barh([(life["started_s"], max(stop - life["started_s"], 0.01))], (y - 0.3, 0.6),
                           color="#c33" if bad else "#7a9", alpha=0.8)
        for e in (e for e in events if e["process"] == name):
            fault = e["event"].startswith("fault")
            ax.plot(e["t_s"] + offset, y, marker="x" if fault else "|", color="#222" if fault else "#36c",
                    markersize=9, linestyle="none")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_ylim(-0.7, len(names) - 0.3)
    ax.grid(True, axis="x", alpha=0.3)
    return svg(fig)


PERCENTILE_TICKS = ((2, "50%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%"))
"""Where each percentile sits on the plot's x axis, 1 / (1 - q): the tail gets the room."""


def pnl_plot(strategies: dict[str, Any], window: list[float] | None) -> str:
    """Each strategy's net PnL over the run (open positions marked at the book's mid), from the
    order manager's progress reports."""
    fig, ax = figure("Net PnL over time, per strategy", "seconds since launch", "net PnL")
    for name, r in strategies.items():
        points = r.get("pnl_over_time") or []
        ax.plot([t for t, _ in points], [v for _, v in points], label=name)
    ax.axhline(0, color="#888", linewidth=0.8)
    if window:
        ax.axvspan(0, window[0], color="#888", alpha=0.12, label="start-up")
    legend(ax, outside=True)
    return svg(fig)


def percentile_plot(curves: dict[str, list[list[float]]], title: str) -> str:
    """Latency by percentile (HdrHistogram style), runs overlaid: x is 1 / (1 - q) on a log axis,
    so 50%, 90%, 99%, 99.9% and 99.99% are evenly spaced and the tail is not squeezed into the
    top of a CDF; y (log) is microseconds. Each curve stops at the percentile its samples reach."""
    from matplotlib.ticker import NullLocator

    fig, ax = figure(title, "percentile", "latency (us, log scale)")
    reach = 2.0
    for label, pts in curves.items():
        total = sum(n for _, n in pts)
        if not total:
            continue
        xs, ys, acc = [], [], 0
        for us, n in pts:
            xs.append(1.0 / (1.0 - acc / total))
            acc += n
            ys.append(max(us, 0.001))
            if acc < total:
                xs.append(1.0 / (1.0 - acc / total))
                ys.append(max(us, 0.001))
        ax.plot(xs, ys, label=f"{label} ({total:,} samples)", drawstyle="steps-post")
        reach = max(reach, total)  # beyond 1 / (1 - (n-1)/n) = n a curve has nothing to say
    ax.set_xscale("log")
    ax.set_yscale("log")
    log_axis(ax.yaxis)
    ticks = [(x, t) for x, t in PERCENTILE_TICKS if x <= reach * 1.01] or list(PERCENTILE_TICKS[:1])
    ax.set_xticks([x for x, _ in ticks])
    ax.set_xticklabels([t for _, t in ticks])
    ax.set_xlim(1, max(x for x, _ in ticks) * 1.5)
    ax.xaxis.set_minor_locator(NullLocator())  # the percentile ticks only; y keeps its minor labels
    legend(ax)
    return svg(fig)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def render(run_dir: str | Path) -> Path:
    """Write run_dir/report.html and return its path."""
    run_dir = Path(run_dir)
    rep = json.loads((run_dir / "report.json").read_text())
    lat_path = run_dir / "latency.json"
    hists = json.loads(lat_path.read_text()) if lat_path.exists() else {}
    procs = rep["processes"]
    kinds = {n: p["kind"] for n, p in procs.items()}
    res = _resources(run_dir)

    window = rep.get("window_s")
    plots = []
    for key, ylabel, title in (("cpu", "CPU % (100 = one core)", "CPU over time"), ("rss", "RSS MB", "Memory over time")):
        fig, ax = figure(title, "seconds since launch", ylabel)
        top = 0.0
        for name, s in res.items():
            ts, ys = broken_at_restarts(s["t"], s[key], procs.get(name, {}).get("lives") or [])
            ax.plot(ts, ys, label=name)
            inside = [y for t, y in zip(s["t"], s[key]) if not window or window[0] < t <= window[1]]
            top = max([top, *inside])
        if window:  # start-up and stop greyed: the axis is scaled to the load, not to the imports
            end = max([window[1], *[t for s in res.values() for t in s["t"]]])
            ax.axvspan(0, window[0], color="#888", alpha=0.12, label="start-up")
            ax.axvspan(window[1], end, color="#888", alpha=0.12)
            if top > 0:
                ax.set_ylim(0, top * 1.25)
        legend(ax, outside=True)
        plots.append(svg(fig))
    if any(len(p.get("lives") or []) > 1 for p in procs.values()) or rep.get("events"):
        plots.append(timeline_plot(procs, rep.get("events") or [], window))
    plots.append(rates_plot(_rates(run_dir, kinds), kinds))
    plots.append(percentile_plot({"tick_to_ack": hists.get("tick_to_ack", [])}, "tick_to_ack by percentile"))
    plots.append(hops_plot(rep["latency_us"]))
    results = rep.get("strategies") or {}
    if any(r.get("pnl_over_time") for r in results.values()):
        plots.append(pnl_plot(results, window))
    result_rows = [[n, r["fills"], r["volume"], f"{r['turnover']:,.2f}", f"{r['realized_pnl']:,.2f}",
                    f"{r['unrealized_pnl']:,.2f}", f"{r['fees']:,.2f}", f"{r['net_pnl']:,.2f}",
                    " ".join(f"{sym} {v['position']:+d} @ {v['avg_price']:.2f}" for sym, v in r["symbols"].items()
                             if v["position"]) or "flat"] for n, r in results.items()]
    results_table = (f"<h2>Results</h2><p>The order manager's book of record; open positions marked at the "
                     f"book's mid at the end.</p>" + _table(["strategy", "fills", "volume", "turnover", "realized",
                                                              "unrealized", "fees", "net PnL", "open"], result_rows)
                     if result_rows else "")

    hosts = rep.get("hosts") or {}
    where = (lambda p: [p.get("host", "")]) if hosts else (lambda p: [])
    proc_rows = [[n, *where(p), p["kind"], p["pid"], "-" if p["exit_code"] is None else p["exit_code"],
                  p["cpu_percent"]["mean"], p["cpu_percent"]["max"], f"{p['rss_bytes']['max'] / 1e6:.1f}",
                  f"{p['uss_bytes']['max'] / 1e6:.1f}", p["threads"]["max"], p["ctx_switches"]] for n, p in procs.items()]
    host_rows = [[h, e["role"], "-" if e["exit_code"] is None else e["exit_code"], "yes" if e["report"] else "missing",
                  f"{e['clock_offset_ns'] / 1e3:+.0f}", f"{e['clock_uncertainty_ns'] / 1e3:.0f}",
                  f"{e['clock_drift_ns'] / 1e3:+.0f}" if "clock_drift_ns" in e else "-", e["run_dir"] or "-"]
                 for h, e in hosts.items()]
    host_head = ["host", "role", "exit", "report", "clock offset us", "+/- us", "drift us", "run directory"]
    host_table = f"<h2>Hosts</h2>{_table(host_head, host_rows)}" if hosts else ""
    lat_rows = [[k, v["count"], *[percentile_cell(v, q) for q in ("p50", "p90", "p99", "p999")], v["max"]]
                for k, v in [*rep["latency_us"].items(), ("book_staleness", rep["book_staleness_us"])]]
    few_note = (f"<p>* too few samples to be a figure (p90 &lt; {FEW['p90']}, p99 &lt; {FEW['p99']}, p99.9 &lt; "
                f"{FEW['p999']}): an estimate, not a tail.</p>" if any("*" in str(c) for r in lat_rows for c in r) else "")
    m = rep.get("manifest") or {}
    sets = " ".join(f"{k}={v}" for k, v in (m.get("overrides") or {}).items()
                    if k not in BIND_KEYS)  # endpoints (the test fixture moves them all) say nothing of the run
    what_ran = ""
    if m:
        what_ran = ("<h2>What ran</h2>" + "".join(f"<p>{html.escape(line)}</p>" for line in manifest_lines(m))
                    + _table(["setting", "value"], sorted((k, v) for k, v in (m.get("settings") or {}).items()))
                    + f"<p>topology file <code>{html.escape(str(m.get('source')))}</code> (sha256 "
                    f"<code>{html.escape(str(m.get('source_sha256'))[:16])}</code>)</p>")
    life_rows = [[n, life["life"], life["pid"], f"{life['started_s']:.2f}",
                  "-" if life["ended_s"] is None else f"{life['ended_s']:.2f}", life["reason"] or "running",
                  "-" if life["restart_delay_s"] is None else f"{life['restart_delay_s']:g}"]
                 for n, p in procs.items() if len(p.get("lives") or []) > 1 for life in p["lives"]]
    event_rows = [[f"{e['t_s']:.2f}", e["process"], e["pid"], e["event"]] for e in rep.get("events") or []]
    supervision = ""
    if life_rows or event_rows:
        supervision = ("<h2>Supervision</h2>"
                       + (f"<p>Lives of the processes that restarted (seconds since launch)</p>"
                          + _table(["process", "life", "pid", "started", "ended", "how", "restart after s"], life_rows)
                          if life_rows else "")
                       + (f"<p>Events (seconds since streaming began)</p>"
                          + _table(["t s", "process", "pid", "event"], event_rows) if event_rows else ""))
    failures = "".join(f"<p class='failed'>FAILED {html.escape(f['process'])}: {html.escape(f['reason'])}</p>"
                       for f in rep["failures"])
    failures += "".join(  # the unexpected exits a restart recovered from: the reason for exit 3
        f"<p class='failed'>RESTARTED {html.escape(r['process'])} (life {r['life']} ended at {r['t_s']:.2f} s): "
        f"{html.escape(r['reason'])}</p><pre>{html.escape(chr(10).join(r.get('log_tail', [])[-5:]))}</pre>"
        for r in rep.get("recovered", []))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zmqtrade run {html.escape(rep['topology'])}</title>
<style>{CSS}</style></head><body>
<h1>zmqtrade run: {html.escape(rep['topology'])}{html.escape(f" ({sets})") if sets else ""}</h1>
<p>{rep['duration_s']:.1f} s streaming, exit {rep['exit_code']}; run directory <code>{html.escape(rep['run_dir'])}</code></p>
{failures}
{results_table}
<h2>Plots</h2><div class="plots">{"".join(f'<div class="plot">{p}</div>' for p in plots)}</div>
{supervision}
{host_table}
<h2>Processes</h2>{_table(["process", *(["host"] if hosts else []), "kind", "pid", "exit", "cpu% mean", "cpu% max",
                           "rss MB", "uss MB", "threads", "ctx switches"], proc_rows)}
<h2>Counters</h2>{_table(["counter", "value"], sorted(rep["counters"].items()))}
<h2>Latency (us)</h2>{_table(["series", "count", "p50", "p90", "p99", "p99.9", "max"], lat_rows)}{few_note}
{what_ran}
</body></html>
"""
    out = run_dir / "report.html"
    out.write_text(page)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``zmqtrade report RUN_DIR`` (or ``python -m zmqtrade.report.html RUN_DIR``): draw a finished
    run's report.html again from its run directory."""
    p = argparse.ArgumentParser(prog="zmqtrade report", description="draw a finished run's report.html again "
                                "from its run directory")
    p.add_argument("run_dir", type=Path, help="a run directory (it holds report.json)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not (args.run_dir / "report.json").is_file():
        print(f"zmqtrade report: {args.run_dir} holds no report.json (not a run directory, or its run never "
              f"ended); give the directory a run wrote", file=sys.stderr)
        return 2
    print(render(args.run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
