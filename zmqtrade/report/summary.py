"""The run's summary as printed at its end, and the cells every view of a run shares (a
percentile and whether it rests on enough samples, what ran, a process's lives, the results)."""
from __future__ import annotations

from typing import Any, Mapping

from zmqtrade.topology import BIND_KEYS


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


FEW = {"p50": 10, "p90": 100, "p99": 1000, "p999": 10000}
"""Samples a percentile needs before it is more than an estimate (about 10 beyond it)."""


def percentile_cell(lat: Mapping[str, Any], q: str) -> str:
    """A percentile as shown: its value, marked ``*`` when it rests on too few samples."""
    return f"{lat[q]:.0f}" + ("*" if 0 < lat["count"] < FEW[q] else "")


def manifest_lines(m: Mapping[str, Any]) -> list[str]:
    """What ran, in two lines: overrides and key settings; versions and machine."""
    if not m:
        return []
    st, v, mc = m.get("settings", {}), m.get("versions", {}), m.get("machine", {})
    given = m.get("overrides", {})
    sets = " ".join(f"{k}={val}" for k, val in given.items() if k not in BIND_KEYS) or "none"
    moved = sum(1 for k in given if k in BIND_KEYS)
    if moved:
        sets += f" (and {moved} endpoints moved)"
    what = (f"{st.get('transport')}, {st.get('gateway.rate', 0):g} ticks/s, "
            f"{'conflated' if st.get('orderbook.conflate') else 'every tick'}, fsync {st.get('ordermanager.fsync')}, "
            f"{st.get('strategies')} strategies")
    load = mc.get("load_at_start") or [0.0]
    return [f"ran: {what}; overrides: {sets}",
            f"on: zmqtrade {v.get('zmqtrade')}" + (f" (git {v['git']})" if v.get("git") else "")
            + f", Python {v.get('python')}, pyzmq {v.get('pyzmq')} / libzmq {v.get('libzmq')}; "
            f"{mc.get('cpus')} x {mc.get('cpu_model') or 'CPU'}, load {load[0]} at start"]


def life_text(life: Mapping[str, Any]) -> str:
    """One life on one line: 'life 2 pid 123  1.20-3.40 s  killed by SIGKILL; restarted after 0.2 s'."""
    end = "" if life.get("ended_s") is None else f"{life['ended_s']:.2f}"
    how = life.get("reason") or "running"
    if life.get("restart_delay_s") is not None:
        how += f"; restarted after {life['restart_delay_s']:g} s"
    return f"life {life['life']} pid {life['pid']}  {life['started_s']:.2f}-{end} s  {how}"


def results_lines(strategies: Mapping[str, Any]) -> list[str]:
    """The results table: each strategy's fills and PnL (open positions marked at the book's mid)."""
    if not strategies:
        return []
    out = ["", f"  {'strategy':<14}{'fills':>8}{'volume':>9}{'turnover':>13}{'realized':>11}{'unrealized':>11}"
               f"{'fees':>9}{'net pnl':>11}  open"]
    for name, r in strategies.items():
        held = " ".join(f"{sym} {v['position']:+d}" for sym, v in r["symbols"].items() if v["position"]) or "flat"
        out.append(f"  {name:<14}{r['fills']:>8}{r['volume']:>9}{r['turnover']:>13,.2f}{r['realized_pnl']:>11,.2f}"
                   f"{r['unrealized_pnl']:>11,.2f}{r['fees']:>9,.2f}{r['net_pnl']:>11,.2f}  {held}")
    return out


