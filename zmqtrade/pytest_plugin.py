"""pytest plugin: test a strategy (or anything) against a real zmqtrade stack in a few lines.

    def test_my_strategy(zmqtrade_stack):
        run = zmqtrade_stack("topology.yaml", set={"strategies.s1.class": "mypkg.mine:Mine"}, duration=3)
        assert run.report["counters"]["orders_acked"] > 0

    def test_the_book_while_it_runs(zmqtrade_stack):
        with zmqtrade_stack.live("topology.yaml") as stack:
            quote = stack.wait_for_quote("AAPL")
            assert quote.bid < quote.ask
        assert stack.report["counters"]["tick_gaps"] == 0

A relative topology path is looked up from the current directory, then from the test file's
directory and its parents; pytest's rootdir is put on the stack's ``PYTHONPATH``, so a
project's own strategies (``mypkg.mine:Mine``) import in the stack's processes. Replacing a strategy's class (``strategies.s1.class``) without a
word on its params replaces them with none: the old class's would not fit the new one.

A run that goes wrong fails the test by itself, saying why: a launcher that refused the
topology or ended without a report, and any process that failed or exited unexpectedly (even
one a restart recovered), with its reason and last log lines. A test about failures says which
processes may fail: ``allow_failures=["trend"]`` (or ``True`` for any).

A run draws no report.html (1.5-2 s each) unless the test fails: then every finished run of
the test gets its page, and the failure report names them. A topology or ``set`` that says
``report.html`` (true or false) is obeyed instead.

Registered through the ``pytest11`` entry point, so installing zmqtrade is enough. Every
endpoint of the topology is moved to a port the OS picks (or, with ``transport="ipc"``, to a
socket file in the test's tmp dir), so tests never collide; a multi-host topology runs with
every process on this machine; the run directory is in the test's tmp dir; and whatever
happens the stack is stopped and its processes reaped.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Union

import pytest

READY_TIMEOUT_S = 60.0
PAGE_TIMEOUT_S = 120.0
"""How long drawing a failed run's report.html may take."""
OUTPUT_TAIL = 3000
"""Characters of the launcher's output shown when a run fails without a report."""
Allowed = Union[bool, Iterable[str]]


class StackRun:
    """One launcher run: its report, logs and journal once finished; its book while live."""

    def __init__(self, run_dir: Path, proc: subprocess.Popen, output_path: Path) -> None:
        self.run_dir = run_dir
        self.proc = proc
        self.output_path = output_path
        """The launcher's own output (its summary, or why it refused to start)."""
        self.exit_code: int | None = None
        self._book: Any = None

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def check(self, allow_failures: Allowed = False) -> None:
        """Fail the test if the run went wrong in a way it did not allow (see the module's doc)."""
        __tracebackhide__ = True
        if not (self.run_dir / "report.json").exists():
            pytest.fail(f"zmqtrade: the launcher exited {self.exit_code} without a report; its output "
                        f"({self.output_path}):\n{self.output[-OUTPUT_TAIL:]}", pytrace=False)
        if allow_failures is True:
            return
        allowed = set() if allow_failures is False else set(allow_failures)
        bad = [f for f in self.failures if f.get("process") not in allowed]
        if bad:
            lines = [f"zmqtrade: {len(bad)} unexpected process exit(s) in {self.run_dir} "
                     f"(launcher exit {self.exit_code}; allow_failures=[...] if the test expects them):"]
            for f in bad:
                lines.append(f"  {f.get('process')}: {f.get('reason')}")
                lines.extend(f"    | {line}" for line in (f.get("log_tail") or [])[-8:])
            pytest.fail("\n".join(lines), pytrace=False)

    # ------------------------------------------------------------------ after the run
    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "report.json").read_text())

    @property
    def failures(self) -> list[dict[str, Any]]:
        """What went wrong: the failures that ended the run, then the unexpected exits a restart
        recovered from (exit code 3), each with its process, reason and log tail. Empty on a
        clean run, so ``assert not run.failures, run.failures`` shows why in the test's output."""
        rep = self.report
        return [*rep.get("failures", []), *rep.get("recovered", [])]

    @property
    def logs(self) -> dict[str, str]:
        return {p.stem: p.read_text(errors="replace") for p in sorted(self.run_dir.glob("*.log"))}

    @property
    def journal(self) -> list[dict[str, Any]]:
        from zmqtrade import journal

        path = self.run_dir / journal.FILENAME
        return list(journal.read(path)) if path.exists() else []

    @property
    def stack(self) -> dict[str, Any]:
        """run_dir/stack.json: book name, pids and bound endpoints of the live stack."""
        return json.loads((self.run_dir / "stack.json").read_text())

    # ------------------------------------------------------------------ while live
    def book(self) -> Any:
        """The live shared-memory book (a :class:`zmqtrade.book.Book`, read-only use)."""
        if self._book is None:
            from zmqtrade.book import Book

            self._book = Book.attach(self.stack["book"], timeout=5.0)
        return self._book

    def quote(self, symbol: str) -> Any:
        book = self.book()
        return book.read(book.index[symbol])

    def wait_for_quote(self, symbol: str, timeout: float = 10.0) -> Any:
        """The first quote of ``symbol`` in the book, polling it until ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            q = self.quote(symbol)
            if q is not None:
                return q
            time.sleep(0.01)  # polling shared memory for a first write, bounded by the deadline
        raise TimeoutError(f"no quote for {symbol} within {timeout} s")

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C the launcher (it stops the stack in order and writes the report); its exit code."""
        if self._book is not None:
            self._book.close()
            self._book = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
        return self.exit_code


