"""Running one component process: its arguments, logging, signals, placement and the
lifecycle of :class:`~zmqtrade.service.Service` from start to exit status."""
from __future__ import annotations

import argparse
import ctypes
import errno
import gc
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

import zmq

from zmqtrade import clock, placement, security, topology
from zmqtrade.errors import ResourceError
from zmqtrade.launch import control
from zmqtrade.service import LOG_DATEFMT, LOG_FORMAT, READY_TIMEOUT_S, Service, Stopped
from zmqtrade.topology import Topology

PR_SET_PDEATHSIG = 1


def arg_parser(kind: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m zmqtrade.{kind}",
                                description=f"Run the zmqtrade {kind} of a topology.")
    p.add_argument("topology", help="topology file (YAML or the launcher's resolved JSON)")
    p.add_argument("--name", default=None, help=f"process name in the topology (default: {kind})")
    p.add_argument("--control", default=None, help="launcher control endpoint (omit when started by hand)")
    p.add_argument("--book", default=None, help="shared-memory book segment name")
    p.add_argument("--run-dir", default=".", help="where journals and other run files go")
    p.add_argument("--parent-pid", type=int, default=0, help="exit if this process (the launcher) dies")
    p.add_argument("--life", type=int, default=1, help="1 at first start, N for the (N-1)th restart by the launcher")
    p.add_argument("--log-orders", action="store_true",
                   help="log every order's outcome, fills included (the launcher passes it with -v; "
                        "the order manager's journal holds every fill either way)")
    p.add_argument("--clock-offset", type=int, default=0, metavar="NS",
                   help="add to this host's monotonic clock for message timestamps (the lead launcher's clock)")
    return p


def default_book_name(topo: Topology) -> str:
    """The segment name used when a process is started by hand without ``--book``."""
    return f"zmqtrade_hand_{topo.name}"


def prctl(option: int, value: int) -> bool:
    """Linux prctl(2) for this process; False where it is not available."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value) == 0
    except (OSError, AttributeError):
        return False


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when the launcher dies, so a killed launcher leaves no orphans."""
    if not parent_pid or not prctl(PR_SET_PDEATHSIG, signal.SIGTERM):
        return
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def serve(cls: type[Service], argv: Sequence[str] | None = None) -> int:
    """Run one component process to completion; returns its exit status."""
    args = arg_parser(cls.kind).parse_args(argv)
    name = args.name or cls.kind
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT, datefmt=LOG_DATEFMT)
    log = logging.getLogger(f"zmqtrade.{name}")
    try:
        topo = topology.load(args.topology, check_files=False)  # its own files: it says when it reads them
    except topology.TopologyError as exc:
        print(exc, file=sys.stderr)
        return 2
    if name not in topo.process_names() or topo.kind_of(name) != cls.kind:
        print(f"{args.topology}: no {cls.kind} named {name!r} in this topology", file=sys.stderr)
        return 2
    args.run_dir = Path(args.run_dir)
    args.book = args.book or default_book_name(topo)
    clock.set_offset(args.clock_offset)
    placement.normal_this_thread()  # the launcher runs under SCHED_BATCH; its children must not
    cpus = topo.cpus_of(name, os.sched_getaffinity(0))
    if cpus:  # before the context exists: libzmq's I/O thread inherits the mask
        placement.pin(cpus)

    ctx = zmq.Context()
    svc = cls(topo, name, args, ctx)
    signal.signal(signal.SIGTERM, lambda *_: svc.request_stop())
    signal.signal(signal.SIGINT, lambda *_: svc.request_stop())
    _die_with_parent(args.parent_pid)
    svc.link = control.ControlLink(ctx, args.control, name)
    try:
        svc.security = security.for_process(topo, name, ctx)
        bound = svc.open()
        if topo.tuning.io_threads == "batch":  # the sockets exist, so the I/O thread does
            placement.batch_io_threads(ctx.get(zmq.IO_THREADS))
        svc.await_ready(time.monotonic() + READY_TIMEOUT_S)
        # Everything made so far (modules, topology, sockets) lives for the whole run: move it out
        # of the cyclic collector's reach so full collections stay short on the hot path.
        gc.collect()
        gc.freeze()
        svc.link.send(control.READY, {"pid": os.getpid(), "endpoints": bound, **placement.describe()})
        log.info("ready (pid %d)%s", os.getpid(), "".join(f" {k}={v}" for k, v in bound.items()))
        if svc._wait_start():
            svc.running = True
            svc.run()
        svc.link.send(control.STATS, svc.stats())
        log.info("done: %s", " ".join(f"{k}={v}" for k, v in svc.counters.items()))
        return 0
    except Stopped as exc:
        log.info("stopped while %s", exc)
        return 0
    except TimeoutError as exc:
        if svc.stopping:  # told to stop while waiting for a publisher (the run ended meanwhile)
            log.info("stopped before ready")
            return 0
        log.error("not ready within %.0f s: %s", READY_TIMEOUT_S, exc)
        return 1
    except zmq.ZMQError as exc:
        if exc.errno == errno.EADDRINUSE:
            mine = [f"{k}={topo.bind_endpoint(k)}" for k, kind in topology.BINDERS.items() if kind == cls.kind]
            log.error("cannot bind %s: address already in use (another run, or another program, holds the "
                      "port); give another port, or tcp://127.0.0.1:* to let the OS pick one", " or ".join(mine))
        else:
            log.error("socket error while starting: %s", exc)
        return 1
    except ResourceError as exc:  # a book or journal we must not run on (or write to); the message says why
        log.error("%s: %s", "stopped" if svc.running else "cannot start", exc)
        return 1
    except security.SecurityError as exc:
        log.error("cannot load CURVE keys: %s", exc)
        return 2
    finally:
        svc.release()
        svc.link.close()
        ctx.term()
