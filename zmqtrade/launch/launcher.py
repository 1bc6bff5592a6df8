"""The launcher: starts a topology's processes, supervises them, stops them, reports.

Start: processes come up in dependency levels (binders first, then those that subscribe to
them); each level starts only when the previous one said READY over the control socket,
and the endpoints binders actually bound (``tcp://host:*`` resolved) are written into the
topology the next level reads. When all are ready the launcher sends ``start`` and the
gateway begins streaming, so no subscriber misses the start of a stream.

Supervise: every process heartbeats over the control socket. One that dies, or falls silent
for ``supervision.liveness_s`` (hung, SIGSTOPped: it is then SIGKILLed), is handled by its
restart policy: ``on-failure`` starts it again after an exponential backoff, from the
resolved topology (same endpoints), and it rejoins through the same READY handshake;
``never``, or too many restarts in the window, ends the run as failed. The topology's
``faults`` are injected here too. A failure while the stack is starting always ends the run.

Stop: gateway first, then the orderbook, the strategies and the order manager last, so
orders in flight still get their replies. Each stage has a grace period, then SIGKILL. The
book segment and any ipc socket files are removed whatever happened, Ctrl-C and crashed
children included.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import psutil
import zmq

from zmqtrade import book as book_mod
from zmqtrade import placement
from zmqtrade import topology as topo_mod
from zmqtrade.launch import control
from zmqtrade.launch.child import Child, module_argv
from zmqtrade.launch.console import ConsoleTail
from zmqtrade.launch.outputs import Outputs
from zmqtrade.launch.supervision import Supervisor
from zmqtrade.report import manifest
from zmqtrade.report.live import LiveView
from zmqtrade.topology import Topology

log = logging.getLogger("zmqtrade.launcher")

STOP_GRACE_S = 8.0
STATS_AFTER_EXIT_S = 1.0


def start_levels(topo: Topology) -> list[list[str]]:
    """Who starts together: binders with no inputs, then the book's writer (and an order manager
    that keeps its own prices: it subscribes to the feed too), then readers."""
    if "ordermanager" in topo.connecters()["gateway.prices"]:
        return [["gateway"], [*topo.orderbooks(), "ordermanager"], topo.strategy_processes()]
    return [["gateway", "ordermanager"], topo.orderbooks(), topo.strategy_processes()]


EXIT_RECOVERED = 3
"""The run's exit status when it completed but a process exited unexpectedly and was restarted."""


def stop_stages(topo: Topology) -> list[list[str]]:
    return [["gateway"], topo.orderbooks(), topo.strategy_processes(), ["ordermanager"]]