def _all_here(path: str | Path) -> list[str]:
    """``--set`` options that put every process of a multi-host topology on this machine."""
    from zmqtrade.topology import TopologyError, load

    try:
        topo = load(path)
    except TopologyError:
        return []  # the launcher reports it
    if len(topo.hosts_used()) == 1:
        return []
    books = ["--set", "orderbook.hosts=null"] if topo.orderbook.hosts else []  # one machine: one book
    names = [n for n in topo.process_names() if topo.kind_of(n) != "orderbook"] + ["orderbook"]
    return [arg for name in names for arg in ("--set", f"{topo.path_of(name)}.host=local")] + books \
        + ["--set", "lead=local"]


def with_own_params(sets: Mapping[str, Any]) -> dict[str, Any]:
    """``sets`` with ``strategies.X.params: {}`` added for each strategy whose class it replaces
    without a word on params: the old class's params would not fit the new class."""
    out = dict(sets)
    for key in sets:
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "strategies" and parts[2] == "class":
            prefix = f"strategies.{parts[1]}.params"
            if not any(k == prefix or k.startswith(prefix + ".") for k in sets):
                out[prefix] = {}
    return out


def find_topology(path: str | Path, test_file: Path | None) -> Path:
    """A relative topology path from the current directory, else from the test file's directory
    and its parents (so a test finds its project's topology.yaml wherever pytest runs from)."""
    p = Path(path)
    if p.is_absolute() or p.exists() or test_file is None:
        return p
    for folder in [test_file.parent, *test_file.parent.parents]:
        if (folder / p).exists():
            return folder / p
    return p  # the launcher says it is missing


