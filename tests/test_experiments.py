"""Experiments: the shipped topologies, --set, sweeps, compare, and the pytest plugin."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from zmqtrade import topology

TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_shipped_topology_validates(path, launch):
    run = launch(str(path), "--check")
    assert run.finish() == 0, run.stderr
    assert run.lines[-1] == "ok"
    assert topology.load(path).name == path.stem


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_shipped_topology_runs(path, zmqtrade_stack):
    transport = "ipc" if "ipc://" in path.read_text() else "tcp"
    run = zmqtrade_stack(path, duration=2, transport=transport)
    assert run.exit_code == 0, run.logs
    c = run.report["counters"]
    assert c["ticks_published"] > 0 and c["ticks_applied"] == c["ticks_published"]
    assert c["tick_gaps"] == 0
    assert c["orders_sent"] == c["orders_acked"] + c["orders_rejected"]
    assert len(run.journal) == c["orders_acked"]
    assert set(run.report["processes"]) >= {"gateway", "orderbook", "ordermanager", *topology.load(path).strategies}


def test_sweep_over_three_rates_ends_with_a_comparison(launch, tmp_path):
    base = tmp_path / "sweep"
    ports = [f"--set={k}=tcp://127.0.0.1:*" for k in
             ("control", "gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint")]
    run = launch(str(ROOT / "topology.yaml"), *ports, "--sweep", "gateway.rate=500,1000,2000",
                 "--duration", "1.5", "--run-dir", str(base), "-q")
    assert run.finish(timeout=120) == 0, run.output + run.stderr
    dirs = sorted(p for p in base.iterdir() if p.is_dir())
    assert [d.name for d in dirs] == ["01-default-gateway.rate=500", "02-default-gateway.rate=1000",
                                      "03-default-gateway.rate=2000"]
    reports = [json.loads((d / "report.json").read_text()) for d in dirs]
    rates = [r["counters"]["ticks_applied"] for r in reports]
    assert rates[0] < rates[1] < rates[2]
    launcher_mb = [r["processes"]["launcher"]["rss_bytes"]["max"] / 1e6 for r in reports]
    assert max(launcher_mb) - min(launcher_mb) < 10, launcher_mb  # report.html drawn aside: no matplotlib kept
    assert all((d / "report.html").exists() for d in dirs)
    table = (base / "comparison.txt").read_text()
    rows = [line for line in table.splitlines() if line.startswith("default ")]
    assert len(rows) == 3 and "gateway.rate=2000" in rows[2]
    assert re.search(r"\|\s+1\.00x", rows[0])  # the first run is the reference

    out = subprocess.run([sys.executable, "-m", "zmqtrade", "compare", *map(str, dirs)],
                         capture_output=True, text=True, check=True).stdout
    labels = [line.split()[0] for line in out.splitlines()[2:5]]
    assert labels == ["gateway.rate=500", "gateway.rate=1000", "gateway.rate=2000"]  # by what differs
    assert "stackMB" in out and "launchMB" in out and "samples" in out
    assert "net pnl" in out and "pnl trend" in out and "pnl meanrev" in out  # what each point earned
    m = json.loads((dirs[1] / "report.json").read_text())["manifest"]
    assert m["overrides"]["gateway.rate"] == 1000 and m["settings"]["gateway.rate"] == 1000
    assert m["versions"]["libzmq"] and m["machine"]["cpus"] >= 1 and len(m["machine"]["load_at_start"]) == 3


def test_repeat_runs_each_point_again_and_marks_differences_within_noise(launch, tmp_path):
    base = tmp_path / "rep"
    ports = [f"--set={k}=tcp://127.0.0.1:*" for k in
             ("control", "gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint")]
    run = launch(str(ROOT / "topology.yaml"), *ports, "--repeat", "2", "--duration", "1", "--run-dir", str(base), "-q",
                 "--set", "report.html=false")  # the comparison is what this test reads
    assert run.finish(timeout=120) == 0, run.output + run.stderr
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == ["01-default-base-r1", "01-default-base-r2"]
    table = (base / "comparison.txt").read_text()
    point = next(line for line in table.splitlines() if line.startswith("default "))
    assert re.search(r"^default\s+2\s", point) and re.search(r"\d+ \[\d+-\d+\]", point)  # median [range] of 2 runs
    assert "every run:" in table and "default r2" in table
    bad = launch(str(ROOT / "topology.yaml"), "--repeat", "0")
    assert bad.finish() == 2 and "--repeat must be 1 or more" in bad.stderr


def test_the_command_line_lists_its_commands_and_refuses_a_missing_run_dir(tmp_path):
    helped = subprocess.run([sys.executable, "-m", "zmqtrade", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("run", "check", "compare", "report", "keys", "init"):
        assert f"\n  {command} " in helped.stdout
    missing = subprocess.run([sys.executable, "-m", "zmqtrade", "report", str(tmp_path / "nope")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "holds no report.json" in missing.stderr
    assert "Traceback" not in missing.stderr
    nothing = subprocess.run([sys.executable, "-m", "zmqtrade", "compare", str(tmp_path / "nope")],
                             capture_output=True, text=True)
    assert nothing.returncode == 2 and "no report here" in nothing.stderr and "Traceback" not in nothing.stderr


def test_bad_set_is_refused_before_anything_starts(launch, tmp_path):
    run = launch(str(ROOT / "topology.yaml"), "--set", "gateway.rat=5", "--run-dir", str(tmp_path / "r"))
    assert run.finish() == 2
    assert "with --set gateway.rat=5: gateway.rat: unknown key; did you mean 'rate'?" in run.stderr
    assert not (tmp_path / "r").exists()
    run = launch(str(ROOT / "topology.yaml"), "--sweep", "gateway.rate=1000,,2", "--run-dir", str(tmp_path / "r"))
    assert run.finish() == 2 and "comma-separated" in run.stderr


def test_plugin_runs_a_user_strategy_from_a_module_path(zmqtrade_stack, tmp_path):
    (tmp_path / "mystrat.py").write_text(
        "from zmqtrade.strategies import OrderRequest, Strategy\n"
        "class Once(Strategy):\n"
        "    done = False\n"
        "    def on_quote(self, q):\n"
        "        if not self.done:\n"
        "            self.done = True\n"
        "            return [OrderRequest(q.symbol, 'BUY', 1, q.ask)]\n")
    run = zmqtrade_stack(ROOT / "topology.yaml", duration=2, env={"PYTHONPATH": str(tmp_path)},
                         set={"strategies.trend.class": "mystrat:Once", "strategies.trend.params": {}})
    assert run.exit_code == 0, run.logs
    trend = run.report["processes"]["trend"]["counters"]
    assert trend["orders_sent"] == trend["orders_acked"] == 1
    assert any(r["strategy"] == "trend" for r in run.journal)


def test_plugin_fails_a_test_whose_process_exits_unexpectedly_unless_the_test_allows_it(pytester, tmp_path):
    """A user's test of a strategy that raises now and then (restarted each time, the other
    strategy still trading) fails on its own, with the exception shown; allowing it passes."""
    (tmp_path / "flaky.py").write_text(
        "from zmqtrade.strategies import OrderRequest, Strategy\n"
        "class Flaky(Strategy):\n"
        "    seen = 0\n"
        "    def on_quote(self, q):\n"
        "        self.seen += 1\n"
        "        if self.seen % 50 == 0:\n"
        "            raise RuntimeError(f'flaky strategy gave up at quote {self.seen}')\n"
        "        return []\n")
    pytester.makepyfile(test_user=f"""
        TOPO = {str(ROOT / "topology.yaml")!r}
        FLAKY = {{"strategies.trend.class": "flaky:Flaky", "strategies.trend.params": {{}}}}
        ENV = {{"PYTHONPATH": {str(tmp_path)!r}}}

        def test_unaware(zmqtrade_stack):
            run = zmqtrade_stack(TOPO, set=FLAKY, duration=2, env=ENV)
            assert run.report["counters"]["orders_acked"] >= 0  # never reached

        def test_expects_it(zmqtrade_stack):
            run = zmqtrade_stack(TOPO, set=FLAKY, duration=2, env=ENV, allow_failures=["trend"])
            assert run.exit_code in (1, 3) and run.failures[0]["process"] == "trend"

        def test_bad_topology(zmqtrade_stack):
            zmqtrade_stack(TOPO, set={{"gateway.rat": 5}}, duration=1)
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert "unexpected process exit(s)" in out and "trend:" in out
    assert "RuntimeError: flaky strategy gave up at quote 50" in out  # its log tail, in the test's report
    assert "without a report" in out and "did you mean 'rate'?" in out
    # report.html only where a test failed: test_unaware's run gets its page, named in the report
    pages = [line for line in out.splitlines() if line.endswith("report.html")]
    assert len(pages) == 1 and Path(pages[0]).is_file() and "test_unaware" in pages[0], out
    runs = [p.parent for p in pytester.path.rglob("zmqtrade-run-*/report.json")]
    assert len(runs) == 2 and [r for r in runs if (r / "report.html").exists()] == [Path(pages[0]).parent]


