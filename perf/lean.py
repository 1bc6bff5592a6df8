"""The lean chain: zmqtrade's four hops and nothing else, the measuring stick for per-tick cost.

    python -m perf.lean [--rate 10000] [--seconds 6] [--transport tcp|ipc] [--wake zmq|pipe]

::

    gateway    PUB one tick per message (msgpack array, stamped when made), paced open loop
    orderbook  SUB, blocking recv, seqlock write into shared memory, one-byte doorbell per tick
    strategy   zmq.Poller over the doorbell and a DEALER; per doorbell byte: seqlock read, one order
    ordermgr   ROUTER, decode, ack echoing the order's stamps; the strategy records tick -> ack

No supervision, journal, risk, histograms, progress reports or control socket: whatever
zmqtrade costs beyond this chain is the price of what it adds, which is what
perf/ANALYSIS.md budgets. ``wake="pipe"`` swaps the ZeroMQ doorbell for a pipe polled beside
the DEALER, to measure a same-host wake-up that skips libzmq's I/O threads.

Latency is reported two ways: from the tick's creation (as the reference chain in
``shared/reference/chain`` stamps it) and from its scheduled time (as zmqtrade stamps it,
so the gateway's own lag counts). Processes are forked; readiness is the XPUB subscription
notifications, not sleeps.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import msgpack
import zmq

from perf import procstat

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"]
SLOT_WORDS = 8                # seq, bid, ask, last, tick seq, tick made ts, tick scheduled ts, write ts
HOPS = {"tick_to_ack": (1, 0), "scheduled_to_ack": (2, 0), "tick_to_book": (1, 3), "book_to_decision": (3, 4),
        "order_to_om": (4, 5), "om_process": (5, 6), "reply_to_strategy": (6, 0)}
"""Latency series as (from, to) columns of the strategy's rows: ack, made, due, write, send, om recv, om send."""
ROW = 7
END = b"E"
NAMES = ("gateway", "orderbook", "strategy", "ordermgr")
READY_TIMEOUT_S = 15.0
now_ns = time.monotonic_ns


@dataclass(frozen=True)
class Tweaks:
    """Ideas tried on the chain itself, to learn what each is worth with nothing else around."""

    cpus: dict[str, frozenset[int]] | None = None
    """Pin each process (its I/O thread with it) to these CPUs."""
    io_batch: bool = False
    """Run libzmq's I/O threads under SCHED_BATCH (woken, they do not preempt their waker)."""
    spin_us: int = 0
    """The strategy polls without sleeping this long before it blocks (an Aeron-style idle strategy)."""


TWEAKS = Tweaks()


def _ctx() -> zmq.Context:
    ctx = zmq.Context()
    if TWEAKS.io_batch:  # applied by libzmq when it starts the I/O thread
        ctx.set(zmq.THREAD_SCHED_POLICY, os.SCHED_BATCH)
    return ctx


def _gateway(q: Any, go: Any, ep: str, rate: float, seconds: float) -> None:
    ctx = _ctx()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.setsockopt(zmq.SNDHWM, 1_000_000)
    pub.bind(ep)
    q.put(("bound", "gateway", pub.getsockopt(zmq.LAST_ENDPOINT).decode()))
    pub.recv()  # the orderbook's subscription: it is connected and will see the first tick
    q.put(("ready", "gateway", None))
    go.wait()
    pack = msgpack.Packer().pack
    n = int(rate * seconds)
    period = 1e9 / rate
    nsym = len(SYMBOLS)
    price = [100.0 + i for i in range(nsym)]
    lag = array("q", bytes(8 * n))
    t0 = now_ns() + 1_000_000
    sleep = time.sleep
    for i in range(n):
        due = t0 + int(i * period)
        t = now_ns()
        if t < due:
            sleep((due - t) / 1e9)
        k = i % nsym
        price[k] += 0.01 if (i * 2654435761) & 4 else -0.01
        p = round(price[k], 2)
        made = now_ns()
        pub.send(pack((i + 1, SYMBOLS[k], p - 0.01, p + 0.01, p, 100, made, due)))
        lag[i] = made - due
    pub.send(END)
    q.put(("stats", "gateway", {"sent": n, "elapsed_s": (now_ns() - t0) / 1e9, "lag": lag.tobytes()}))
    pub.close()
    ctx.term()


