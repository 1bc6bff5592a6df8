"""Shared bits of the classic baseline: the book layout, symbols, line framing, percentiles.

Imitates the usual student layout: one ``(n_symbols, 8)`` float64 numpy array in
``multiprocessing.shared_memory``, one row per symbol, every access guarded by one
``multiprocessing.Lock``.
"""
from __future__ import annotations

import socket
from multiprocessing import shared_memory

import numpy as np

HOST = "127.0.0.1"

# Book columns (float64 holds monotonic_ns exactly for ~104 days of uptime).
BID, ASK, LAST, SIZE, SEQ, TICK_TS, WRITE_TS, UPDATES = range(8)
NCOLS = 8

DRAIN_S = 2.0
"""Hard limit for draining after the run: every child gives up this long after ``duration_s``."""

_NAMES = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "ORCL", "INTC", "AMD"]


def symbols(n: int) -> list[str]:
    return [_NAMES[i] if i < len(_NAMES) else f"SYM{i}" for i in range(n)]


def book_view(shm: shared_memory.SharedMemory, n_symbols: int) -> np.ndarray:
    return np.ndarray((n_symbols, NCOLS), dtype=np.float64, buffer=shm.buf)


def nodelay(sock: socket.socket) -> socket.socket:
    """Small request/response messages: disable Nagle, as ZeroMQ does for its TCP transport."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def serve_one(q, name: str) -> socket.socket:
    """Listen on an OS-picked loopback port, report it on ``q`` as ready, accept one client."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, 0))
        srv.listen(1)
        q.put(("ready", name, srv.getsockname()[1]))
        srv.settimeout(15.0)
        conn, _ = srv.accept()
    finally:
        srv.close()
    return conn


def split_lines(buf: bytes, data: bytes) -> tuple[list[bytes], bytes]:
    """Append ``data`` to ``buf``; return the complete lines and the partial rest."""
    lines = (buf + data).split(b"\n")
    rest = lines.pop()
    return lines, rest


def summarize_us(samples_ns: list[int]) -> dict:
    """count, p50, p90, p99, p999 and max of nanosecond samples, in microseconds."""
    if not samples_ns:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    a = np.asarray(samples_ns, dtype=np.float64) / 1e3
    p50, p90, p99, p999 = np.percentile(a, [50, 90, 99, 99.9])
    return {"count": int(a.size), "p50": round(float(p50), 1), "p90": round(float(p90), 1),
            "p99": round(float(p99), 1), "p999": round(float(p999), 1), "max": round(float(a.max()), 1)}
