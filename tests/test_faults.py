"""Fault injection through the launcher: the whole stack under load, one fault declared in the
topology, then the guarantees checked on what the run left behind (report, journal).

After each fault: the run recovers by itself and ends cleanly; the journal holds every order at
most once; every order a strategy saw acked is in the journal (exactly once), and a strategy
that lived through the run has no order left unanswered, so its acked set *is* its journal
set; the stack recovered within a bounded time and traded again afterwards; nothing leaks
(the autouse ``no_leaks`` check).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import DELETE
from zmqtrade import journal

RECOVERY_S = 6.0
"""Fault to rejoin, at most: backoff (0.1 s) + a Python process start (~1 s here) + welcomes."""
LOAD = {
    "duration_s": 5,
    "gateway": {"rate": 2000, "news_rate": 50},
    "strategies": {"trend": {"class": "every_quote", "symbols": ["AAPL", "MSFT"], "qty": 1, "params": DELETE,
                             "order_timeout_s": 0.3}},
    "supervision": {"heartbeat_s": 0.1, "liveness_s": 1.5, "restart": {"backoff_s": 0.1}},
}
"""A steady order flow (one order per changed quote of trend) beside the default rsi strategy."""


def run_with(launch, write_topology, tmp_path: Path, faults: list[dict], **changes: Any) -> dict:
    topo = write_topology({**LOAD, "faults": faults, **changes})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "-q")
    assert run.finish(timeout=90) == 0, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    report["journal"] = list(journal.read(run_dir / journal.FILENAME))
    report["output"] = run.output
    return report


def ids(runs: list[list[int]]) -> set[int]:
    return {i for lo, hi in runs for i in range(lo, hi + 1)}


def check_orders(report: dict, lived_through: set[str]) -> None:
    records = report["journal"]
    keys = Counter((r["strategy"], r["clordid"]) for r in records)
    assert not [k for k, n in keys.items() if n > 1], "an order was filled twice"
    assert [r["order_id"] for r in records] == list(range(1, len(records) + 1))
    om = report["processes"]["ordermanager"]
    rebuilt = om["counters"].get("journal_replayed", 0) + om["counters"].get("checkpoint_records", 0)
    assert om["counters"]["orders_filled"] + rebuilt == len(records)
    for name in ("trend", "meanrev"):
        p = report["processes"][name]
        acked = ids(p.get("acked_ids") or [])
        journaled = {r["clordid"] for r in records if r["strategy"] == name}
        assert acked <= journaled, f"{name}: acked but not in the journal: {sorted(acked - journaled)[:5]}"
        if name in lived_through:
            assert p["counters"]["orders_unanswered"] == 0, name
            assert acked == journaled, f"{name}: journaled but never acked: {sorted(journaled - acked)[:5]}"
    assert report["processes"]["trend"]["counters"]["orders_acked"] > 0


def events(report: dict, process: str) -> list[tuple[float, str]]:
    return [(e["t_s"], e["event"]) for e in report["events"] if e["process"] == process]


def recovered_in(report: dict, process: str) -> float:
    """Seconds from the fault to the restarted process rejoining the stack."""
    evs = events(report, process)
    hit = next(t for t, what in evs if what.startswith("fault:") or what.startswith("no heartbeat"))
    back = next(t for t, what in evs if what.startswith("rejoined after restart"))
    return back - hit


@pytest.mark.parametrize("target", ["gateway", "orderbook", "ordermanager", "trend"])
def test_kill_9_mid_run_restarts_the_process_and_loses_no_acked_order(launch, write_topology, tmp_path, target):
    changes = {}
    if target == "ordermanager":  # orders certainly in flight: one per tick, not conflated
        changes = {"orderbook": {"conflate": False},
                   "strategies": {**LOAD["strategies"], "trend": {**LOAD["strategies"]["trend"], "conflate": False}}}
    report = run_with(launch, write_topology, tmp_path, [{"process": target, "at_s": 1.5, "action": "kill"}],
                      **changes)
    assert report["failures"] == []
    assert report["processes"][target]["restarts"] == 1
    assert recovered_in(report, target) < RECOVERY_S
    check_orders(report, lived_through={"trend", "meanrev"} - {target})
    final = report["processes"][target]["counters"]  # the new life did its job
    work = {"gateway": "ticks_published", "orderbook": "ticks_applied",
            "ordermanager": "orders_filled", "trend": "orders_acked"}[target]
    assert final[work] > 0, final
    c = report["counters"]
    if target == "ordermanager":
        assert c["orders_resent"] > 0  # the orders in flight at the kill were re-sent...
        om = report["processes"]["ordermanager"]["counters"]
        assert om["journal_replayed"] + om["checkpoint_records"] > 0
    if target in ("gateway", "orderbook"):
        assert c["resyncs"] >= 1  # subscribers saw a new session, not a million gaps/duplicates
        assert report["processes"]["orderbook"]["counters"].get("tick_duplicates", 0) == 0
    if target == "orderbook":  # its new life counts from the first tick it sees, not from seq 1
        assert report["processes"]["orderbook"]["counters"]["tick_gaps"] == 0


@pytest.mark.parametrize("target", ["gateway", "orderbook", "ordermanager", "trend"])
def test_a_short_pause_is_ridden_out_without_a_restart(launch, write_topology, tmp_path, target):
    report = run_with(launch, write_topology, tmp_path,
                      [{"process": target, "at_s": 1.5, "action": "pause", "for_s": 0.8}])
    assert report["failures"] == []
    assert all(p.get("restarts", 0) == 0 for p in report["processes"].values())
    assert [what for _, what in events(report, target)] == ["fault: SIGSTOP for 0.8 s", "fault over: SIGCONT"]
    check_orders(report, lived_through={"trend", "meanrev"})
    c = report["counters"]
    assert c["ticks_applied"] > 0 and c["tick_gaps"] == 0  # a paused subscriber queues; HWM is ample


def test_a_hung_process_is_detected_by_heartbeat_and_restarted(launch, write_topology, tmp_path):
    report = run_with(launch, write_topology, tmp_path,
                      [{"process": "orderbook", "at_s": 1.0, "action": "pause", "for_s": 30}])
    assert report["failures"] == []
    what = [w for _, w in events(report, "orderbook")]
    assert what[0] == "fault: SIGSTOP for 30 s"
    assert what[1].startswith("no heartbeat for 1.") and what[1].endswith("(hung or stopped); killing it to restart")
    assert "rejoined after restart 1" in what
    assert recovered_in(report, "orderbook") < RECOVERY_S
    check_orders(report, lived_through={"trend", "meanrev"})
    assert report["processes"]["orderbook"]["counters"]["ticks_applied"] > 0


def test_a_hung_process_under_restart_never_is_reported_and_the_run_goes_on(launch, write_topology, tmp_path):
    report = run_with(launch, write_topology, tmp_path,
                      [{"process": "trend", "at_s": 1.0, "action": "pause", "for_s": 2.0}],
                      supervision={**LOAD["supervision"], "restart": {"policy": "never"}})
    what = [w for _, w in events(report, "trend")]
    assert what[1].startswith("no heartbeat for") and what[1].endswith("(hung or stopped)")
    assert "is responsive again" in what
    assert report["failures"] == [] and report["processes"]["trend"]["restarts"] == 0
    check_orders(report, lived_through={"trend", "meanrev"})


def test_a_strategy_left_unanswered_while_the_order_manager_is_up_is_reported_cut_off(launch, write_topology,
                                                                                       tmp_path):
    """The order manager up (not restarting, not judged hung), a strategy's orders unanswered past
    supervision.unanswered_s: an event during the run, a failure, exit 1."""
    topo = write_topology({**LOAD, "duration_s": 6,
                           "faults": [{"process": "ordermanager", "at_s": 1, "action": "pause", "for_s": 3}],
                           "supervision": {**LOAD["supervision"], "liveness_s": 30, "unanswered_s": 1}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "-q")
    assert run.finish(timeout=90) == 1, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    cut = [e for e in report["events"] if e["event"].startswith("cut off:")]
    assert cut and cut[0]["process"] in ("trend", "meanrev") and 2 < cut[0]["t_s"] < 4.5, report["events"]
    assert "while the order manager was up" in cut[0]["event"]
    assert any(f["reason"].startswith("cut off:") for f in report["failures"])
    report["journal"] = list(journal.read(run_dir / journal.FILENAME))
    check_orders(report, lived_through={"trend", "meanrev"})  # answered in the end: nothing lost or doubled


def test_an_orderbook_paused_under_a_flood_heartbeats_while_it_catches_up(launch, write_topology, tmp_path):
    """Messages of 512 ticks as fast as the gateway makes them, lossless (it waits rather than
    drops), and the orderbook paused 0.6 s: it comes back to a backlog of big messages. Its
    drains end on time (20 ms), so it heartbeats while it catches up. (Bounded by 4096 messages
    alone, a drain could hold ~2M such ticks: `perf.ingest` saw the orderbook killed as hung.)"""
    topo = write_topology({"duration_s": 4, "strategies": {"trend": DELETE},
                           "gateway": {"rate": 5_000_000, "batch": 512, "batch_window_us": 0, "lossless": True,
                                       "news_rate": 1},
                           "faults": [{"process": "orderbook", "at_s": 1.0, "action": "pause", "for_s": 0.6}],
                           "supervision": {"heartbeat_s": 0.1, "liveness_s": 1.0}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "-q")
    assert run.finish(timeout=90) == 0, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["failures"] == [], report["events"]
    assert [what for _, what in events(report, "orderbook")] == ["fault: SIGSTOP for 0.6 s", "fault over: SIGCONT"]
    assert all(p.get("restarts", 0) == 0 for p in report["processes"].values())
    c = report["counters"]
    assert c["ticks_applied"] > 1_000_000 and c["tick_gaps"] == 0
