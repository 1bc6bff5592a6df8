"""Where a process's threads run, and how the kernel schedules libzmq's I/O thread.

Measured on a 2-vCPU VM (perf/ANALYSIS.md), a ZeroMQ hop is three thread wake-ups, and the
wake-ups, not the work, are most of a tick's latency. Two settings bear on them:

- **CPU placement** (``placement``, ``cpus``: :meth:`Topology.cpus_of`): a process pinned
  before its ZeroMQ context exists takes its I/O thread with it, so a hop inside the price
  path or inside the order path wakes a thread on the same core.
- **SCHED_BATCH I/O threads** (``tuning.io_threads: batch``, off by default): a woken
  SCHED_BATCH thread does not preempt the thread that woke it. A ``send`` then returns at once
  and the sender carries on to its next wait instead of being descheduled mid-send for its own
  I/O thread. It cut the lean chain's p50 at 1k ticks/s from ~305 to ~180 us when unpinned;
  with the stack's placement it measured the same as the default.

Both are per process and need no privilege; a refusal is logged, never fatal.
"""
from __future__ import annotations

import logging
import os
import struct
import time
from typing import Iterable

log = logging.getLogger("zmqtrade.placement")

IO_THREAD_PREFIX = "ZMQbg/IO/"


def pin(cpus: Iterable[int]) -> bool:
    """Run this process (and threads it starts later) on ``cpus``; False if refused."""
    cpus = set(cpus)
    try:
        os.sched_setaffinity(0, cpus)
        return True
    except OSError as exc:
        log.warning("cannot run on CPUs %s (%s); running unpinned", sorted(cpus), exc.strerror)
        return False


def io_threads() -> list[int]:
    """The thread ids of this process's libzmq I/O threads (named by libzmq)."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                if fh.read().startswith(IO_THREAD_PREFIX):
                    out.append(int(tid))
        except OSError:  # a thread that ended meanwhile
            continue
    return out


def batch_io_threads(expected: int = 1, timeout_s: float = 0.5) -> int:
    """Put this process's libzmq I/O threads (``expected`` of them: the context's IO_THREADS)
    under SCHED_BATCH; how many were. A thread is known by the name libzmq gives it once it
    runs, which can be a moment after the socket that started it: wait for the names, briefly."""
    deadline = time.monotonic() + timeout_s
    tids = io_threads()
    while len(tids) < expected and time.monotonic() < deadline:
        time.sleep(0.001)  # polling /proc for the names, bounded by the deadline
        tids = io_threads()
    done = 0
    for tid in tids:
        try:
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            done += 1
        except OSError as exc:
            log.warning("cannot give the ZeroMQ I/O thread %d SCHED_BATCH (%s)", tid, exc.strerror)
    return done


def batch_this_thread() -> None:
    """SCHED_BATCH for the calling thread (and threads and processes it starts later): the
    launcher's, whose psutil sampling (milliseconds every interval) would otherwise preempt the
    gateway or the orderbook when it wakes, a millisecond stall in one tick of a thousand."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        log.debug("cannot run under SCHED_BATCH (%s)", exc.strerror)


def normal_this_thread() -> None:
    """Back to SCHED_OTHER (a component started by a SCHED_BATCH launcher inherits BATCH);
    allowed without privilege, as moving between the two at the same nice value is."""
    try:
        if os.sched_getscheduler(0) == os.SCHED_BATCH:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError as exc:
        log.warning("cannot leave SCHED_BATCH (%s)", exc.strerror)


def describe() -> dict[str, object]:
    """What the process runs with, for its READY report: its CPUs and its I/O threads' policy."""
    names = {os.SCHED_BATCH: "batch", os.SCHED_OTHER: "normal"}
    policies = set()
    for tid in io_threads():
        try:
            policies.add(names.get(os.sched_getscheduler(tid), "other"))
        except OSError:
            continue
    return {"cpus": sorted(os.sched_getaffinity(0)), "io_threads": "/".join(sorted(policies))}


def hold_pm_qos(want: int | None) -> int | None:
    """Hold a CPU wake-up latency limit (PM QoS) of ``want`` us for the run (None: none); the fd to
    close when it ends.

    Writing N to /dev/cpu_dma_latency keeps idle CPUs out of sleep states slower than N us
    while the file stays open; closing it (at the end of the run, or if we die) undoes it.
    On a VM this is what makes a 1k-ticks/s run fast: an idle vCPU's wake-up otherwise
    costs hundreds of microseconds per hop.
    """
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