def test_the_fixture_reference_example_passes_in_a_project_outside_the_repository(pytester):
    """The fixture reference's example, as written, in a fresh project with a strategy of its own, run by
    pytest from outside the project: the topology is found beside the tests, the class change
    takes the old params with it, and the project's package imports in the stack's processes."""
    page = (ROOT / "docs" / "reference" / "fixture.md").read_text()
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    project = pytester.path / "proj"
    (project / "mypkg").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "topology.yaml").write_text((ROOT / "topology.yaml").read_text())
    (project / "mypkg" / "__init__.py").write_text("")
    (project / "mypkg" / "mine.py").write_text(
        "from zmqtrade.strategies import OrderRequest, Strategy\n"
        "class Mine(Strategy):\n"
        "    # buys one lot of each symbol once, at its first quote\n"
        "    bought = frozenset()\n"
        "    def on_quote(self, q):\n"
        "        if q.symbol in self.bought:\n"
        "            return []\n"
        "        self.bought = self.bought | {q.symbol}\n"
        "        return [OrderRequest(q.symbol, 'BUY', 1, q.ask)]\n")
    (project / "pytest.ini").write_text("[pytest]\n")  # the project's root: pytest's rootdir
    (project / "tests" / "test_mine.py").write_text(example)
    result = pytester.runpytest_subprocess(str(project / "tests"), "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_init_writes_a_starter_project_whose_test_passes(pytester):
    project = pytester.path / "proj"
    made = subprocess.run([sys.executable, "-m", "zmqtrade", "init", str(project)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == \
        ["mystrategy.py", "pytest.ini", "tests/test_mystrategy.py", "topology.yaml"]
    again = subprocess.run([sys.executable, "-m", "zmqtrade", "init", str(project)], capture_output=True, text=True)
    assert again.returncode == 2 and "already exist; nothing was written" in again.stderr
    result = pytester.runpytest_subprocess(str(project), "-q", "-p", "no:cacheprovider")  # from outside it
    result.assert_outcomes(passed=2)
    ports = [f"--set={k}=tcp://127.0.0.1:*" for k in
             ("control", "gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint")]
    ran = subprocess.run([sys.executable, "-m", "zmqtrade", "run", str(project / "topology.yaml"), *ports,  # elsewhere
                          "--duration", "1", "-q", "--run-dir", str(pytester.path / "run")], cwd=pytester.path,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr  # mystrategy imports from beside the topology


def test_plugin_live_stack_exposes_the_book(zmqtrade_stack):
    with zmqtrade_stack.live(ROOT / "topology.yaml", transport="ipc") as stack:
        q = stack.wait_for_quote("AAPL")
        assert 0 < q.bid < q.ask and q.updates >= 1
        assert stack.stack["processes"]["orderbook"]["pid"] > 0
    assert stack.exit_code == 0
    assert stack.report["counters"]["tick_gaps"] == 0


def test_live_table_on_a_terminal(tmp_path):
    """Run the launcher on a pseudo-terminal: it draws the rich table, and still ends cleanly."""
    import fcntl
    import os
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))  # 80 columns: the compact table
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), str(ROOT / "topologies" / "many_strategies.yaml"),
                             "--duration", "2.5", "--run-dir", str(tmp_path / "run"), "-q",
                             "--set", "report.html=false"],
                            stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed: the launcher has exited
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        assert proc.wait(60) == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))
    assert "zmqtrade many_strategies" in screen
    for header in ("process", "cpu", "rss", "msgs", "tick->ack", "gaps", "orders"):
        assert header in screen
    assert re.search(r"^gateway +\d+ +[\d.]+ +[\d,]+ ", screen, re.M)  # name, cpu, rss, rate: none cut short
    assert "…" not in screen


