"""One supervised process: how it is started, sampled, signalled and reaped.

Children run in their own session, so a Ctrl-C at the terminal reaches only the launcher,
which then stops them in order; they are signalled by PID through their ``Popen`` handle
only, never by name. Output goes straight to the child's log file, not through a pipe, so a
slow or dead launcher can never block a child's logging.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import psutil

from zmqtrade.launch import control

USS_EVERY = 10
"""Samples per USS reading (the others carry the last one)."""

LOG_TAIL_LINES = 15
"""Lines of a process's log kept for a report of its failure."""


@dataclass(slots=True)
class Sample:
    t_s: float
    cpu_percent: float
    rss_bytes: int
    uss_bytes: int
    threads: int
    ctx_switches: int
    open_fds: int


@dataclass
class Child:
    name: str
    kind: str
    argv: Sequence[str]
    log_path: Path
    host: str = ""
    """The topology host it runs on, in a multi-host stack."""
    proc: subprocess.Popen | None = None
    ps: psutil.Process | None = None
    samples: list[Sample] = field(default_factory=list)
    progress: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    """(t_s, counters) the process reported while running, one per report interval."""
    stats: dict[str, Any] | None = None
    ready: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)
    cpus: list[int] = field(default_factory=list)
    """The CPUs it runs on, as it reported them when ready (``placement``, ``cpus``)."""
    io_threads: str = ""
    """How its libzmq I/O thread is scheduled (``tuning.io_threads``), as it reported when ready."""
    killed: bool = False
    terminated: bool = False
    """Sent SIGTERM because it could not be told to stop over the control socket."""
    expected_exit: bool = False
    last_seen: float = 0.0
    """When the launcher last heard from it (monotonic): any control message is a heartbeat."""
    restarts: list[float] = field(default_factory=list)
    """When each restart happened (monotonic), for the restart policy's window."""
    restart_at: float | None = None
    """A restart is scheduled for this time (its exit was handled by the restart policy)."""
    faulted_life: int | None = None
    """The life (restarts before it) a declared fault hit: its exit is not a failure."""
    ready_by: float = 0.0
    """When it must be ready by (monotonic); moved on by each report that its start advanced."""
    start_done: int = 0
    start_phase: str = ""
    """What its start is doing, as it last reported (``starting``), e.g. "replaying the journal 40%"."""
    unresponsive: bool = False
    answered: int = 0
    answered_at: float = 0.0
    """A strategy's orders answered (acked + rejected) as last reported, and since when (monotonic)."""
    earlier_lives: list[dict[str, int]] = field(default_factory=list)
    """The last counters each earlier life reported, so run totals include them."""
    lives: list[dict[str, Any]] = field(default_factory=list)
    """Each life: when it started and ended (seconds in the launcher's time base), its pid, how it
    ended (exit code, or the signal as a negative code; reason), the restart delay that followed,
    and the last lines of its log when it ended unexpectedly. See :meth:`lives_record`."""
    _life_start: int = 0  # index in ``progress`` where this life's reports begin

    def start(self, env: dict[str, str] | None = None, t_s: float = 0.0) -> None:
        """Start (or restart: one log file, appended, across lives) the process, at ``t_s``."""
        if self.proc is not None:  # a new life: keep what the last one counted
            mine = self.progress[self._life_start:]  # not an earlier life's (it may have sent none)
            last = (self.stats or {}).get("counters") or (mine[-1][1] if mine else None)
            if last:
                self.earlier_lives.append(dict(last))
            self._life_start = len(self.progress)
            self.stats, self.ready, self.endpoints = None, False, {}
            self.start_done, self.start_phase = 0, ""
            self.killed = self.terminated = self.expected_exit = self.unresponsive = False
            self.restart_at = None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.lives.append({"life": len(self.lives) + 1, "pid": self.proc.pid, "started_s": round(t_s, 3),
                           "ended_s": None, "exit_code": None, "reason": None, "restart_delay_s": None})
        try:
            self.ps = psutil.Process(self.proc.pid)
            self.ps.cpu_percent(None)  # prime: the first reading is always 0
        except psutil.Error:
            self.ps = None

    @property
    def pid(self) -> int:
        if self.proc is not None:
            return self.proc.pid
        return self.ps.pid if self.ps is not None else 0

    @property
    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    @property
    def exit_reason(self) -> str:
        """How it ended, for failures and events: its exit code, or the signal that killed it."""
        code = self.exit_code
        if code is None:
            return "still running"
        return f"exited with code {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"

    @property
    def running(self) -> bool:
        if self.proc is None:  # the launcher describing itself: sampled, never started
            return self.ps is not None
        return self.proc.poll() is None

    def sample(self, t_s: float) -> None:
        """One psutil sample. USS (memory_full_info: a walk of /proc/<pid>/smaps, ~0.4 ms a
        process, with the process's memory map locked meanwhile) is read every ``USS_EVERY``
        samples and carried in between; the rest (~0.1 ms) every time."""
        if self.ps is None or not self.running:
            return
        try:
            with self.ps.oneshot():
                if not self.samples or len(self.samples) % USS_EVERY == 0:
                    mem = self.ps.memory_full_info()
                    rss, uss = mem.rss, mem.uss
                else:
                    rss, uss = self.ps.memory_info().rss, self.samples[-1].uss_bytes
                ctx = self.ps.num_ctx_switches()
                self.samples.append(Sample(t_s, self.ps.cpu_percent(None), rss, uss,
                                           self.ps.num_threads(), ctx.voluntary + ctx.involuntary,
                                           self.ps.num_fds()))
        except psutil.Error:
            pass

    def end_life(self, t_s: float, reason: str, restart_delay_s: float | None, log_tail: list[str]) -> None:
        """Record how the current life ended unexpectedly (and what supervision did about it)."""
        if self.lives and self.lives[-1]["ended_s"] is None:
            self.lives[-1].update(ended_s=round(t_s, 3), exit_code=self.exit_code, reason=reason,
                                  restart_delay_s=restart_delay_s, log_tail=log_tail)

    def lives_record(self, end_s: float) -> list[dict[str, Any]]:
        """Every life, the current one ended at ``end_s`` by its exit status if it is over (stopped
        in order: reason "stopped"), or still running (``ended_s`` None)."""
        out = [dict(life) for life in self.lives]
        if out and out[-1]["ended_s"] is None and self.exit_code is not None:
            code = self.exit_code
            out[-1].update(ended_s=round(end_s, 3), exit_code=code,
                           reason="stopped" if code == 0 and self.expected_exit else self.exit_reason)
        return out

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig == signal.SIGKILL:
                self.killed = True

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, n: int = 15) -> list[str]:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.log_path) - 64 * 1024))
                lines = deque(fh.read().decode(errors="replace").splitlines(), maxlen=n)
        except OSError:
            return []
        return list(lines)

    def resources(self, window: tuple[float, float] | None = None) -> dict[str, Any]:
        """The report's per-process resource figures.

        CPU figures cover only samples whose whole interval lies inside ``window`` (the
        streaming phase, in the samples' time base): a sample's CPU is what the process used since
        the sample before, so the first one after the start still holds start-up (imports alone
        are ~0.4 s of CPU; on another host of a multi-host run, its processes start later than the
        lead's clock says streaming began). Memory figures cover the whole life.
        """
        s = self.samples
        inside = s if window is None else [x for prev, x in zip(s, s[1:])
                                           if window[0] <= prev.t_s and x.t_s <= window[1]]
        cpu = [x.cpu_percent for x in (inside or s)]
        return {
            "cpu_percent": {"mean": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
                            "max": round(max(cpu), 1) if cpu else 0.0},
            "rss_bytes": {"max": max((x.rss_bytes for x in s), default=0)},
            "uss_bytes": {"max": max((x.uss_bytes for x in s), default=0)},
            "threads": {"max": max((x.threads for x in s), default=0)},
            "open_fds": {"max": max((x.open_fds for x in s), default=0)},
            "ctx_switches": s[-1].ctx_switches if s else 0,
            "samples": len(s),
            "cpu_samples": len(inside),
        }

    def heard(self, verb: str, payload: Any, t_s: float, ready_timeout_s: float) -> None:
        """Take one control message from the process (``t_s``: seconds since the launch). A
        payload is the process's word: anything not of the expected shape is ignored."""
        if verb == control.READY:
            ready = payload if isinstance(payload, dict) else {}
            self.ready = True
            endpoints = ready.get("endpoints")
            self.endpoints = {k: v for k, v in endpoints.items() if type(k) is str and type(v) is str} \
                if isinstance(endpoints, dict) else {}
            cpus = ready.get("cpus")
            self.cpus = [c for c in cpus if type(c) is int] if isinstance(cpus, list) else []
            self.io_threads = str(ready.get("io_threads") or "")
        elif verb == control.STARTING and isinstance(payload, dict) and not self.ready:
            done = payload.get("done")
            if type(done) is int and done > self.start_done:  # it advanced: give it time again
                self.start_done = done
                self.ready_by = self.last_seen + ready_timeout_s
                total = payload.get("total")
                self.start_phase = (f"{str(payload.get('phase'))[:40]} "
                                    + (f"{100 * done / total:.0f}%" if type(total) is int and total > 0 else ""))
        elif verb == control.STATS and isinstance(payload, dict):
            self.stats = payload
        elif verb == control.PROGRESS and isinstance(payload, dict):
            self.progress.append((t_s, {k: v for k, v in payload.items() if type(k) is str and type(v) in (int, float)}))

    def record(self, shift_s: float = 0.0, exit_code: int | None = None) -> dict[str, Any]:
        """What the report needs of this process, as plain data for another host's launcher;
        sample times moved by ``shift_s`` into that launcher's time base."""
        return {
            "name": self.name, "kind": self.kind, "host": self.host, "pid": self.pid,
            "exit_code": self.exit_code if exit_code is None else exit_code, "killed": self.killed,
            "restarts": len(self.restarts), "stats": self.stats, "earlier_lives": self.earlier_lives,
            "lives": [{**life, "started_s": life["started_s"] + shift_s,
                       "ended_s": None if life["ended_s"] is None else life["ended_s"] + shift_s}
                      for life in self.lives_record(self.samples[-1].t_s if self.samples else 0.0)],
            "cpus": self.cpus, "io_threads": self.io_threads,
            "samples": [[s.t_s + shift_s, s.cpu_percent, s.rss_bytes, s.uss_bytes, s.threads, s.ctx_switches,
                         s.open_fds] for s in self.samples],
            "progress": [[t + shift_s, counters] for t, counters in self.progress],
        }


