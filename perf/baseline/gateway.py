"""Classic gateway: a plain TCP server that streams newline-delimited JSON price ticks.

Imitates zmqtrade's gateway (XPUB prices, open-loop pacing): tick ``k`` is due at
``t0 + k / rate``, carries that due time as ``ts_ns``, the process ``time.sleep``s until the next
due time and, when behind, sends everything already due in one ``sendall``. Symbols take turns
(so ``rate`` is the total) and prices follow a seeded random walk. Sends the ``rate * duration_s``
ticks (giving up on any still owed 0.5 s after the end), then shuts down its side: EOF.
"""
from __future__ import annotations

import json
import random
import socket
import time

from .common import nodelay, serve_one

MAX_BATCH = 4096
LATE_LIMIT_NS = 500_000_000
"""Ticks still unsent this long after ``duration_s`` (an overloaded run) are dropped, not sent."""
SEND_TIMEOUT_S = 2.0
"""A ``sendall`` blocked this long (the orderbook stopped reading) ends the stream."""


def main(q, start, rate: float, duration_s: float, syms: list[str], seed: int) -> dict:
    conn = serve_one(q, "gateway")
    with conn:
        nodelay(conn)
        conn.settimeout(SEND_TIMEOUT_S)
        if not start.wait(15.0):
            raise RuntimeError("no start signal")
        return _stream(conn, rate, duration_s, syms, seed)


def _stream(conn: socket.socket, rate: float, duration_s: float, syms: list[str], seed: int) -> dict:
    rng = random.Random(seed)
    mids = [100.0 + 10.0 * i for i in range(len(syms))]
    nsym = len(syms)
    total = int(round(rate * duration_s))
    period_ns = 1e9 / rate
    t0 = time.monotonic_ns()
    end_ns = t0 + int(duration_s * 1e9)  # every tick is due before this
    dumps = json.dumps
    k = 0
    max_late_ns = 0
    try:
        while k < total:
            now = time.monotonic_ns()
            if now >= end_ns + LATE_LIMIT_NS:  # overloaded: give up on the ticks still owed
                break
            due = min(total, int((now - t0) / period_ns) + 1, k + MAX_BATCH)
            if due > k:
                max_late_ns = max(max_late_ns, now - (t0 + int(k * period_ns)))
                lines = []
                for j in range(k, due):
                    i = j % nsym
                    mid = max(1.0, mids[i] + rng.choice((-0.01, 0.0, 0.01)))
                    mids[i] = mid
                    bid, ask = round(mid - 0.01, 2), round(mid + 0.01, 2)
                    lines.append(dumps({"seq": j + 1, "symbol": syms[i], "bid": bid, "ask": ask,
                                        "last": rng.choice((bid, ask)), "size": rng.randint(1, 10) * 100,
                                        "ts_ns": t0 + int(j * period_ns)}))
                lines.append("")
                conn.sendall("\n".join(lines).encode())
                k = due
                continue
            delay = (t0 + k * period_ns - time.monotonic_ns()) / 1e9
            if delay > 0:
                time.sleep(delay)
        conn.shutdown(socket.SHUT_WR)  # EOF tells the orderbook the stream is over
    except (socket.timeout, OSError):
        pass
    return {"ticks_published": k, "gateway_max_late_us": round(max_late_ns / 1e3, 1)}
