"""What a launcher writes about its run: ``stack.json`` while it runs, and at its end the report
(report.json and its files, the printed summary, report.html drawn by a process of its own)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from typing import Any, Sequence

from zmqtrade import journal, report
from zmqtrade.launch.child import Child, module_argv

log = logging.getLogger("zmqtrade.launcher")
REPORT_HTML_TIMEOUT_S = 120.0
"""How long drawing report.html may take (matplotlib, a few seconds for a long run)."""


class Outputs:
    """Mixed into :class:`~zmqtrade.launch.launcher.Launcher`: its run's files."""

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
        if self.topo.report.html:
            self._draw_html()
        return True

    def _draw_html(self) -> None:
        """report.html, drawn by a process of its own: matplotlib would stay in this one, and a
        sweep's next points would measure a launcher ~45 MB bigger than the first point's."""
        try:
            drawn = subprocess.run([*module_argv("report.html"), str(self.run_dir)], capture_output=True, text=True,
                                   timeout=REPORT_HTML_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            drawn = subprocess.CompletedProcess([], 1, "", str(exc))
        if drawn.returncode == 0:
            print(f"        {drawn.stdout.strip()}", flush=True)
        else:  # the run's data are written; a page that failed to draw is no failure
            log.warning("report.html not written: %s", (drawn.stderr.strip().splitlines() or ["?"])[-1])
