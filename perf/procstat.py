"""Where a process's time goes, per thread, from /proc: CPU, run-queue wait and wake-ups.

``/proc/<pid>/task/<tid>/schedstat`` gives, per thread, the nanoseconds spent on a CPU, the
nanoseconds spent runnable but waiting for one (contention: on two cores, what one process's
work costs the others), and the number of times it was scheduled in (its wake-ups). Two
snapshots around a measuring window, divided by the ticks in it, give a per-tick budget that
needs no instrumentation inside the processes, so zmqtrade and the lean chain are measured
the same way. Threads are grouped by role: the Python thread (``main``) and libzmq's I/O
threads (``io``); anything else (the reaper, a launcher's helpers) is ``other``.
"""
from __future__ import annotations

import os
from typing import Any

Snapshot = dict[str, tuple[int, dict[int, tuple[str, int, int, int]]]]
"""{process name: (pid, {tid: (thread name, run ns, wait ns, times scheduled)})}"""


def _thread(pid: int, tid: int) -> tuple[str, int, int, int] | None:
    base = f"/proc/{pid}/task/{tid}"
    try:
        with open(f"{base}/schedstat") as fh:
            run, wait, slices = (int(x) for x in fh.read().split())
        with open(f"{base}/comm") as fh:
            comm = fh.read().strip()
    except (OSError, ValueError):
        return None
    return comm, run, wait, slices


def snapshot(pids: dict[str, int]) -> Snapshot:
    out: Snapshot = {}
    for name, pid in pids.items():
        threads: dict[int, tuple[str, int, int, int]] = {}
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            tids = []
        for tid in tids:
            t = _thread(pid, tid)
            if t is not None:
                threads[tid] = t
        out[name] = (pid, threads)
    return out


def _role(comm: str, tid: int, pid: int) -> str:
    if tid == pid:
        return "main"
    return "io" if comm.startswith("ZMQbg/IO") else "other"


def cost(before: Snapshot, after: Snapshot, ticks: int, elapsed_s: float) -> dict[str, dict[str, float]]:
    """Per process: microseconds per tick of CPU (main thread, I/O threads, all), of run-queue
    wait, and wake-ups per tick, over the window between two snapshots; plus its CPU %."""
    out: dict[str, dict[str, float]] = {}
    for name, (pid, threads) in after.items():
        old = before.get(name, (pid, {}))[1]
        acc = {"main": 0, "io": 0, "other": 0, "wait": 0, "slices": 0}
        for tid, (comm, run, wait, slices) in threads.items():
            _, run0, wait0, slices0 = old.get(tid, (comm, 0, 0, 0))  # a thread born inside the window counts whole
            acc[_role(comm, tid, pid)] += run - run0
            acc["wait"] += wait - wait0
            acc["slices"] += slices - slices0
        total = acc["main"] + acc["io"] + acc["other"]
        per = max(1, ticks)
        out[name] = {
            "cpu_us": round(total / 1000 / per, 2),
            "main_us": round(acc["main"] / 1000 / per, 2),
            "io_us": round(acc["io"] / 1000 / per, 2),
            "wait_us": round(acc["wait"] / 1000 / per, 2),
            "wakeups": round(acc["slices"] / per, 2),
            "cpu_pct": round(total / 1e7 / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        }
    return out


def table(cost_: dict[str, dict[str, float]], indent: str = "  ") -> str:
    """The budget as text, one row per process and a total."""
    cols = ("cpu_us", "main_us", "io_us", "wait_us", "wakeups", "cpu_pct")
    head = f"{indent}{'process':<14}" + "".join(f"{c:>10}" for c in cols)
    rows = [head]
    total: dict[str, float] = {c: 0.0 for c in cols}
    for name, figs in cost_.items():
        rows.append(f"{indent}{name:<14}" + "".join(f"{figs[c]:>10.2f}" for c in cols))
        for c in cols:
            total[c] += figs[c]
    rows.append(f"{indent}{'total':<14}" + "".join(f"{total[c]:>10.2f}" for c in cols))
    return "\n".join(rows)


def summed(cost_: dict[str, Any]) -> dict[str, float]:
    keys = ("cpu_us", "main_us", "io_us", "wait_us", "wakeups", "cpu_pct")
    return {k: round(sum(c[k] for c in cost_.values()), 2) for k in keys}
