"""CPU of one forwarding hop: a relay process between a sender and a receiver, ZeroMQ vs raw TCP.

    python -m perf.relay [--quick]

The driver paces 48-byte messages to the relay, which forwards each one; the figure is the
relay process's CPU (all its threads) per message. This is the per-hop cost a tick pays four
times on its way to an ack, and it is why ZeroMQ's hop (app thread -> I/O thread -> kernel ->
I/O thread -> app thread) costs more here than a raw socket's single syscall.
"""
from __future__ import annotations

import argparse
import select
import socket
import subprocess
import sys
import time

import psutil
import zmq

from perf.timing import row

BODY = b"x" * 48


def relay_zmq(src: str, dst: str) -> None:
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.connect(src)
    push.connect(dst)
    while True:
        pull.poll()
        while True:
            try:
                msg = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg == b"stop":
                return
            push.send(msg)


def relay_tcp(src: int, dst: int) -> None:
    i = socket.create_connection(("127.0.0.1", src))
    o = socket.create_connection(("127.0.0.1", dst))
    for s in (i, o):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        select.select([i], [], [])
        data = i.recv(1 << 16)
        if not data:
            return
        o.sendall(data)


def paced(send, drain, n: int, rate: float, relay_pid: int) -> float:
    """Relay CPU ns per message for ``n`` messages sent at ``rate`` per second."""
    proc = psutil.Process(relay_pid)
    c0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    got = 0
    for k in range(n):
        delay = t0 + k / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send()
        got += drain()
    deadline = time.monotonic() + 5
    while got < n and time.monotonic() < deadline:
        got += drain()
    return (sum(proc.cpu_times()[:2]) - c0) / n * 1e9


def run_zmq(n: int, rate: float) -> float:
    ctx = zmq.Context()
    out, back = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    out.bind("tcp://127.0.0.1:*")
    back.bind("tcp://127.0.0.1:*")
    eps = [s.getsockopt(zmq.LAST_ENDPOINT).decode() for s in (out, back)]
    relay = subprocess.Popen([sys.executable, "-m", "perf.relay", "--serve-zmq", *eps])
    try:
        out.send(BODY)
        back.recv()  # the relay is connected both ways

        def drain() -> int:
            k = 0
            while back.poll(0):
                back.recv()
                k += 1
            return k
        return paced(lambda: out.send(BODY), drain, n, rate, relay.pid)
    finally:
        out.send(b"stop")
        relay.wait(10)
        out.close(0)
        back.close(0)
        ctx.term()


def run_tcp(n: int, rate: float) -> float:
    out_srv = socket.create_server(("127.0.0.1", 0))
    back_srv = socket.create_server(("127.0.0.1", 0))
    relay = subprocess.Popen([sys.executable, "-m", "perf.relay", "--serve-tcp",
                              str(out_srv.getsockname()[1]), str(back_srv.getsockname()[1])])
    out, _ = out_srv.accept()
    back, _ = back_srv.accept()
    out_srv.close()
    back_srv.close()
    try:
        out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back.setblocking(False)

        def drain() -> int:
            try:
                return back.recv(1 << 16).count(b"x" * 48)
            except BlockingIOError:
                return 0
        return paced(lambda: out.sendall(BODY), drain, n, rate, relay.pid)
    finally:
        out.close()
        relay.wait(10)
        back.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--serve-zmq", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--serve-tcp", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_zmq:
        relay_zmq(*args.serve_zmq)
        return {}
    if args.serve_tcp:
        relay_tcp(*args.serve_tcp)
        return {}
    n = 10_000 if args.quick else 40_000
    print(f"CPU of a relay process per forwarded 48-byte message, {n} messages per point")
    out: dict[str, float] = {}
    for rate in (1000, 10_000):
        m = n if rate > 1000 else n // 10
        raw = run_tcp(m, rate)
        zm = run_zmq(m, rate)
        print(row(f"raw TCP relay at {rate:,}/s (baseline)", raw, 0))
        print(row(f"ZeroMQ PULL/PUSH relay at {rate:,}/s", zm, 0, raw))
        out[f"raw_{rate}"], out[f"zmq_{rate}"] = raw, zm
    return out


if __name__ == "__main__":
    main()