def test_the_live_table_cuts_no_name_and_no_figure_short():
    """Boxed with a kind column where the terminal is wide enough; compact in 80 columns."""
    import io

    from rich.console import Console

    from zmqtrade.report.live import LiveView

    rows = [{"name": n, "state": st, "kind": k, "cpu": 44, "rss_mb": 43.9, "rate": 6000, "ack_us": a, "gaps": 0,
             "orders": o, "pnl": p} for n, st, k, a, o, p in
            (("gateway", "", "gateway", None, "", None), ("ordermanager", "", "ordermanager", None, "1,234/1,234", None),
             ("revert_b", "restarting", "strategy", 1234, "120/120", -1012.34))]
    for width, boxed in ((130, True), (80, False)):
        view = LiveView("many_strategies", 2.5, interactive=False)
        out = io.StringIO()
        view._console = Console(file=out, width=width)
        view._console.print(view._table(rows))
        text = out.getvalue()
        assert "…" not in text and all(len(line) <= width for line in text.splitlines())
        assert "revert_b (restarting)" in text and "1,234/1,234" in text and "-1,012.34" in text
        assert bool(re.search(r"│ ordermanager +│ ordermanager +│", text)) is boxed


def test_plain_progress_lines_when_not_a_terminal(launch, tmp_path):
    run = launch(str(ROOT / "topologies" / "csv_replay.yaml"), "--duration", "6", "--run-dir", str(tmp_path / "run"),
                 "-q", "--set", "report.html=false")
    assert run.finish() == 0, run.output + run.stderr
    lines = [line for line in run.lines if line.startswith("progress |")]
    assert lines and re.search(r"gateway [\d,]+/s cpu \d+%", lines[0])
    assert "\x1b[" not in run.output  # no escape codes into a pipe
    progress = (tmp_path / "run" / "progress.csv").read_text().splitlines()
    assert progress[0] == "t_s,process,counter,value" and any(",gateway,ticks_published," in p for p in progress)