def _orderbook(q: Any, ep_ticks: str, ep_bell: str | None, bell_fd: int | None, shm_name: str) -> None:
    shm = shared_memory.SharedMemory(name=shm_name)
    u, f = shm.buf.cast("Q"), shm.buf.cast("d")
    index = {s: i for i, s in enumerate(SYMBOLS)}
    ctx = _ctx()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1_000_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(ep_ticks)
    bell = None
    if ep_bell is not None:
        bell = ctx.socket(zmq.XPUB)
        bell.setsockopt(zmq.LINGER, 1000)
        bell.setsockopt(zmq.SNDHWM, 1_000_000)
        bell.bind(ep_bell)
        q.put(("bound", "orderbook", bell.getsockopt(zmq.LAST_ENDPOINT).decode()))
        bell.recv()  # the strategy's subscription
    q.put(("ready", "orderbook", None))
    bells = [bytes([k]) for k in range(len(SYMBOLS))]
    unpackb = msgpack.unpackb
    got = gaps = 0
    last = 0
    while True:
        m = sub.recv()
        if m == END:
            break
        seq, sym, bid, ask, px, size, made, due = unpackb(m)
        k = index[sym]
        b = k * SLOT_WORDS
        s = u[b]
        u[b] = s + 1  # odd: being written
        f[b + 1] = bid
        f[b + 2] = ask
        f[b + 3] = px
        u[b + 4] = seq
        u[b + 5] = made
        u[b + 6] = due
        u[b + 7] = now_ns()
        u[b] = s + 2  # even: consistent
        if bell is not None:
            bell.send(bells[k])
        else:
            os.write(bell_fd, bells[k])  # type: ignore[arg-type]
        got += 1
        gaps += seq - last - 1
        last = seq
    if bell is not None:
        bell.send(END)
    else:
        os.write(bell_fd, END)  # type: ignore[arg-type]
    q.put(("stats", "orderbook", {"got": got, "gaps": gaps}))
    del u, f
    shm.close()
    sub.close()
    if bell is not None:
        bell.close()
    ctx.term()


def _strategy(q: Any, ep_bell: str | None, bell_fd: int | None, ep_orders: str, shm_name: str) -> None:
    shm = shared_memory.SharedMemory(name=shm_name)
    u, f = shm.buf.cast("Q"), shm.buf.cast("d")
    ctx = _ctx()
    poller = zmq.Poller()
    bell = None
    if ep_bell is not None:
        bell = ctx.socket(zmq.SUB)
        bell.setsockopt(zmq.LINGER, 0)
        bell.setsockopt(zmq.RCVHWM, 1_000_000)
        bell.setsockopt(zmq.SUBSCRIBE, b"")
        bell.connect(ep_bell)
        poller.register(bell, zmq.POLLIN)
    else:
        poller.register(bell_fd, zmq.POLLIN)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 1000)
    dealer.setsockopt(zmq.SNDHWM, 1_000_000)
    dealer.setsockopt(zmq.RCVHWM, 1_000_000)
    dealer.connect(ep_orders)
    poller.register(dealer, zmq.POLLIN)
    q.put(("ready", "strategy", None))
    pack, unpackb = msgpack.Packer().pack, msgpack.unpackb
    NB, Again = zmq.NOBLOCK, zmq.Again
    rows = array("q")  # per ack: ack, made, due, write, send, om recv, om send
    orders = acks = retries = 0
    cid = 0
    side = "BUY"
    ended = False
    deadline = 0.0

    def act(k: int) -> None:
        nonlocal orders, cid, side, retries
        b = k * SLOT_WORDS
        while True:
            s = u[b]
            if not s & 1:
                bid, ask, made, due, written = f[b + 1], f[b + 2], u[b + 5], u[b + 6], u[b + 7]
                if u[b] == s:
                    break
            retries += 1
        cid += 1
        side = "SELL" if side == "BUY" else "BUY"
        dealer.send(pack((cid, "lean", SYMBOLS[k], side, 1, ask if side == "BUY" else bid, made, due, written,
                          now_ns())))
        orders += 1

    spin_ns = TWEAKS.spin_us * 1000
    while not ended or (acks < orders and time.monotonic() < deadline):
        events = poller.poll(0) if spin_ns else None
        if not events and spin_ns:
            until = now_ns() + spin_ns
            while not events and now_ns() < until:
                events = poller.poll(0)
        for sock, _ in events or poller.poll(1000):
            if sock is dealer:
                while True:
                    try:
                        m = dealer.recv(NB)
                    except Again:
                        break
                    rows.append(now_ns())
                    rows.extend(unpackb(m)[1:])
                    acks += 1
            else:
                if bell is not None:
                    data = bytearray()
                    while True:
                        try:
                            data += bell.recv(NB)
                        except Again:
                            break
                else:
                    data = os.read(bell_fd, 65536)  # type: ignore[arg-type]
                for k in data:
                    if k == END[0]:
                        ended = True
                        deadline = time.monotonic() + 3.0
                        break
                    act(k)
    dealer.send(END)
    q.put(("stats", "strategy", {"orders": orders, "acks": acks, "retries": retries,
                                 "rows": rows.tobytes()}))
    del u, f
    shm.close()
    if bell is not None:
        bell.close()
    dealer.close()
    ctx.term()


