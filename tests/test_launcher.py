"""The whole stack through ``python launch.py``: real processes, real sockets, real shm."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DELETE, ROOT, ipc_endpoints, pids_of
from zmqtrade import journal

PROCESS_KEYS = {"kind", "pid", "exit_code", "cpu_percent", "rss_bytes", "uss_bytes", "ctx_switches", "threads"}
COUNTER_KEYS = {"ticks_published", "ticks_applied", "tick_gaps", "news_published", "news_received",
                "orders_sent", "orders_acked", "orders_rejected", "malformed_messages"}
LATENCY_KEYS = {"count", "p50", "p99", "p999", "max"}


def check_report(run_dir: Path, n_strategies: int) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    assert {"topology", "duration_s", "processes", "counters", "latency_us"} <= report.keys()
    for name, proc in report["processes"].items():
        assert PROCESS_KEYS <= proc.keys(), name
        assert {"mean", "max"} <= proc["cpu_percent"].keys()
        assert proc["rss_bytes"]["max"] > 0 and proc["uss_bytes"]["max"] > 0, name
    c = report["counters"]
    assert COUNTER_KEYS <= c.keys()
    assert LATENCY_KEYS <= report["latency_us"]["tick_to_ack"].keys()

    assert c["ticks_published"] > 0
    assert c["ticks_applied"] == c["ticks_published"]
    assert c["tick_gaps"] == 0
    assert c["news_received"] == c["news_published"] * n_strategies
    assert c["orders_acked"] > 0
    assert c["orders_sent"] == c["orders_acked"] + c["orders_rejected"]
    assert c["orders_filled"] == c["orders_acked"]
    assert c["malformed_messages"] == 0
    records = list(journal.read(run_dir / journal.FILENAME))
    assert len(records) == c["orders_acked"] == c["journal_records"]
    assert len({r["order_id"] for r in records}) == len(records)
    assert report["latency_us"]["tick_to_ack"]["count"] == c["orders_acked"]
    return report


def test_default_topology_file_is_valid(launch):
    run = launch(str(ROOT / "topology.yaml"), "--check")
    assert run.finish() == 0
    assert "ok" in run.lines[-1]
    assert "ordermanager" in run.output


def test_stack_runs_and_counts_agree(launch, write_topology, tmp_path):
    topo = write_topology()
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "3")
    assert run.finish() == 0, run.output + run.stderr
    report = check_report(run_dir, n_strategies=2)
    assert set(report["processes"]) == {"launcher", "gateway", "orderbook", "ordermanager", "trend", "meanrev"}
    assert all(p["exit_code"] == 0 for p in report["processes"].values())
    assert 2.5 < report["duration_s"] < 5
    assert (run_dir / "resources.csv").read_text().count("\n") > 5
    for name in ("gateway", "orderbook", "ordermanager", "trend", "meanrev"):
        assert (run_dir / f"{name}.log").exists()
    assert "tick_to_ack" in run.output  # the human summary
    assert report["counters"]["orders_filled"] > 0
    assert " filled" not in (run_dir / "ordermanager.log").read_text()  # fills: in the journal, logged with -v
    procs = report["processes"]
    assert all(procs[n]["io_threads"] == "normal" and procs[n]["cpus"] for n in ("gateway", "trend", "ordermanager"))
    if len(os.sched_getaffinity(0)) >= 2:  # placement: auto, the price path on one CPU, the order path apart
        assert procs["gateway"]["cpus"] == procs["orderbook"]["cpus"] and len(procs["gateway"]["cpus"]) == 1
        assert not set(procs["gateway"]["cpus"]) & set(procs["trend"]["cpus"] + procs["ordermanager"]["cpus"])
    # report.html: false (the tests' topology): no page at the end, and `zmqtrade report` draws it later
    assert not (run_dir / "report.html").exists() and "report.html" not in run.output
    drawn = subprocess.run([sys.executable, "-m", "zmqtrade", "report", str(run_dir)], capture_output=True, text=True,
                           timeout=120)
    assert drawn.returncode == 0, drawn.stderr
    page = (run_dir / "report.html").read_text()
    assert page.count("<svg") == 6 and "<h2>Results</h2>" in page  # cpu, rss, rates, percentiles, hops, PnL


def test_ipc_transport_and_verbose_order_lines(launch, write_topology, tmp_path):
    topo = write_topology(ipc_endpoints(tmp_path))
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-v")
    assert run.finish() == 0, run.output + run.stderr
    report = check_report(run_dir, n_strategies=2)
    assert not list(tmp_path.glob("*.ipc")), "socket files left behind"
    fills = [line for line in (run_dir / "ordermanager.log").read_text().splitlines() if line.endswith(" filled")]
    assert len(fills) == report["counters"]["orders_filled"] > 0  # -v: a line per fill, in the log and on the console
    assert fills[0].split(": ", 1)[1] in run.output


def test_bad_topology_exits_2_before_starting_anything(launch, write_topology, tmp_path):
    topo = write_topology({"gateway": {"rate": "fast"}, "strategies": {"trend": {"symbols": ["AAPL", "XYZ"]}}})
    run = launch(str(topo), "--run-dir", str(tmp_path / "run"))
    assert run.finish() == 2
    assert f"{topo}: gateway.rate: expected a number" in run.stderr
    assert f"{topo}: strategies.trend.symbols[1]: 'XYZ' is not published" in run.stderr
    assert not (tmp_path / "run").exists()


def test_killed_child_fails_the_run_under_restart_never_and_everything_is_cleaned_up(
        launch, write_topology, tmp_path):
    topo = write_topology({**ipc_endpoints(tmp_path), "supervision": {"restart": {"policy": "never"}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0")
    run.wait_for("stack ready")
    os.kill(pids_of(run_dir)["orderbook"], signal.SIGKILL)
    assert run.finish() == 1
    assert "orderbook" in run.output and "SIGKILL" in run.output
    report = json.loads((run_dir / "report.json").read_text())
    assert [f["process"] for f in report["failures"]] == ["orderbook"]
    assert report["processes"]["orderbook"]["exit_code"] == -signal.SIGKILL
    assert report["exit_code"] == 1
    assert not list(tmp_path.glob("*.ipc"))


def test_crash_is_reported_with_log_tail(launch, write_topology, tmp_path, monkeypatch):
    bad = tmp_path / "badstrat.py"
    bad.write_text(
        "from zmqtrade.strategies import Strategy\n"
        "class Boom(Strategy):\n"
        "    defaults = {'period': 6}\n"
        "    def on_quote(self, quote):\n"
        "        raise RuntimeError('strategy exploded on purpose')\n")
    topo = write_topology({"strategies": {"meanrev": {"class": "badstrat:Boom"}},
                           "supervision": {"restart": {"max_restarts": 2, "backoff_s": 0.1}}})
    run_dir = tmp_path / "run"
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    assert run.finish(timeout=60) == 1
    assert "meanrev" in run.output and "exited with code 1; restarting in 0.1 s" in run.output
    assert "exited with code 1; restarting in 0.2 s" in run.output  # the backoff doubles
    assert "exited with code 1; gave up after 2 restarts within 60 s" in run.output
    assert "strategy exploded on purpose" in run.output  # the last lines of its log
    report = json.loads((run_dir / "report.json").read_text())
    assert report["failures"][0]["process"] == "meanrev"


def test_sigint_stops_cleanly_with_a_report(launch, write_topology, tmp_path):
    topo = write_topology()
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0")
    run.wait_for("stack ready")
    run.wait_for("streaming")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    c = report["counters"]
    assert c["ticks_published"] > 0 and c["ticks_applied"] == c["ticks_published"]
    assert c["orders_sent"] == c["orders_acked"] + c["orders_rejected"]
    assert report["failures"] == []


@pytest.mark.parametrize("target", ["gateway", "ordermanager"])
def test_sigterm_to_a_child_is_a_failure_not_a_hang(launch, write_topology, tmp_path, target):
    topo = write_topology({"supervision": {"restart": {"policy": "never"}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    run.wait_for("stack ready")
    os.kill(pids_of(run_dir)[target], signal.SIGTERM)
    # a child that leaves on its own, even cleanly, while the run goes on is unexpected
    assert run.finish() == 1
    report = json.loads((run_dir / "report.json").read_text())
    assert report["failures"][0]["process"] == target


def test_csv_replay_through_the_stack(launch, write_topology, tmp_path):
    rows = ["timestamp,symbol,price"]
    for k in range(600):
        sym = ("AAPL", "MSFT", "GOOG", "AMZN", "ZZZ")[k % 5]
        rows.append(f"{1_700_000_000 + k * 0.001:.3f},{sym},{100 + (k % 37) * 0.25:.2f}")
    (tmp_path / "ticks.csv").write_text("\n".join(rows) + "\n")
    topo = write_topology({"gateway": {"rate": 1000, "feed": {"kind": "csv", "path": "ticks.csv", "loop": False}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-q")
    assert run.finish() == 0, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    c = report["counters"]
    assert c["ticks_published"] == c["ticks_applied"] == 480  # ZZZ rows skipped, file not looped
    assert report["processes"]["gateway"]["counters"]["csv_rows_skipped"] == 120
    assert c["tick_gaps"] == 0


def test_one_order_per_tick_mode_and_batched_replay(launch, write_topology, tmp_path):
    """Conflation off end to end: every tick of every symbol makes exactly one order."""
    syms = ["AAPL", "MSFT", "GOOG", "AMZN"]
    topo = write_topology({"gateway": {"rate": 3000, "batch": 1},
                           "orderbook": {"conflate": False},
                           "strategies": {"trend": {"class": "every_quote", "symbols": syms, "qty": 1,
                                                    "conflate": False, "params": DELETE},
                                          "meanrev": DELETE},
                           "tuning": {"cpu_dma_latency_us": 0}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-q")
    assert run.finish() == 0, run.output + run.stderr
    assert "cpu_dma_latency" in run.output  # held, or a warning saying why not
    report = check_report(run_dir, n_strategies=1)
    c = report["counters"]
    assert c["orders_sent"] == c["ticks_applied"] == c["ticks_published"]
    assert c["price_messages"] == c["ticks_published"]  # batch: 1
    lat = report["latency_us"]
    for hop in ("tick_to_book", "book_to_decision", "order_rtt", "order_to_om", "om_process", "reply_to_strategy"):
        assert lat[hop]["count"] == c["orders_acked"], hop
        assert 0 < lat[hop]["p50"] <= lat[hop]["p99"] <= lat[hop]["max"], hop
    assert lat["gateway_lag"]["count"] == c["price_messages"]
    assert report["book_staleness_us"]["count"] == c["quotes_read"]


def test_fast_replay_is_batched_without_loss(launch, write_topology, tmp_path):
    rows = ["timestamp,symbol,price"] + [f"{k},{('AAPL', 'MSFT')[k % 2]},{100 + k % 50}" for k in range(20_000)]
    (tmp_path / "ticks.csv").write_text("\n".join(rows) + "\n")
    topo = write_topology({"gateway": {"rate": 2_000_000, "lossless": True,
                                       "feed": {"kind": "csv", "path": "ticks.csv", "loop": False}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-q")
    assert run.finish() == 0, run.output + run.stderr
    c = json.loads((run_dir / "report.json").read_text())["counters"]
    assert c["ticks_published"] == c["ticks_applied"] == 20_000 and c["tick_gaps"] == 0
    assert c["price_messages"] < 20_000 / 10  # adaptive batches: many ticks per message
    assert c["batches"] > 0


def test_ipv6_loopback_endpoints(launch, write_topology, tmp_path):
    ep = "tcp://[::1]:*"
    topo = write_topology({"control": ep, "gateway": {"prices": ep, "news": ep},
                           "orderbook": {"doorbell": ep}, "ordermanager": {"endpoint": ep}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-q")
    assert run.finish() == 0, run.output + run.stderr
    check_report(run_dir, n_strategies=2)
    stack = json.loads((run_dir / "stack.json").read_text())
    assert stack["processes"]["gateway"]["endpoints"]["gateway.prices"].startswith("tcp://[::1]:")


def test_a_local_client_cannot_take_over_or_poison_the_control_channel(launch, write_topology, tmp_path):
    """Impostors calling themselves gateway (with and without a guessed token) forge each verb and
    send one frame over the size limit: the run goes on, stops cleanly and reports them refused."""
    import zmq
    from zmq.utils.monitor import recv_monitor_message

    from zmqtrade.launch import control

    topo = write_topology(ipc_endpoints(tmp_path))
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    run.wait_for("streaming")
    endpoint = json.loads((run_dir / "stack.json").read_text())["control"]
    ctx = zmq.Context()
    socks = []
    try:
        forged = [control.pack("ready", [1, 2, 3]), control.pack("progress", {"ticks_published": "many"}),
                  control.pack("stats", [1, 2, 3]), control.pack("heartbeat"), b"\xc1 not msgpack"]
        for rid in (b"gateway", b"gateway.0123456789abcdef0123456789abcdef"):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.ROUTING_ID, rid)
            s.connect(endpoint)
            socks.append(s)
            for body in forged:
                s.send(body)
        big = ctx.socket(zmq.DEALER)
        big.setsockopt(zmq.LINGER, 0)
        socks.append(big)
        monitor = big.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        big.connect(endpoint)
        big.send(b"x" * (control.MAX_MESSAGE + 1))
        assert monitor.poll(20_000), "the launcher kept a connection that sent more than MAX_MESSAGE"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        big.disable_monitor()
        monitor.close(linger=0)
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["failures"] == [] and report["exit_code"] == 0
    assert all(p["restarts"] == 0 and not p["killed"] for p in report["processes"].values())
    assert report["processes"]["gateway"]["counters"]["ticks_published"] > 0  # its own stats, not forged ones
    assert report["processes"]["launcher"]["counters"]["control_messages_refused"] >= 2 * len(forged)


def test_a_crash_that_a_restart_recovers_still_fails_the_run_with_its_own_code(launch, write_topology, tmp_path,
                                                                              monkeypatch):
    """The repro: a strategy raising in on_quote was restarted and the run ended exit 0, failures []."""
    flaky = tmp_path / "flakystrat.py"
    marker = tmp_path / "crashed-once"
    flaky.write_text(
        "from pathlib import Path\n"
        "from zmqtrade.strategies import Strategy\n"
        "class Flaky(Strategy):\n"
        "    defaults = {'period': 6}\n"
        "    def on_quote(self, quote):\n"
        f"        if not Path({str(marker)!r}).exists():\n"
        f"            Path({str(marker)!r}).write_text('')\n"
        "            raise RuntimeError('flaky strategy raised on purpose')\n"
        "        return []\n")
    topo = write_topology({"strategies": {"meanrev": {"class": "flakystrat:Flaky"}},
                           "supervision": {"restart": {"backoff_s": 0.1}}, "report": {"html": True}})
    run_dir = tmp_path / "run"
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "3", "-q")
    assert run.finish(timeout=90) == 3, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["exit_code"] == 3 and report["failures"] == []
    [recovered] = report["recovered"]
    assert (recovered["process"], recovered["life"], recovered["exit_code"]) == ("meanrev", 1, 1)
    assert any("flaky strategy raised on purpose" in line for line in recovered["log_tail"])
    assert "RESTARTED meanrev" in run.output
    page = (run_dir / "report.html").read_text()
    assert "RESTARTED meanrev" in page and "flaky strategy raised on purpose" in page


def test_a_strategy_left_with_unanswered_orders_fails_the_run(launch, write_topology, tmp_path):
    """A strategy cut off from the order manager ended with thousands of orders unanswered, and
    the launcher exited 0. Here the order manager is stopped (SIGSTOP, not a declared fault)
    while orders flow, and the run is ended: the strategy gives up waiting for its answers."""
    topo = write_topology({**ipc_endpoints(tmp_path), "gateway": {"rate": 2000},
                           "strategies": {"trend": {"class": "every_quote", "params": DELETE}},
                           "supervision": {"liveness_s": 60}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    run.wait_for("streaming")
    os.kill(pids_of(run_dir)["ordermanager"], signal.SIGSTOP)
    run.proc.send_signal(signal.SIGINT)
    assert run.finish(timeout=120) == 1, run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    cut_off = [f for f in report["failures"] if "orders never answered" in f["reason"]]
    # trend orders on every tick; meanrev, now and then, may have had one in flight too
    assert "trend" in {f["process"] for f in cut_off} <= {"trend", "meanrev"}, report["failures"]
    assert report["processes"]["trend"]["counters"]["orders_unanswered"] > 0


def test_a_child_paused_when_the_launcher_is_killed_does_not_survive_it(launch, write_topology, tmp_path):
    """The repro: a child stopped by a declared pause kept its parent-death SIGTERM pending for
    good (state T) after a kill -9 of the launcher."""
    topo = write_topology({**ipc_endpoints(tmp_path), "supervision": {"liveness_s": 60},
                           "faults": [{"process": "orderbook", "at_s": 0.5, "action": "pause", "for_s": 60}]})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0", "-q")
    run.wait_for("fault: SIGSTOP")
    pids = pids_of(run_dir)
    assert set(pids) >= {"gateway", "orderbook", "ordermanager"}
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    deadline = time.monotonic() + 30
    left = dict(pids)
    while left:
        assert time.monotonic() < deadline, f"still alive after the launcher's death: {left}"
        for name, pid in list(left.items()):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                state = "gone"
            if state in ("gone", "Z"):  # a zombie is dead: only its parent (gone) could reap it
                del left[name]
        time.sleep(0.05)  # polling /proc against the deadline: a dead process sends no event


def test_a_port_in_use_names_the_key_and_the_fix(launch, write_topology, tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        topo = write_topology({"gateway": {"prices": f"tcp://127.0.0.1:{port}"}})
        run = launch(str(topo), "--run-dir", str(tmp_path / "run"), "-q")
        assert run.finish() == 1
    assert (f"cannot bind gateway.prices=tcp://127.0.0.1:{port} or gateway.news=tcp://127.0.0.1:*: address already "
            f"in use") in run.output
    assert "tcp://127.0.0.1:* to let the OS pick one" in run.output
