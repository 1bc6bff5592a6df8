"""CPU cost of one message, ZeroMQ against a raw TCP socket, at a paced rate.

    python -m perf.transport [--quick]

Explains most of the stack's CPU: a ZeroMQ message crosses the sender's and the receiver's
I/O threads (two thread wake-ups a side), where a raw socket is one syscall a side. Both
ends live in this process; CPU is the process's (all threads) per message sent.
"""
from __future__ import annotations

import argparse
import os
import socket
import time

import zmq

from perf.timing import row


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def paced(send, recv, n: int, gap_s: float) -> float:
    """CPU ns per message for ``n`` messages ``gap_s`` apart."""
    c0 = cpu_s()
    next_t = time.monotonic()
    for _ in range(n):
        send()
        recv()
        next_t += gap_s
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return (cpu_s() - c0) / n * 1e9


def zmq_pair(ctx: zmq.Context) -> tuple[zmq.Socket, zmq.Socket]:
    a = ctx.socket(zmq.PAIR)
    a.bind("tcp://127.0.0.1:*")
    b = ctx.socket(zmq.PAIR)
    b.connect(a.getsockopt(zmq.LAST_ENDPOINT).decode())
    return a, b


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    b = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    srv.close()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n = 1500 if args.quick else 5000
    body = b"x" * 48
    out: dict[str, float] = {}
    print(f"CPU per 48-byte message, sender and receiver in one process, {n} messages per point")
    ctx = zmq.Context()
    za, zb = zmq_pair(ctx)
    ta, tb = tcp_pair()
    try:
        for rate in (1000, 10_000):
            gap = 1.0 / rate
            raw = paced(lambda: ta.sendall(body), lambda: tb.recv(65536), n, gap)
            zm = paced(lambda: za.send(body), lambda: zb.recv(), n, gap)
            print(row(f"raw TCP socket at {rate:,}/s (baseline)", raw, 0))
            print(row(f"ZeroMQ PAIR over tcp at {rate:,}/s", zm, 0, raw))
            out[f"raw_{rate}"], out[f"zmq_{rate}"] = raw, zm
    finally:
        for s in (za, zb):
            s.close(0)
        ctx.term()
        ta.close()
        tb.close()
    return out


if __name__ == "__main__":
    main()
