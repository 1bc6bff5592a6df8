"""Latency samples and their summary.

Each process records raw samples into a preallocated numpy buffer (an append is one index
store, cheaper on the hot path than bucketing into a histogram) and ships them to the
launcher at the end, which merges the processes' samples before taking percentiles.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


class LatencyRecorder:
    """An append-only buffer of nanosecond samples, bounded at ``cap`` (extra ones counted)."""

    __slots__ = ("_buf", "_n", "cap", "dropped")

    def __init__(self, initial: int = 65_536, cap: int = 4_000_000) -> None:
        self._buf = np.empty(initial, dtype=np.int64)
        self._n = 0
        self.cap = cap
        self.dropped = 0

    def record(self, ns: int) -> None:
        n = self._n
        if n == len(self._buf):
            if n >= self.cap:
                self.dropped += 1
                return
            self._buf = np.concatenate([self._buf, np.empty(min(n, self.cap - n), dtype=np.int64)])
        self._buf[n] = ns
        self._n = n + 1

    def __len__(self) -> int:
        return self._n

    def values(self) -> np.ndarray:
        return self._buf[: self._n]

    def tobytes(self) -> bytes:
        return self.values().astype("<i8").tobytes()


def from_bytes(chunks: Iterable[bytes]) -> np.ndarray:
    arrays = [np.frombuffer(c, dtype="<i8") for c in chunks if c]
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)


def summarize_us(samples_ns: np.ndarray) -> dict[str, float | int]:
    """count, mean, p50, p90, p99, p999 and max in microseconds (zeros when empty)."""
    out: dict[str, float | int] = {"count": int(len(samples_ns))}
    if len(samples_ns) == 0:
        out.update({k: 0.0 for k in ("mean", *PERCENTILES, "max")})
        return out
    us = samples_ns.astype(np.float64) / 1000.0
    out["mean"] = round(float(us.mean()), 1)
    for key, q in PERCENTILES.items():
        out[key] = round(float(np.percentile(us, q)), 1)
    out["max"] = round(float(us.max()), 1)
    return out