@dataclass
class RecordedChild(Child):
    """A process another host's launcher ran, rebuilt from its :meth:`Child.record` for the
    combined report: it reads like a Child that has exited."""

    recorded_pid: int = 0
    recorded_exit: int | None = None

    @classmethod
    def from_record(cls, rec: dict[str, Any], log_path: Path) -> "RecordedChild":
        return cls(rec["name"], rec["kind"], [], log_path, host=rec.get("host", ""), killed=bool(rec["killed"]),
                   restarts=[0.0] * int(rec["restarts"]), stats=rec.get("stats"), cpus=list(rec.get("cpus") or []),
                   io_threads=str(rec.get("io_threads") or ""),
                   earlier_lives=list(rec.get("earlier_lives") or []), lives=list(rec.get("lives") or []),
                   samples=[Sample(*row) for row in rec.get("samples") or []],
                   progress=[(float(t), dict(c)) for t, c in rec.get("progress") or []],
                   recorded_pid=int(rec["pid"]), recorded_exit=rec.get("exit_code"))

    @property
    def pid(self) -> int:
        return self.recorded_pid

    @property
    def exit_code(self) -> int | None:
        return self.recorded_exit

    @property
    def running(self) -> bool:
        return False


def module_argv(kind: str) -> list[str]:
    """How a component is started: ``python -m zmqtrade.<kind>``, with this interpreter."""
    return [sys.executable, "-m", f"zmqtrade.{kind}"]

