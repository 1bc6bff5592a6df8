"""Runs the classic chain once: forks the four processes, paces readiness, samples them, cleans up.

Imitates zmqtrade's launcher, the classic way: ``multiprocessing`` with the ``fork`` context, so
the ``Lock``, the ``Event``s and the shared-memory book are simply inherited. Readiness uses no
sleeps: the gateway and the ordermanager report their OS-picked ports on a ``Queue`` before the
orderbook and the strategy are forked to connect to them, those two report ``ready`` once
connected, and only then the ``start`` Event releases the stream. Every child reports its stats on
the same ``Queue``. Whatever happens, ``finally`` reaps every process (terminate, then kill),
closes and unlinks the shared memory and removes the temp dir holding the journal.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import shutil
import socket
import tempfile
import time
import traceback
from multiprocessing import shared_memory

import psutil

from . import gateway, orderbook, ordermanager, strategy
from .common import DRAIN_S, NCOLS, symbols

NAMES = ("gateway", "orderbook", "strategy", "ordermanager")
SAMPLE_S = 0.25
READY_TIMEOUT_S = 15.0


def _child(name: str, q, close: list, fn, *args) -> None:
    for s in close:  # fork copies every fd: drop the socketpair end that belongs to the peer
        s.close()
    try:
        stats = fn(q, *args)
    except BaseException:
        q.put(("error", name, traceback.format_exc()))
        raise
    q.put(("stats", name, stats))


def _await(q, want: set[str], procs: dict, kind: str, deadline: float) -> dict:
    """Messages of ``kind`` from every process in ``want``: {name: payload}. Raises on a child error."""
    got: dict = {}
    dead: set[str] = set()
    while want - got.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"no {kind} from {sorted(want - got.keys())}")
        try:
            k, name, payload = q.get(timeout=min(left, 0.25))
        except queue.Empty:
            missing = want - got.keys()
            if dead & missing:  # still nothing a full wait after they exited (a child flushes its puts at exit)
                raise RuntimeError(f"{sorted(dead & missing)} exited before sending {kind}") from None
            dead = {n for n in missing if procs[n].exitcode is not None}
            continue
        if k == "error":
            raise RuntimeError(f"baseline {name} failed:\n{payload}")
        if k == kind:
            got[name] = payload
    return got


def run(rate: float, duration_s: float, mode: str = "event", n_symbols: int = 6, seed: int = 1) -> dict:
    """Run the classic chain once; return its figures."""
    if mode not in ("poll", "event"):
        raise ValueError(f"mode must be 'poll' or 'event', not {mode!r}")
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration_s must be > 0")
    if not 1 <= n_symbols <= 255:  # event notifications are one byte per tick
        raise ValueError("n_symbols must be in 1..255")
    ctx = mp.get_context("fork")
    syms = symbols(n_symbols)
    q = ctx.Queue()
    start, book_done, lock = ctx.Event(), ctx.Event(), ctx.Lock()
    procs: dict[str, mp.Process] = {}
    pair: tuple[socket.socket, ...] = ()
    shm = tmpdir = None
    ok = False
    t_begin = time.monotonic()

    def spawn(name: str, fn, *args, close: list = ()) -> None:
        p = ctx.Process(target=_child, args=(name, q, list(close), fn, *args), name=f"baseline-{name}", daemon=True)
        p.start()
        procs[name] = p

    try:
        tmpdir = tempfile.mkdtemp(prefix="zmqtrade_baseline_")
        journal = os.path.join(tmpdir, "journal.jsonl")
        shm = shared_memory.SharedMemory(name=f"zmqtrade_{os.getpid()}_baseline_{secrets.token_hex(4)}",
                                         create=True, size=n_symbols * NCOLS * 8)  # zero-filled
        spawn("gateway", gateway.main, start, rate, duration_s, syms, seed)
        spawn("ordermanager", ordermanager.main, start, lock, shm, syms, journal, duration_s)
        ports = _await(q, {"gateway", "ordermanager"}, procs, "ready", time.monotonic() + READY_TIMEOUT_S)
        ob_end = st_end = None
        if mode == "event":
            pair = ob_end, st_end = socket.socketpair()
        spawn("orderbook", orderbook.main, start, book_done, lock, shm, syms, ports["gateway"], ob_end,
              duration_s, close=[st_end] if st_end else [])
        spawn("strategy", strategy.main, start, book_done, lock, shm, syms, ports["ordermanager"], st_end,
              mode, duration_s, close=[ob_end] if ob_end else [])
        for s in pair:
            s.close()  # only the orderbook and the strategy hold the ends now (EOF works)
        _await(q, {"orderbook", "strategy"}, procs, "ready", time.monotonic() + READY_TIMEOUT_S)

        ps = {n: psutil.Process(procs[n].pid) for n in NAMES}
        for proc in ps.values():
            proc.cpu_percent(None)  # prime: the first reading is always 0
        cpu: dict[str, list[float]] = {n: [] for n in NAMES}
        rss = {n: 0 for n in NAMES}
        start.set()
        t0 = time.monotonic()
        for k in range(1, max(1, int(duration_s / SAMPLE_S)) + 1):
            time.sleep(max(0.0, t0 + k * SAMPLE_S - time.monotonic()))
            for n, proc in ps.items():
                try:
                    cpu[n].append(proc.cpu_percent(None))
                    rss[n] = max(rss[n], proc.memory_info().rss)
                except psutil.Error:
                    pass
            if any(p.exitcode is not None for p in procs.values()):
                break  # a child ended (or failed) early: go collect

        stats = _await(q, set(NAMES), procs, "stats", t0 + duration_s + DRAIN_S + 2.0)
        with open(journal, "rb") as f:
            journal_lines = sum(1 for _ in f)
        ok = True
    finally:
        for s in pair:
            s.close()
        join_by = time.monotonic() + (1.0 if ok else 0.0)  # on an error, terminate at once
        for p in procs.values():
            p.join(timeout=max(0.0, join_by - time.monotonic()))
        for p in procs.values():
            if p.is_alive():
                p.terminate()
                p.join(timeout=1.0)
            if p.is_alive():
                p.kill()
                p.join()
        q.close()
        q.join_thread()
        if shm is not None:
            shm.close()
            shm.unlink()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)

    gw, ob, st, om = (stats[n] for n in NAMES)
    cpu_mean = {n: round(sum(v) / len(v), 1) if v else 0.0 for n, v in cpu.items()}
    return {
        "impl": "baseline", "mode": mode, "rate": rate, "duration_s": duration_s, "n_symbols": n_symbols,
        "ticks_published": gw["ticks_published"],
        "ticks_applied": ob["ticks_applied"],
        "tick_gaps": ob["tick_gaps"],
        "orders_sent": st["orders_sent"],
        "orders_acked": st["orders_acked"],
        "orders_filled": om["orders_filled"],
        "orders_rejected": om["orders_rejected"],
        "orders_unanswered": st["orders_unanswered"],
        "journal_lines": journal_lines,
        "tick_to_ack_us": st["tick_to_ack_us"],
        "cpu_percent": cpu_mean,
        "cpu_total": round(sum(cpu_mean.values()), 1),
        "rss_bytes": rss,
        "strategy_wakeups": st["wakeups"],
        "gateway_max_late_us": gw["gateway_max_late_us"],
        "wall_s": round(time.monotonic() - t_begin, 2),
    }