def _ordermgr(q: Any, ep: str) -> None:
    ctx = _ctx()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 1000)
    router.setsockopt(zmq.SNDHWM, 1_000_000)
    router.setsockopt(zmq.RCVHWM, 1_000_000)
    router.bind(ep)
    q.put(("bound", "ordermgr", router.getsockopt(zmq.LAST_ENDPOINT).decode()))
    q.put(("ready", "ordermgr", None))
    pack, unpackb = msgpack.Packer().pack, msgpack.unpackb
    n = 0
    while True:
        ident, body = router.recv_multipart()
        t = now_ns()
        if body == END:
            break
        cid, _, _, _, _, _, made, due, written, sent = unpackb(body)
        router.send_multipart([ident, pack((cid, made, due, written, sent, t, now_ns()))])
        n += 1
    q.put(("stats", "ordermgr", {"acked": n}))
    router.close()
    ctx.term()


def _child(fn: Any, q: Any, release: Any, tweaks: Tweaks, *args: Any) -> None:
    global TWEAKS
    TWEAKS = tweaks
    cpus = (tweaks.cpus or {}).get(fn.__name__.strip("_"))
    if cpus:
        os.sched_setaffinity(0, cpus)  # before the context: libzmq's I/O thread inherits it
    try:
        fn(_Outbox(q, release), *args)
    except BaseException as exc:  # reported, so the parent fails at once instead of timing out
        q.put(("error", fn.__name__, repr(exc)))
        raise


class _Outbox:
    """A child's side of the queue: its stats go out, then it holds on (threads and all) until
    the parent has read every process's /proc figures for the window."""

    def __init__(self, q: Any, release: Any) -> None:
        self.q, self.release = q, release

    def put(self, item: tuple[str, str, Any]) -> None:
        self.q.put(item)
        if item[0] == "stats":
            self.release.wait(30)


def percentiles_us(samples: array) -> dict[str, float]:
    """Nearest-rank p50/p90/p99/p999/max of nanosecond samples, in microseconds."""
    s = sorted(samples)
    if not s:
        return {k: math.nan for k in ("p50", "p90", "p99", "p999", "max")}
    def at(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))] / 1000
    return {"p50": at(50), "p90": at(90), "p99": at(99), "p999": at(99.9), "max": s[-1] / 1000, "count": len(s)}


