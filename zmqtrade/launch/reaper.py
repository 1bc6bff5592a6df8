"""Reaper process: when the launcher dies, continue and end the children it left.

Every child asks Linux for a SIGTERM when the launcher dies (``PR_SET_PDEATHSIG``), which
ends a running child in order. A child stopped at that moment (a declared ``pause`` fault, or
a debugger) keeps that signal pending for good: nobody is left to continue it. This small
process, started by the launcher, waits for the launcher's exit on a pidfd; if the launcher
did not end it first (a clean run does), it reads the live stack's pids from ``stack.json``
and sends each child of this run SIGCONT, then SIGTERM, so the pending signal is delivered.

    python -m zmqtrade.launch.reaper LAUNCHER_PID RUN_DIR
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
from pathlib import Path
from typing import Sequence


def children_of_run(run_dir: Path) -> list[int]:
    """The pids stack.json lists whose command line still names this run directory (a pid the
    kernel gave to some other process meanwhile is left alone)."""
    try:
        stack = json.loads((run_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return []
    mark = str(run_dir).encode()
    pids = []
    for entry in (stack.get("processes") or {}).values():
        pid = entry.get("pid") if isinstance(entry, dict) else None
        if type(pid) is not int or pid <= 1:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if mark in fh.read():
                    pids.append(pid)
        except OSError:  # already gone
            continue
    return pids


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m zmqtrade.launch.reaper LAUNCHER_PID RUN_DIR", file=sys.stderr)
        return 2
    launcher, run_dir = int(args[0]), Path(args[1])  # as the launcher wrote it in its children's argv
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the launcher ending us: a clean run
    try:
        fd = os.pidfd_open(launcher)
    except OSError:  # it is gone already
        fd = None
    if fd is not None:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        while not poll.poll():  # readable once the launcher has exited
            pass
        os.close(fd)
    for pid in children_of_run(run_dir):
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(pid, sig)
            except OSError:
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
