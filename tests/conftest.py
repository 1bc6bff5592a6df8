"""Shared fixtures: topologies on ports the OS picks (or ipc paths in the test's tmp dir),
a launcher driven as a real subprocess, and a leak check after every test."""
from __future__ import annotations

import copy
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import psutil
import pytest
import yaml

pytest_plugins = ["pytester"]  # to run a test session of a user's tests against the zmqtrade_stack plugin

ROOT = Path(__file__).resolve().parent.parent
SHM = Path("/dev/shm")
# hypothesis keeps caches even with its example database off: beside pytest's, not in the tree
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(ROOT / ".pytest_cache" / "hypothesis"))

BASE: dict[str, Any] = {
    "name": "t",
    "duration_s": 3,
    "symbols": ["AAPL", "MSFT", "GOOG", "AMZN"],
    "gateway": {"prices": "tcp://127.0.0.1:*", "news": "tcp://127.0.0.1:*", "rate": 2000, "news_rate": 50,
                "feed": {"kind": "random_walk", "seed": 7}},
    "orderbook": {"doorbell": "tcp://127.0.0.1:*"},
    "ordermanager": {"endpoint": "tcp://127.0.0.1:*",
                     "risk": {"max_order_qty": 1000, "max_position": 100000, "max_orders_per_s": 100000}},
    "strategies": {
        "trend": {"class": "ma_news", "symbols": ["AAPL", "MSFT"], "qty": 10,
                  "params": {"short": 3, "long": 8, "bullish": 52, "bearish": 48}},
        "meanrev": {"class": "rsi", "symbols": ["GOOG", "AMZN"], "qty": 5, "params": {"period": 6}},
    },
    "report": {"sample_interval_s": 0.25, "html": False},
}
"""The tests' stack. Its runs draw no report.html (1.5-2 s a run, a fifth of the suite): tests
read report.json, and those that read the page ask for it (``{"report": {"html": True}}``)."""


DELETE = object()
"""A value for ``merge``/``write_topology`` that removes the key instead of setting it."""


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def ipc_endpoints(tmp: Path) -> dict[str, Any]:
    return {"control": f"ipc://{tmp}/control.ipc",
            "gateway": {"prices": f"ipc://{tmp}/prices.ipc", "news": f"ipc://{tmp}/news.ipc"},
            "orderbook": {"doorbell": f"ipc://{tmp}/doorbell.ipc"},
            "ordermanager": {"endpoint": f"ipc://{tmp}/orders.ipc"}}


@pytest.fixture
def write_topology(tmp_path: Path):
    """write_topology(changes=None, name="topology.yaml") -> path of a YAML file in tmp."""

    def write(changes: dict[str, Any] | None = None, name: str = "topology.yaml", raw: str | None = None) -> Path:
        path = tmp_path / name
        path.write_text(raw if raw is not None else yaml.safe_dump(merge(BASE, changes or {}), sort_keys=False))
        return path

    return write


STARTED: set[int] = set()
"""Pids of launchers the current test started: segments named after them are the test's own."""


