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

import errno
import json
import logging
import os
import signal
import struct
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import psutil
import zmq

from zmqtrade import book as book_mod
from zmqtrade import control, journal, manifest, placement, report
from zmqtrade import topology as topo_mod
from zmqtrade.child import Child, module_argv
from zmqtrade.live import LiveView
from zmqtrade.topology import Topology

log = logging.getLogger("zmqtrade.launcher")

STOP_GRACE_S = 8.0
STATS_AFTER_EXIT_S = 1.0
LOG_TAIL_LINES = 15


def start_levels(topo: Topology) -> list[list[str]]:
    """Who starts together: binders with no inputs, then the book's writer (and an order manager
    that keeps its own prices: it subscribes to the feed too), then readers."""
    if "ordermanager" in topo.connecters()["gateway.prices"]:
        return [["gateway"], ["orderbook", "ordermanager"], topo.strategy_processes()]
    return [["gateway", "ordermanager"], ["orderbook"], topo.strategy_processes()]


EXIT_RECOVERED = 3
"""The run's exit status when it completed but a process exited unexpectedly and was restarted."""


def stop_stages(topo: Topology) -> list[list[str]]:
    return [["gateway"], ["orderbook"], topo.strategy_processes(), ["ordermanager"]]


def default_run_dir(topo: Topology, host: str | None = None) -> Path:
    """A new directory runs/<time>-<topology>[-<host>][-n], made here so two launches never share one."""
    base = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{topo.name}{f'-{host}' if host else ''}"
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


REPORT_HTML_TIMEOUT_S = 120.0
"""How long drawing report.html may take (matplotlib, a few seconds for a long run)."""
PROBE_BYTES = 1 << 20
"""Written (and removed) in a new run directory before anything starts: a disk that cannot take
a megabyte cannot take the run's logs and journal either."""


