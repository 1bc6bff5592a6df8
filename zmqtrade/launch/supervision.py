"""Supervision, the launcher's part that acts while a stack runs: restart policies, liveness,
strategies left unanswered, and the topology's injected faults."""
from __future__ import annotations

import logging
import signal
import time

from zmqtrade.launch.child import LOG_TAIL_LINES, Child

log = logging.getLogger("zmqtrade.launcher")


class Supervisor:
    """Mixed into :class:`~zmqtrade.launch.launcher.Launcher`: these methods act on its
    children, events and failures."""

    def _event(self, c: Child, what: str) -> None:
        self.events.append({"t_s": round(time.monotonic() - (self.stream_started or self._t0), 3),
                            "process": c.name, "pid": c.pid, "event": what})
        self.view.print(f"launcher | {c.name} (pid {c.pid}) {what}")

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