def summary(report: Mapping[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    lines = [f"run {report['topology']}: {report['duration_s']:.1f} s streaming, exit {report['exit_code']}",
             *[f"  {line}" for line in manifest_lines(report.get("manifest") or {})],
             "",
             f"  {'process':<14}{'kind':<14}{'exit':>5}{'cpu% mean':>11}{'cpu% max':>10}{'rss MB':>9}{'uss MB':>9}"]
    for name, p in report["processes"].items():
        code = "-" if p["exit_code"] is None else ("kill" if p.get("killed") else str(p["exit_code"]))
        lines.append(f"  {name:<14}{p['kind']:<14}{code:>5}{p['cpu_percent']['mean']:>11.1f}"
                     f"{p['cpu_percent']['max']:>10.1f}{_mb(p['rss_bytes']['max']):>9}{_mb(p['uss_bytes']['max']):>9}")
    c = report["counters"]
    lines += ["",
              f"  ticks   published {c['ticks_published']}  applied {c['ticks_applied']}  gaps {c['tick_gaps']}",
              f"  news    published {c['news_published']}  received {c['news_received']}  gaps {c['news_gaps']}",
              f"  orders  sent {c['orders_sent']}  acked {c['orders_acked']}  rejected {c['orders_rejected']}"
              f"  unanswered {c['orders_unanswered']}  re-sent {c['orders_resent']}  journal {c['journal_records']}",
              f"  malformed messages {c['malformed_messages']}  publisher resyncs {c['resyncs']}"
              f"  stale-book skips {c['stale_book_skips']}"]
    lines += results_lines(report.get("strategies") or {})
    rows = [*report["latency_us"].items(), ("book_staleness", report["book_staleness_us"])]
    if any(lat["count"] for _, lat in rows):
        lines += ["", f"  {'latency (us)':<20}{'count':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>9}"]
    else:
        lines += ["", "  latency: no samples (no order went through: the stack never streamed, or nothing traded)"]
        rows = []
    flagged = False
    for name, lat in rows:
        cells = [percentile_cell(lat, q) for q in ("p50", "p90", "p99", "p999")]
        flagged = flagged or any(c.endswith("*") for c in cells)
        lines.append(f"  {name:<20}{lat['count']:>9}" + "".join(f"{c:>9}" for c in cells) + f"{lat['max']:>9.0f}")
    if flagged:
        lines.append(f"  * rests on too few samples to be a figure (p90 < {FEW['p90']}, p99 < {FEW['p99']}, "
                     f"p99.9 < {FEW['p999']} samples): an estimate, not a tail")
    if report.get("latency_by_host"):
        lines += ["", f"  {'book on host':<14}{'strategies':>11}{'tick_to_book p50/p99':>24}{'tick_to_ack p50/p99':>24}"]
        for h, e in report["latency_by_host"].items():
            book, ack = e["latency_us"]["tick_to_book"], e["latency_us"]["tick_to_ack"]
            lines.append(f"  {h:<14}{len(e['strategies']):>11}{book['p50']:>15.0f} / {percentile_cell(book, 'p99'):<6}"
                         f"{ack['p50']:>15.0f} / {percentile_cell(ack, 'p99'):<6}")
    if report.get("hosts"):
        lines += ["", f"  {'host':<10}{'role':<6}{'exit':>5}  {'report':<8}{'clock offset':>14}{'+/-':>9}{'drift':>9}"]
        for h, e in report["hosts"].items():
            drift = f"{e['clock_drift_ns'] / 1e3:+.0f} us" if "clock_drift_ns" in e else "-"
            lines.append(f"  {h:<10}{e['role']:<6}{'-' if e['exit_code'] is None else e['exit_code']:>5}  "
                         f"{'yes' if e['report'] else 'missing':<8}{e['clock_offset_ns'] / 1e3:>+11.0f} us"
                         f"{e['clock_uncertainty_ns'] / 1e3:>6.0f} us{drift:>9}")
    if report.get("events"):
        lines += ["", "  supervision"]
        lines += [f"  {e['t_s']:>8.2f} s  {e['process']} (pid {e['pid']}) {e['event']}" for e in report["events"]]
    restarted = {n: p["lives"] for n, p in report["processes"].items() if len(p.get("lives") or []) > 1}
    if restarted:
        lines += ["", "  lives (seconds since launch)"]
        for name, lives in restarted.items():
            lines += [f"  {name:<14}{life_text(life)}" for life in lives]
    for r in report.get("recovered", []):
        lines.append(f"  RESTARTED {r['process']} (life {r['life']} ended at {r['t_s']:.2f} s): {r['reason']}")
        lines += [f"    | {line}" for line in r["log_tail"][-3:]]
    for f in report["failures"]:
        lines.append(f"  FAILED {f['process']}: {f['reason']}")
    return "\n".join(lines)