def check_run_dir(path: Path) -> str | None:
    """Why ``path`` cannot take a new run, or None once it exists, empty and writable: a journal
    and logs there would mix two runs, and a run that cannot write its journal must not start."""
    try:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            return f"{path} already holds files (a run's journal and logs would mix with them); give a new --run-dir"
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".zmqtrade-probe"
        try:
            with open(probe, "wb") as fh:  # real bytes: an empty file is made even on a full disk
                fh.write(bytes(PROBE_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        fix = "free space there or give a --run-dir on another disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
            else "give a --run-dir in a directory you can write to"
        return f"{path} cannot hold a run ({exc.strerror}); {fix}"
    return None


class ConsoleTail(threading.Thread):
    """The console's merged view: new lines of every child's log, prefixed with its name.

    It reads the log files (the children never write to a pipe the launcher must drain), so
    it is a viewer only: it polls for new bytes, which synchronises nothing.
    """

    def __init__(self, children: Callable[[], Sequence[Child]], width: int, verbose: bool,
                 emit: Callable[[str], None] = print) -> None:
        super().__init__(name="console-tail", daemon=True)
        self.children = children
        self.emit = emit
        self.verbose = verbose
        self.width = width
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, str] = {}
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.wait(0.2):
            self.flush()
        self.flush()

    def flush(self) -> None:
        for c in self.children():
            try:
                with open(c.log_path, "rb") as fh:
                    fh.seek(self._offsets.get(c.name, 0))
                    data = fh.read()
            except OSError:
                continue
            if not data:
                continue
            self._offsets[c.name] = self._offsets.get(c.name, 0) + len(data)
            text = self._partial.pop(c.name, "") + data.decode(errors="replace")
            lines = text.split("\n")
            if lines[-1]:
                self._partial[c.name] = lines[-1]
            for line in lines[:-1]:
                if not self.verbose and ": order " in line:
                    continue
                self.emit(f"{c.name:>{self.width}} | {line}")

    def stop(self) -> None:
        self._stop_evt.set()
        if self.is_alive():
            self.join(2.0)


class Launcher:
    """Runs a whole one-host stack; with ``host``, that host's share of a multi-host one (see
    :mod:`zmqtrade.multihost` for the launchers that coordinate hosts)."""

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

    def _event(self, c: Child, what: str) -> None:
        self.events.append({"t_s": round(time.monotonic() - (self.stream_started or self._t0), 3),
                            "process": c.name, "pid": c.pid, "event": what})
        self.view.print(f"launcher | {c.name} (pid {c.pid}) {what}")

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
                if verb == control.READY:
                    ready = payload if isinstance(payload, dict) else {}
                    child.ready = True
                    endpoints = ready.get("endpoints")
                    child.endpoints = {k: v for k, v in endpoints.items() if type(k) is str and type(v) is str} \
                        if isinstance(endpoints, dict) else {}
                    cpus = ready.get("cpus")
                    child.cpus = [c for c in cpus if type(c) is int] if isinstance(cpus, list) else []
                    child.io_threads = str(ready.get("io_threads") or "")
                    if child.restarts and self.stream_started and not self.stream_stopped:
                        self.control.send(name, control.START)  # a restarted process rejoins the running stack
                        self._event(child, f"rejoined after restart {len(child.restarts)}")
                        self._write_stack()
                elif verb == control.STARTING and isinstance(payload, dict) and not child.ready:
                    done = payload.get("done")
                    if type(done) is int and done > child.start_done:  # it advanced: give it time again
                        child.start_done = done
                        child.ready_by = child.last_seen + self.topo.supervision.ready_timeout_s
                        total = payload.get("total")
                        child.start_phase = (f"{str(payload.get('phase'))[:40]} "
                                             + (f"{100 * done / total:.0f}%" if type(total) is int and total > 0 else ""))
                elif verb == control.STATS and isinstance(payload, dict):
                    child.stats = payload
                elif verb == control.PROGRESS and isinstance(payload, dict):
                    counts = {k: v for k, v in payload.items() if type(k) is str and type(v) in (int, float)}
                    child.progress.append((time.monotonic() - self._t0, counts))
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

    def _unexpected_exits(self) -> list[Child]:
        """Children dead without being told to stop whose exit nobody handled yet (failed it, or
        scheduled a restart)."""
        failed = {f["process"] for f in self.failures}
        return [c for c in self.children.values() if c.exit_code is not None and not c.expected_exit
                and c.restart_at is None and c.name not in failed]

    def _launcher_failure(self, reason: str) -> None:
        """A failure of this launcher itself (not of a child): recorded for the report, and shown."""
        self.failures.append({"process": self.me.name, "exit_code": None, "log_tail": [], "reason": reason})
        self.view.print(f"launcher | {reason}")

    def _fail(self, c: Child, reason: str) -> None:
        tail = c.tail(LOG_TAIL_LINES)
        self.failures.append({"process": c.name, "exit_code": c.exit_code, "reason": reason, "log_tail": tail})
        self.view.print(f"launcher | {c.name} (pid {c.pid}) {reason}; last lines of {c.log_path}:")
        for line in tail:
            self.view.print(f"launcher |   {line}")

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

    def _write_stack(self) -> None:
        """run_dir/stack.json: what a tool needs to find the live stack (book, pids, endpoints)."""
        stack = {
            "topology": self.topo.name,
            "book": self.book.name if self.book else None,
            "control": self.control.endpoint if self.control else None,
            "launcher_pid": os.getpid(),
            "endpoints": {k: v for c in self.children.values() for k, v in c.endpoints.items()},
            "processes": {n: {"kind": c.kind, "pid": c.pid, "running": c.running, "restarts": len(c.restarts),
                              "endpoints": c.endpoints} for n, c in self.children.items()},
        }
        tmp = self.run_dir / "stack.json.tmp"
        tmp.write_text(json.dumps(stack, indent=2))
        os.replace(tmp, self.run_dir / "stack.json")

    # ------------------------------------------------------------------ supervision
    def _handle_exit(self, c: Child, now: float) -> bool:
        """Apply ``c``'s restart policy to its unexpected exit; False if the run must end."""
        why = "killed: no heartbeat" if c.unresponsive else c.exit_reason
        policy = self.topo.restart_policy(c.name)
        recent = [t for t in c.restarts if now - t < policy.window_s]
        tail = c.tail(LOG_TAIL_LINES)
        if policy.policy == "never" or len(recent) >= policy.max_restarts:
            c.end_life(now - self._t0, why, None, tail)
            self._fail(c, why if policy.policy == "never" else
                       f"{why}; gave up after {len(recent)} restarts within {policy.window_s:g} s")
            return False
        delay = min(policy.max_backoff_s, policy.backoff_s * 2 ** len(recent))
        c.end_life(now - self._t0, why, delay, tail)
        c.restart_at = now + delay
        self._event(c, f"{why}; restarting in {delay:g} s")
        if c.faulted_life != len(c.restarts):  # not the life a declared fault hit
            self.recovered.append({"process": c.name, "life": len(c.restarts) + 1, "exit_code": c.exit_code,
                                   "reason": why, "t_s": round(now - self._t0, 3), "log_tail": tail})
        self._write_stack()
        return True

    def _restart_due(self, now: float) -> None:
        for c in self.children.values():
            if c.restart_at is not None and now >= c.restart_at:
                c.restarts.append(now)
                argv = list(c.argv)
                if "--life" in argv:
                    del argv[argv.index("--life"):argv.index("--life") + 2]
                c.argv = [*argv, "--life", str(len(c.restarts) + 1)]  # it joins streams already running
                c.start(self._child_env(), now - self._t0)
                c.last_seen = now
                c.ready_by = now + self.topo.supervision.ready_timeout_s
                self._event(c, f"restarted (restart {len(c.restarts)})")
                self._write_stack()

    def _check_liveness(self, now: float) -> None:
        """A process silent for ``liveness_s`` is hung (or stopped): report it, and under
        ``on-failure`` kill it so it is restarted; one not ready in time after a restart too."""
        sup = self.topo.supervision
        for c in self.children.values():
            if not c.running or c.expected_exit:
                continue
            if not c.ready:
                if c.restarts and now > c.ready_by and not c.unresponsive:
                    c.unresponsive = True
                    self._event(c, f"{self._not_ready(c)} after its restart; killing it")
                    c.send_signal(signal.SIGKILL)
                continue
            silent = now - c.last_seen
            if silent > sup.liveness_s and not c.unresponsive:
                c.unresponsive = True
                on_failure = self.topo.restart_policy(c.name).policy == "on-failure"
                self._event(c, f"no heartbeat for {silent:.1f} s (hung or stopped)"
                            + ("; killing it to restart" if on_failure else ""))
                if on_failure:
                    c.send_signal(signal.SIGCONT)  # a stopped process cannot act on the kill's exit otherwise
                    c.send_signal(signal.SIGKILL)

    def _check_answers(self, now: float) -> None:
        """A strategy with orders in flight that hears no answer for ``supervision.unanswered_s``
        while the order manager is up is cut off (its route taken, its replies lost): reported at
        once, and the run fails. Judged from the progress it reports (sent, acked, rejected)."""
        bound = self.topo.supervision.unanswered_s
        managers = [c for c in self.children.values() if c.kind == "ordermanager"]
        om_up = all(c.running and c.ready for c in managers)  # another host's: judged by its own launcher
        for c in self.children.values():
            if c.kind != "strategy" or not c.ready or not c.progress or c.name in self._cut_off:
                continue
            counts = c.progress[-1][1]
            answered = counts.get("orders_acked", 0) + counts.get("orders_rejected", 0)
            in_flight = counts.get("orders_sent", 0) - answered
            if in_flight <= 0 or answered != c.answered or not om_up:
                c.answered, c.answered_at = answered, now
                continue
            if now - c.answered_at > bound:
                reason = (f"cut off: {in_flight} orders unanswered for {now - c.answered_at:.0f} s while the order "
                          f"manager was up (supervision.unanswered_s)")
                self._cut_off[c.name] = {"process": c.name, "exit_code": None, "reason": reason,
                                         "log_tail": c.tail(LOG_TAIL_LINES)}
                self._event(c, reason)

    def _inject_faults(self, now: float) -> None:
        while self._faults and now >= self.stream_started + self._faults[0].at_s:
            fault = self._faults.pop(0)
            c = self.children[fault.process]
            if not c.running:
                self._event(c, f"fault {fault.action} skipped: not running")
            elif fault.action == "kill":
                c.faulted_life = len(c.restarts)  # its exit is the experiment's, not a failure
                self._event(c, "fault: SIGKILL")
                c.send_signal(signal.SIGKILL)
                c.killed = False  # not the launcher's own kill: the restart policy decides
            else:
                c.faulted_life = len(c.restarts)  # a pause judged a hang and restarted is the experiment's too
                self._event(c, f"fault: SIGSTOP for {fault.for_s:g} s")
                c.send_signal(signal.SIGSTOP)
                self._resumes.append((now + fault.for_s, c, c.pid))
        for item in [r for r in self._resumes if now >= r[0]]:
            self._resumes.remove(item)
            _, c, pid = item
            if c.running and c.pid == pid:
                c.send_signal(signal.SIGCONT)
                self._event(c, "fault over: SIGCONT")

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

    def _hold_pm_qos(self) -> int | None:
        """Hold a CPU wake-up latency limit (PM QoS) for the run, if the topology asks for one.

        Writing N to /dev/cpu_dma_latency keeps idle CPUs out of sleep states slower than N us
        while the file stays open; closing it (at the end of the run, or if we die) undoes it.
        On a VM this is what makes a 1k-ticks/s run fast: an idle vCPU's wake-up otherwise
        costs hundreds of microseconds per hop.
        """
        want = self.topo.tuning.cpu_dma_latency_us
        if want is None:
            return None
        fd = -1
        try:
            fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
            os.write(fd, struct.pack("i", want))
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            log.warning("tuning.cpu_dma_latency_us: cannot hold /dev/cpu_dma_latency (%s); running without it",
                        exc.strerror)
            return None
        log.info("holding cpu_dma_latency at %d us for this run", want)
        return fd

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
        pm_qos = self._hold_pm_qos()
        try:
            try:
                self.control = control.ControlServer(ctx, self.topo.control)
            except zmq.ZMQError as exc:
                self._launcher_failure(f"cannot bind control endpoint {self.topo.control}: {exc}")
                return 1
            self.topo = self.topo.replace_endpoints({"control": self.control.endpoint})
            reaper = self._start_reaper()
            if "orderbook" in self.mine:  # the book is per host: on the others, nobody reads it
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
        while one of them is stopped (:mod:`zmqtrade.reaper`); None if it cannot start."""
        try:
            return subprocess.Popen([*module_argv("reaper"), str(os.getpid()), str(self.run_dir)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.warning("cannot start the reaper (%s): a child paused when this launcher dies would stay stopped",
                        exc.strerror)
            return None

    def _report(self, code: int, others: Sequence[Child] = (), failures: Sequence[dict[str, Any]] = (),
                events: Sequence[dict[str, Any]] = (), journal_records: int = 0) -> dict[str, Any]:
        """The run report: this launcher's processes and journal, plus what other hosts' launchers
        sent (their processes, failures, events and journal records) for a combined one."""
        duration = (self.stream_stopped - self.stream_started) if self.stream_started else 0.0
        journal_path = self.run_dir / journal.FILENAME
        records = journal.count(journal_path) if journal_path.exists() else 0
        merged = sorted([*self.events, *events], key=lambda e: e["t_s"]) if events else self.events
        if self.control is not None:  # what local clients without the run's token sent the control socket
            self.me.stats = {"counters": {"control_messages_refused": self.control.foreign}}
        return report.build(self.topo.name, self.topo.source, self.run_dir, duration, code,
                            [*self.children.values(), *others], records + journal_records,
                            [*self.failures, *failures], launcher=self.me, window=self._window(), events=merged,
                            recovered=self.recovered, ended_s=time.monotonic() - self._t0, manifest=self.manifest)

    def _window(self) -> tuple[float, float] | None:
        """The streaming phase in the samples' time base (seconds since this launcher began)."""
        return (self.stream_started - self._t0, self.stream_stopped - self._t0) if self.stream_started else None

    def _finish(self, code: int) -> int:
        """Write the report; the run's exit code."""
        written = self._write_report(self._report(code), [self.me, *self.children.values()])
        return code if written else 1

    def _write_report(self, rep: dict[str, Any], children: Sequence[Child]) -> bool:
        """Print the summary and write the report files; False if the disk refused them (the run
        then fails: no run may look like a success that left no report)."""
        print(report.summary(rep), flush=True)
        try:
            report.write(self.run_dir, rep, children)
        except OSError as exc:  # the disk filled during the run: the summary above is all there is
            log.error("report not written to %s (%s); free space there", self.run_dir, exc.strerror)
            return False
        print(f"\nreport: {self.run_dir / 'report.json'}", flush=True)
        # Drawn by a process of its own: matplotlib would stay in this one, and a sweep's next
        # points would measure a launcher ~45 MB bigger than the first point's.
        try:
            drawn = subprocess.run([*module_argv("htmlreport"), str(self.run_dir)], capture_output=True, text=True,
                                   timeout=REPORT_HTML_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            drawn = subprocess.CompletedProcess([], 1, "", str(exc))
        if drawn.returncode == 0:
            print(f"        {drawn.stdout.strip()}", flush=True)
        else:  # the run's data are written; a page that failed to draw is no failure
            log.warning("report.html not written: %s", (drawn.stderr.strip().splitlines() or ["?"])[-1])
        return True