class LauncherRun:
    """``python launch.py`` as a subprocess, its stdout read on a thread so we can wait on lines."""

    def __init__(self, args: list[str], cwd: Path, prefix: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([*prefix, sys.executable, str(ROOT / "launch.py"), *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        STARTED.add(self.proc.pid)
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self._err.extend(self.proc.stderr)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """Block until a stdout line contains ``text``; fail at the deadline."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line with {text!r} within {timeout}s; got:\n" + "\n".join(self.lines[-30:]))
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"launcher ended without {text!r}:\n" + "\n".join(self.lines[-30:]))
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the launcher to exit (killing it at the deadline) and collect its output."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        for t in self._readers:
            t.join(10)
        while True:
            line = self._q.get(timeout=5)
            if line is None:
                break
            self.lines.append(line)
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Any]:
    runs: list[LauncherRun] = []

    def start(*args: str, prefix: Sequence[str] = (), env: dict[str, str] | None = None) -> LauncherRun:
        """``prefix`` runs it through another command (``ip netns exec NS``), which must exec it
        (same pid)."""
        run = LauncherRun(list(args), tmp_path, prefix, env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()


def pids_of(run_dir: Path) -> dict[str, int]:
    """Process name -> pid, from each child's 'ready (pid N)' log line."""
    out = {}
    for log in run_dir.glob("*.log"):
        for line in log.read_text().splitlines():
            if ": ready (pid " in line:
                out[log.stem] = int(line.split(": ready (pid ", 1)[1].split(")", 1)[0])
    return out


def _our_processes(tmp_path: Path) -> list[psutil.Process]:
    mine = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(str(tmp_path) in a for a in (p.info["cmdline"] or [])):
                mine.append(p)
        except psutil.Error:
            continue
    return mine


def _segments() -> dict[str, int]:
    """Book segments (named zmqtrade_<creator pid>_...) and their creators' pids."""
    out = {}
    for p in SHM.glob("zmqtrade_*"):
        try:
            out[p.name] = int(p.name.split("_")[1])
        except (IndexError, ValueError):
            continue
    return out


@pytest.fixture(autouse=True)
def no_leaks(tmp_path: Path) -> Iterator[None]:
    """Every test must leave no processes and no book segments behind."""
    STARTED.clear()
    before = set(_segments())
    yield
    deadline = time.monotonic() + 10
    left = _our_processes(tmp_path)
    while left and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.5)
        left = _our_processes(tmp_path)
    for p in left:
        p.kill()
    assert not left, f"leftover processes: {[(p.pid, p.info['cmdline']) for p in left]}"
    # A new segment is this test's leak if this process or a launcher it started made it, or if
    # whoever made it is gone (nobody is left to unlink it). Live foreign runs are not ours.
    leaked = {name for name, pid in _segments().items()
              if name not in before and (pid in {os.getpid(), *STARTED} or not psutil.pid_exists(pid))}
    assert not leaked, f"leftover shared memory segments: {leaked}"


class ComponentRun:
    """One component started by hand, with the test playing the launcher's control side."""

    def __init__(self, kind: str, topo: Path, tmp: Path, book: str, name: str | None = None,
                 extra: Sequence[str] = ()) -> None:
        import zmq

        from zmqtrade.launch.child import module_argv
        from zmqtrade.launch.control import ControlServer

        self.name = name or kind
        self.ctx = zmq.Context()
        self.control = ControlServer(self.ctx, f"ipc://{tmp}/ctl-{self.name}.ipc")
        self.log = tmp / f"{self.name}.log"
        argv = [*module_argv(kind), str(topo), "--name", self.name, "--control", self.control.endpoint,
                "--book", book, "--run-dir", str(tmp), *extra]
        with open(self.log, "wb") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                         env={**os.environ, **self.control.env()})

    def expect(self, verb: str, timeout: float = 20.0, serve: list[Any] = ()) -> Any:
        """Wait for ``verb`` from the process, servicing test-owned XPUBs meanwhile."""
        from zmqtrade.sockets import drain_subscriptions

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pub in serve:
                if callable(pub):  # a pipe doorbell's rescan, or any other thing to keep doing
                    pub()
                    continue
                pub.poll(0)
                drain_subscriptions(pub)
            msg = self.control.recv(0.02)
            if msg is not None and msg[1] == verb:
                return msg[2]
            if self.proc.poll() is not None and msg is None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log.read_text()}")
        raise AssertionError(f"no {verb!r} from {self.name} in {timeout}s:\n{self.log.read_text()}")

    def start(self) -> None:
        assert self.control.send(self.name, "start")

    def stop(self) -> dict[str, Any]:
        """Send stop; return the stats the process reports; it must exit 0."""
        assert self.control.send(self.name, "stop")
        stats = self.expect("stats")
        assert self.proc.wait(10) == 0, self.log.read_text()
        return stats

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.control.close()
        self.ctx.term()


@pytest.fixture
def component(tmp_path: Path) -> Iterator[Any]:
    started: list[ComponentRun] = []

    def start(kind: str, topo: Path, book: str, name: str | None = None, extra: Sequence[str] = ()) -> ComponentRun:
        run = ComponentRun(kind, topo, tmp_path, book, name, extra)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Any]:
    """A real book segment for BASE's symbols, owned (and unlinked) by the test."""
    from zmqtrade.book import Book, segment_name

    b = Book.create(segment_name(f"test{tmp_path.name[-12:]}"), BASE["symbols"])
    yield b
    b.close()