class Inbox:
    """What the children put on the queue, kept by (kind, name) until asked for."""

    def __init__(self, q: Any, procs: dict[str, Any]) -> None:
        self.q, self.procs = q, procs
        self.got: dict[tuple[str, str], Any] = {}

    def wait(self, kind: str, names: set[str], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while missing := {n for n in names if (kind, n) not in self.got}:
            try:
                k, name, payload = self.q.get(timeout=max(0.01, min(0.25, deadline - time.monotonic())))
            except queue.Empty:
                dead = sorted(n for n in missing if self.procs.get(n) is not None and self.procs[n].exitcode is not None)
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(f"lean chain: no {kind} from {sorted(missing)}"
                                       + (f" ({', '.join(dead)} exited)" if dead else "")) from None
                continue
            if k == "error":
                raise RuntimeError(f"lean chain {name} failed: {payload}")
            self.got[(k, name)] = payload
        return {n: self.got[(kind, n)] for n in names}


def hold_pm_qos() -> int | None:
    """Hold /dev/cpu_dma_latency at 0 while the returned fd stays open (None: not permitted here),
    as zmqtrade's ``tuning.cpu_dma_latency_us: 0`` does, so both chains can run on equal terms."""
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError:
        return None
    os.write(fd, (0).to_bytes(4, sys.byteorder))
    return fd


def run(rate: float, seconds: float, transport: str = "tcp", wake: str = "zmq", pm_qos: bool = False,
        tweaks: Tweaks = TWEAKS) -> dict[str, Any]:
    """Run the chain once, one order per tick; its latency, loss and per-process CPU figures."""
    if transport not in ("tcp", "ipc") or wake not in ("zmq", "pipe"):
        raise ValueError("transport is tcp or ipc, wake is zmq or pipe")
    mpc = mp.get_context("fork")
    q = mpc.Queue()
    go, release = mpc.Event(), mpc.Event()
    tmp = tempfile.mkdtemp(prefix="zmqtrade-lean-")

    def ep(name: str) -> str:
        return f"ipc://{tmp}/{name}" if transport == "ipc" else "tcp://127.0.0.1:*"

    shm = shared_memory.SharedMemory(name=f"zmqtrade_{os.getpid()}_lean", create=True,
                                     size=len(SYMBOLS) * SLOT_WORDS * 8)
    rfd = wfd = None
    if wake == "pipe":
        rfd, wfd = os.pipe()
    procs: dict[str, Any] = {}
    inbox = Inbox(q, procs)
    qos = hold_pm_qos() if pm_qos else None

    def spawn(name: str, fn: Any, *args: Any) -> None:
        procs[name] = p = mpc.Process(target=_child, args=(fn, q, release, tweaks, *args), name=f"lean-{name}", daemon=True)
        p.start()

    try:
        spawn("gateway", _gateway, go, ep("ticks"), rate, seconds)
        spawn("ordermgr", _ordermgr, ep("orders"))
        bound = inbox.wait("bound", {"gateway", "ordermgr"}, READY_TIMEOUT_S)
        spawn("orderbook", _orderbook, bound["gateway"], ep("bell") if wake == "zmq" else None, wfd, shm.name)
        if wake == "zmq":
            bound.update(inbox.wait("bound", {"orderbook"}, READY_TIMEOUT_S))
        spawn("strategy", _strategy, bound.get("orderbook"), rfd, bound["ordermgr"], shm.name)
        for fd in (rfd, wfd):
            if fd is not None:
                os.close(fd)  # the children hold their ends
        rfd = wfd = None
        inbox.wait("ready", set(NAMES), READY_TIMEOUT_S)
        pids = {n: p.pid for n, p in procs.items()}
        before = procstat.snapshot(pids)
        go.set()
        stats = inbox.wait("stats", set(NAMES), seconds + 30)
        after = procstat.snapshot(pids)  # every process is done and waiting: the window's cost, whole
        release.set()
        elapsed = stats["gateway"]["elapsed_s"]
    finally:
        release.set()
        if qos is not None:
            os.close(qos)
        for p in procs.values():
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
        for fd in (rfd, wfd):
            if fd is not None:
                os.close(fd)
        q.close()
        q.join_thread()
        shm.close()
        shm.unlink()
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)
    st = stats["strategy"]
    rows, lag = array("q"), array("q")
    rows.frombytes(st["rows"])
    lag.frombytes(stats["gateway"]["lag"])
    cols = [rows[i::ROW] for i in range(ROW)]
    hops = {name: percentiles_us(array("q", map(int.__sub__, cols[b], cols[a]))) for name, (a, b) in HOPS.items()}
    sent = stats["gateway"]["sent"]
    cost = procstat.cost(before, after, sent, elapsed)
    return {
        "rate": rate, "seconds": seconds, "transport": transport, "wake": wake, "pm_qos": qos is not None,
        "achieved_rate": sent / stats["gateway"]["elapsed_s"],
        "sent": sent, "applied": stats["orderbook"]["got"], "gaps": stats["orderbook"]["gaps"],
        "orders": st["orders"], "acks": st["acks"], "seqlock_retries": st["retries"],
        "tick_to_ack_us": hops["tick_to_ack"], "scheduled_to_ack_us": hops["scheduled_to_ack"],
        "hops_us": hops, "gateway_lag_us": percentiles_us(lag),
        "cpu_total": round(sum(c["cpu_pct"] for c in cost.values()), 1),
        "cost": cost,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--transport", choices=("tcp", "ipc"), default="tcp")
    p.add_argument("--wake", choices=("zmq", "pipe"), default="zmq")
    p.add_argument("--pm-qos", action="store_true", help="hold /dev/cpu_dma_latency at 0 for the run")
    p.add_argument("--cpus", default="", help="placement, e.g. gateway=0,orderbook=0,strategy=1,ordermgr=1")
    p.add_argument("--io-batch", action="store_true", help="libzmq I/O threads under SCHED_BATCH")
    p.add_argument("--spin-us", type=int, default=0, help="the strategy polls this long before it blocks")
    a = p.parse_args(argv)
    cpus = {k: frozenset({int(v)}) for k, v in (kv.split("=") for kv in a.cpus.split(",") if kv)}
    r = run(a.rate, a.seconds, a.transport, a.wake, a.pm_qos, Tweaks(cpus or None, a.io_batch, a.spin_us))
    lat, sched = r["tick_to_ack_us"], r["scheduled_to_ack_us"]
    print(f"lean chain {a.rate:,.0f}/s {a.transport} {a.wake} doorbell: tick->ack p50 {lat['p50']:.0f} p99 "
          f"{lat['p99']:.0f} p999 {lat['p999']:.0f} us (from scheduled time: p50 {sched['p50']:.0f} p99 "
          f"{sched['p99']:.0f}); acks {r['acks']}/{r['sent']}, gaps {r['gaps']}, cpu {r['cpu_total']:.0f}%")
    print("  " + "  ".join(f"{k} {v['p50']:.0f}/{v['p99']:.0f}" for k, v in r["hops_us"].items()))
    print(procstat.table(r["cost"]))
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