class StackFactory:
    """The ``zmqtrade_stack`` fixture: call it for a finished run, or use ``.live()``."""

    def __init__(self, tmp_path: Path, test_file: Path | None = None, root: Path | None = None) -> None:
        self.tmp_path = tmp_path
        self.test_file = test_file
        self.root = root
        """pytest's rootdir: put on the stack's PYTHONPATH, so the project's own strategies import."""
        self.runs: list[StackRun] = []

    def _start(self, topology: str | Path, set: Mapping[str, Any] | None, duration: float,
               transport: str, env: Mapping[str, str] | None) -> StackRun:
        n = len(self.runs) + 1
        run_dir = self.tmp_path / f"zmqtrade-run-{n}"
        topology = find_topology(topology, self.test_file)
        argv = [sys.executable, "-m", "zmqtrade", "run", str(topology), "--run-dir", str(run_dir),
                "--duration", str(duration), "-q"]
        from zmqtrade.topology import BIND_KEYS

        for key in BIND_KEYS:
            name = key.replace(".", "-")
            endpoint = f"ipc://{self.tmp_path}/{n}-{name}.sock" if transport == "ipc" else "tcp://127.0.0.1:*"
            argv += ["--set", f"{key}={endpoint}"]
        argv += _all_here(topology)
        sets = with_own_params(set or {})
        if "report.html" not in sets and not _says_html(topology):
            sets["report.html"] = False  # drawn if the test fails (pytest_runtest_makereport)
        for key, value in sets.items():
            argv += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        out = self.tmp_path / f"zmqtrade-launcher-{n}.out"
        environ = {**os.environ, **(env or {})}
        if self.root is not None:
            environ["PYTHONPATH"] = os.pathsep.join(p for p in (environ.get("PYTHONPATH"), str(self.root)) if p)
        with open(out, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=environ)
        run = StackRun(run_dir, proc, out)
        self.runs.append(run)
        return run

    def __call__(self, topology: str | Path, set: Mapping[str, Any] | None = None, duration: float = 3.0,
                 transport: str = "tcp", env: Mapping[str, str] | None = None, timeout: float = 120.0,
                 allow_failures: Allowed = False) -> StackRun:
        """Run a topology for ``duration`` seconds and return the finished run (failing the test
        if it went wrong and ``allow_failures`` does not cover it)."""
        __tracebackhide__ = True
        run = self._start(topology, set, duration, transport, env)
        try:
            run.exit_code = run.proc.wait(duration + timeout)
        except subprocess.TimeoutExpired:
            run.stop()
        run.check(allow_failures)
        return run

    class _Live:
        def __init__(self, run: StackRun, allow_failures: Allowed) -> None:
            self.run = run
            self.allow_failures = allow_failures

        def __enter__(self) -> StackRun:
            deadline = time.monotonic() + READY_TIMEOUT_S
            stack_file = self.run.run_dir / "stack.json"
            while not stack_file.exists():
                if self.run.proc.poll() is not None:
                    self.run.exit_code = self.run.proc.returncode
                    self.run.check(self.allow_failures)  # fails the test, saying why
                    raise RuntimeError(f"the stack ended before it was ready (exit {self.run.exit_code}):\n"
                                       f"{self.run.output[-OUTPUT_TAIL:]}")
                if time.monotonic() > deadline:
                    self.run.stop()
                    raise TimeoutError(f"the stack was not ready within {READY_TIMEOUT_S} s")
                time.sleep(0.05)  # polling for the launcher's readiness file, bounded by the deadline
            return self.run

        def __exit__(self, exc_type: type | None, *exc: object) -> None:
            __tracebackhide__ = True
            self.run.stop()
            if exc_type is None:  # the block's own failure is the one to show
                self.run.check(self.allow_failures)

    def live(self, topology: str | Path, set: Mapping[str, Any] | None = None, transport: str = "tcp",
             env: Mapping[str, str] | None = None, allow_failures: Allowed = False) -> "StackFactory._Live":
        """A running stack (until the ``with`` block ends), ready when the block starts."""
        return self._Live(self._start(topology, set, 0, transport, env), allow_failures)

    def cleanup(self) -> None:
        for run in self.runs:
            if run.proc.poll() is None:
                run.stop(timeout=30)

    def draw_pages(self) -> list[Path]:
        """report.html for every finished run that has a report and no page yet (a failed test's)."""
        pages = []
        for run in self.runs:
            page = run.run_dir / "report.html"
            if run.proc.poll() is None or page.exists() or not (run.run_dir / "report.json").exists():
                continue
            drawn = subprocess.run([sys.executable, "-m", "zmqtrade", "report", str(run.run_dir)],
                                   capture_output=True, text=True, timeout=PAGE_TIMEOUT_S, stdin=subprocess.DEVNULL)
            if drawn.returncode == 0:
                pages.append(page)
        return pages


FACTORY = pytest.StashKey[StackFactory]()
"""The test's stack factory, for the report hook."""


def _says_html(topology: Path) -> bool:
    """Whether the topology file sets ``report.html`` itself (then its word stands)."""
    import yaml

    try:
        data = yaml.safe_load(topology.read_text())
    except (OSError, yaml.YAMLError):
        return False  # the launcher will say what is wrong with it
    report = data.get("report") if isinstance(data, dict) else None
    return isinstance(report, dict) and "html" in report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test's runs get their report.html drawn, and the failure report lists the pages."""
    outcome = yield
    rep = outcome.get_result()
    factory = item.stash.get(FACTORY, None)
    if factory is None or rep.when != "call" or not rep.failed:
        return
    pages = factory.draw_pages()
    if pages:
        rep.sections.append(("zmqtrade report.html", "\n".join(str(p) for p in pages)))


@pytest.fixture
def zmqtrade_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StackFactory]:
    """Start zmqtrade stacks on free ports in this test's tmp dir; always stopped at teardown."""
    factory = StackFactory(tmp_path, Path(str(request.node.fspath)), Path(request.config.rootpath))
    request.node.stash[FACTORY] = factory
    try:
        yield factory
    finally:
        factory.cleanup()