def test_a_used_run_dir_is_refused(launch, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "journal.jsonl").write_text('{"order_id": 1}\n')
    run = launch(str(ROOT / "topology.yaml"), "--run-dir", str(used))
    assert run.finish() == 2
    assert "already holds files" in run.stderr
    assert (used / "journal.jsonl").read_text() == '{"order_id": 1}\n'


def test_compare_counts_each_lost_tick_once():
    from zmqtrade.report import compare

    report = {"counters": {"ticks_published": 1000, "ticks_applied": 990, "tick_gaps": 10, "orders_acked": 5},
              "latency_us": {"tick_to_ack": {"p50": 1.0, "p99": 2.0, "p999": 3.0}}, "duration_s": 1.0,
              "processes": {"a": {"cpu_percent": {"mean": 10.0}, "rss_bytes": {"max": 1_000_000}}}, "exit_code": 0}
    assert compare.row(report, "r").loss_pct == pytest.approx(1.0)


def test_the_live_view_shows_a_strategys_tick_to_ack_over_the_last_interval(tmp_path):
    from zmqtrade.launch.child import Child
    from zmqtrade.report.live import row

    c = Child("trend", "strategy", [], tmp_path / "trend.log")
    c.progress = [(1.0, {"tick_acks": 10, "tick_to_ack_us": 5_000, "quotes_read": 10}),
                  (1.5, {"tick_acks": 30, "tick_to_ack_us": 17_000, "quotes_read": 40})]
    assert row(c)["ack_us"] == 600  # 12,000 us over 20 acks in the interval, not the run's mean
    c.progress.append((2.0, {"tick_acks": 3, "tick_to_ack_us": 900, "quotes_read": 3}))  # a new life counts from 0
    assert row(c)["ack_us"] is None
    om = Child("ordermanager", "ordermanager", [], tmp_path / "om.log")
    om.progress = c.progress[:2]
    assert row(om)["ack_us"] is None