class Launcher(Supervisor, Outputs):
    """Runs a whole one-host stack; with ``host``, that host's share of a multi-host one (see
    :mod:`zmqtrade.launch.multihost` for the launchers that coordinate hosts)."""

    def __init__(self, topo: Topology, run_dir: Path, duration_s: float | None = None,
                 verbose: bool = False, console: bool = True, live: bool | None = None,
                 host: str | None = None, overrides: Mapping[str, Any] | None = None) -> None:
        self.topo = topo
        self.manifest = manifest.build(topo, overrides)
        """What runs (report.json's ``manifest``): taken now, before the stack adds its own load."""
        self.host = host
        self.mine = topo.processes_on(host) if host else topo.process_names()
        """The processes this launcher starts and supervises."""
        self.clock_offset_ns = 0
        """This host's monotonic clock to the lead's (``--clock-offset`` for the children)."""
        self.run_dir = run_dir.resolve()
        self.duration_s = topo.duration_s if duration_s is None else duration_s
        self.verbose = verbose
        self.console = console
        self.view = LiveView(topo.name, self.duration_s, interactive=live)
        self.children: dict[str, Child] = {}
        self.failures: list[dict[str, Any]] = []
        self._cut_off: dict[str, dict[str, Any]] = {}
        """Strategies judged cut off while running (:meth:`_check_answers`): failures at the end."""
        self.recovered: list[dict[str, Any]] = []
        """Unexpected exits the restart policy recovered from (a declared fault's are not): the
        run went on, but it did not run as written, so it ends with EXIT_RECOVERED, not 0."""
        self.events: list[dict[str, Any]] = []
        """What supervision saw and did (exits, restarts, hangs, injected faults), in order."""
        self._faults = sorted((f for f in topo.faults if f.process in self.mine), key=lambda f: f.at_s)
        self._resumes: list[tuple[float, Child, int]] = []  # (when, child, pid) to SIGCONT
        self.interrupts = 0
        self.stream_started = 0.0
        self.stream_stopped = 0.0
        self._t0 = time.monotonic()
        self._next_sample = 0.0
        self._to_sample: list[Child] = []  # the rest of this round of samples
        self.me = Child(f"launcher@{host}" if host else "launcher", "launcher", [], self.run_dir / "launcher.log",
                        host=host or "")
        self.me.ps = psutil.Process()
        self.me.ps.cpu_percent(None)

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            print(f"\nlauncher | {signal.Signals(signum).name}: stopping the stack (again to kill it)", flush=True)
        else:
            for c in self.children.values():
                c.send_signal(signal.SIGKILL)

    # ------------------------------------------------------------------ helpers
    def _write_topology(self) -> Path:
        path = self.run_dir / "topology.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.topo.to_dict(), indent=2))
        os.replace(tmp, path)
        return path

    def _spawn(self, name: str, topo_path: Path) -> Child:
        kind = self.topo.kind_of(name)
        argv = [*module_argv(kind), str(topo_path), "--name", name, "--control", self.control.endpoint,
                "--run-dir", str(self.run_dir), "--parent-pid", str(os.getpid())]
        if self.book is not None:
            argv += ["--book", self.book.name]
        if self.clock_offset_ns:
            argv += ["--clock-offset", str(self.clock_offset_ns)]
        if self.verbose:
            argv += ["--log-orders"]
        child = Child(name, kind, argv, self.run_dir / f"{name}.log", host=self.host or "")
        self.children[name] = child
        child.start(self._child_env(), time.monotonic() - self._t0)
        child.last_seen = time.monotonic()
        child.ready_by = child.last_seen + self.topo.supervision.ready_timeout_s
        return child

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.topo.source and Path(self.topo.source).exists():  # strategies kept beside the topology import
            here = str(Path(self.topo.source).resolve().parent)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), here) if p)
        env.update(self.control.env())  # its control link's secret: the routing id a child is heard by
        return env

    def _sample_due(self) -> None:
        """Sample one process per call (per loop turn), a round every sample interval: a whole
        round at once ran the launcher for milliseconds, long enough to stall a tick."""
        now = time.monotonic()
        if not self._to_sample:
            if now < self._next_sample:
                return
            self._next_sample = now + self.topo.report.sample_interval_s
            self._to_sample = [self.me, *self.children.values()]
        self._to_sample.pop().sample(now - self._t0)

    def _sample_all(self) -> None:
        """A whole round now (the edges of the streaming window), the next one an interval later."""
        now = time.monotonic()
        self._next_sample = now + self.topo.report.sample_interval_s
        self._to_sample = []
        for c in (self.me, *self.children.values()):
            c.sample(now - self._t0)

    def _pump(self, timeout_s: float) -> None:
        """Handle control messages for up to ``timeout_s`` and take samples when due."""
        links = self._link_sockets()
        if links:  # wake for whichever speaks first: another host's launcher must not wait on ours
            poller = zmq.Poller()
            for sock in (self.control.sock, *links):
                poller.register(sock, zmq.POLLIN)
            poller.poll(max(0, int(timeout_s * 1000)))
            timeout_s = 0
        msg = self.control.recv(timeout_s)
        while msg is not None:
            name, verb, payload = msg
            child = self.children.get(name)
            if child is not None:
                child.last_seen = time.monotonic()
                if child.unresponsive:
                    child.unresponsive = False
                    self._event(child, "is responsive again")
                child.heard(verb, payload, child.last_seen - self._t0, self.topo.supervision.ready_timeout_s)
                if verb == control.READY and child.restarts and self.stream_started and not self.stream_stopped:
                    self.control.send(name, control.START)  # a restarted process rejoins the running stack
                    self._event(child, f"rejoined after restart {len(child.restarts)}")
                    self._write_stack()
            msg = self.control.recv(0)
        self._pump_links()
        self._sample_due()

    # ------------------------------------------------------------------ other hosts (multihost)
    def _open_links(self, ctx: zmq.Context) -> None:
        """Open the channel to the other hosts' launchers (a one-host stack has none)."""

    def _pump_links(self) -> None:
        """Handle what the other hosts' launchers sent."""

    def _link_sockets(self) -> list[zmq.Socket]:
        return []

    def _close_links(self) -> None:
        pass

    # ------------------------------------------------------------------ phases
    def _start(self) -> bool:
        for i, level in enumerate(start_levels(self.topo)):
            if not self._start_level(i, level):
                return False
        self._write_topology()
        self._write_stack()
        return True

    def _start_level(self, i: int, level: list[str]) -> bool:
        """Start this host's members of start level ``i`` and wait until they are ready."""
        names = [n for n in level if n in self.mine]
        if not names:
            return True
        topo_path = self._write_topology()
        for name in names:
            self._spawn(name, topo_path)
        if not self._await(lambda: all(self.children[n].ready for n in names), names):
            return False
        resolved: dict[str, str] = {}
        for n in names:
            resolved.update(self.children[n].endpoints)
        self.topo = self.topo.replace_endpoints(resolved)
        return True

    def _await(self, done: Callable[[], bool], names: list[str]) -> bool:
        """Pump until ``done()``; False (the failure recorded) if a child dies meanwhile, the run
        is interrupted, or one of ``names`` is not ready in time (``Child.ready_by``)."""
        while not done():
            dead = self._unexpected_exits()  # while starting, any exit ends the run
            for c in dead:
                self._fail(c, c.exit_reason)
            if self.interrupts or dead or self._remote_failure():
                return False
            now = time.monotonic()
            late = [self.children[n] for n in names if not self.children[n].ready and now >= self.children[n].ready_by]
            for c in late:
                self._fail(c, self._not_ready(c))
            if late:
                return False
            self._pump(0.05)
        return True

    def _not_ready(self, c: Child) -> str:
        wait = self.topo.supervision.ready_timeout_s
        if c.start_phase:
            return f"not ready: its start ({c.start_phase}) stopped advancing for {wait:g} s"
        return f"not ready within {wait:g} s (supervision.ready_timeout_s)"

    def _remote_failure(self) -> bool:
        """Whether another host's share of the run failed (a multi-host launcher knows)."""
        return False

    # ------------------------------------------------------------------ supervision
    def _begin_streaming(self) -> None:
        self._sample_all()  # closes the startup interval: CPU samples after this one are the load
        for name in self.children:
            self.control.send(name, control.START)
        self.stream_started = time.monotonic()
        self.view.start()

    def _supervise_step(self) -> bool:
        """One turn of supervision (messages, view, faults, liveness, exits, restarts); False
        when the run must end."""
        self.view.update([self.me, *self.children.values()])
        now = time.monotonic()
        self._inject_faults(now)
        self._check_liveness(now)
        self._check_answers(now)
        if not all(self._handle_exit(c, now) for c in self._unexpected_exits()):
            return False
        self._restart_due(now)
        return not self._remote_failure()

    def _supervise(self) -> None:
        self._begin_streaming()
        log.info("stack ready; streaming for %s", f"{self.duration_s:g} s" if self.duration_s else "ever (Ctrl-C stops)")
        end = self.stream_started + self.duration_s if self.duration_s else float("inf")
        while not self.interrupts:
            now = time.monotonic()
            if now >= end:
                break
            self._pump(min(0.05, end - now))
            if not self._supervise_step():
                break

    def _end_streaming(self) -> None:
        self.stream_stopped = self.stream_stopped or time.monotonic()
        self._sample_all()  # closes the streaming interval before the stop sequence begins
        for _, c, pid in self._resumes:  # a stopped process cannot stop
            if c.pid == pid:
                c.send_signal(signal.SIGCONT)

    def _stop(self) -> None:
        self._end_streaming()
        for k, stage in enumerate(stop_stages(self.topo)):
            self._stop_stage(k, [self.children[n] for n in stage if n in self.children])

    def _stop_stage(self, k: int, members: list[Child]) -> None:
        """Stop stage ``k``: ask ``members`` to stop, wait out the grace, kill what is left."""
        for c in members:
            c.expected_exit = True
            if c.running and not self.control.send(c.name, control.STOP):
                c.terminated = True  # not connected (yet): the signal asks for the same orderly stop
                c.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + (0 if self.interrupts > 1 else STOP_GRACE_S)
        while any(c.running for c in members) and time.monotonic() < deadline:
            self._pump(0.05)
        for c in members:
            if c.running:
                self._fail(c, "killed: interrupted twice" if self.interrupts > 1
                           else f"did not stop within {STOP_GRACE_S:.0f} s; killed")
                c.send_signal(signal.SIGKILL)
                c.wait(5.0)
        stats_deadline = time.monotonic() + STATS_AFTER_EXIT_S
        while any(c.stats is None and c.exit_code == 0 for c in members) and time.monotonic() < stats_deadline:
            self._pump(0.05)
        for c in members:
            ok = (0, None, -signal.SIGTERM) if c.terminated else (0, None)
            if c.exit_code not in ok and not c.killed and c.restart_at is None \
                    and not any(f["process"] == c.name for f in self.failures):
                self._fail(c, f"{c.exit_reason} while stopping")
            unanswered = ((c.stats or {}).get("counters") or {}).get("orders_unanswered", 0)
            if type(unanswered) is int and unanswered > 0:  # cut off from the order manager: not a clean run
                self._fail(c, f"{unanswered} orders never answered by the order manager before it stopped")

    # ------------------------------------------------------------------ entry
    def run(self) -> int:
        """Run the stack; 0 on a clean run (also after Ctrl-C), 1 when a process failed."""
        placement.batch_this_thread()  # its sampling must not preempt the stack it watches
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in book_mod.sweep_stale():
            log.info("removed stale book segment %s", name)
        self.topo = topo_mod.substitute_run_dir(self.topo, self.run_dir)
        ctx = zmq.Context()
        old_handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.book: book_mod.Book | None = None
        self.control: control.ControlServer | None = None
        tail = ConsoleTail(lambda: list(self.children.values()),
                           max(len(n) for n in self.mine or ["launcher"]), self.verbose, emit=self.view.print)
        code = 1
        reaper: subprocess.Popen | None = None
        pm_qos = placement.hold_pm_qos(self.topo.tuning.cpu_dma_latency_us)
        try:
            try:
                self.control = control.ControlServer(ctx, self.topo.control)
            except zmq.ZMQError as exc:
                self._launcher_failure(f"cannot bind control endpoint {self.topo.control}: {exc}")
                return 1
            self.topo = self.topo.replace_endpoints({"control": self.control.endpoint})
            reaper = self._start_reaper()
            if set(self.topo.orderbooks()) & set(self.mine):  # a book on each host with an orderbook
                self.book = book_mod.Book.create(book_mod.segment_name(self.topo.name[:40]), self.topo.symbols)
            self._open_links(ctx)
            if self.console:
                tail.start()
            if self._start():
                self._supervise()
        finally:
            if self.control is not None:
                self._stop()
            tail.stop()
            self.view.stop()
            self.failures.extend(self._cut_off.values())
            code = 1 if self.failures else EXIT_RECOVERED if self.recovered else 0
            try:
                code = self._finish(code)
            except Exception:
                log.exception("writing the report failed; cleaning up anyway")
                code = 1
            if self.book is not None:
                self.book.close()
            if self.control is not None:
                self.control.close()
            self._close_links()
            ctx.term()
            for path in topo_mod.ipc_paths(self.topo):
                path.unlink(missing_ok=True)
            for s, h in old_handlers.items():
                signal.signal(s, h)
            if pm_qos is not None:
                os.close(pm_qos)
            if reaper is not None:  # a clean end: nothing is left for it to reap
                reaper.terminate()
                reaper.wait(5.0)
        return code

    def _start_reaper(self) -> subprocess.Popen | None:
        """The process that continues and ends this run's children if this launcher is killed
        while one of them is stopped (:mod:`zmqtrade.launch.reaper`); None if it cannot start."""
        try:
            return subprocess.Popen([*module_argv("launch.reaper"), str(os.getpid()), str(self.run_dir)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.warning("cannot start the reaper (%s): a child paused when this launcher dies would stay stopped",
                        exc.strerror)
            return None

