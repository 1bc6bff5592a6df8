"""Latency histograms: cheap to record on the hot path, bounded in memory, mergeable.

A log-linear histogram of nanosecond values: exact below 256 ns, then 128 buckets per
power of two, so any value is kept to within 0.8% (1/128) of itself, up to ~36 minutes, in a
fixed 35 KB per series however long a run lasts. Merging processes' histograms is adding
counts. Measured per record (``python -m perf.recorder``): this ~200 ns, a preallocated numpy
buffer ~160 ns (but its memory grows with the run), the hdrhistogram package ~850 ns.

Processes only import the stdlib ``array`` for this; numpy (13 MB of RSS) is needed only by
the launcher, which summarises.
"""
from __future__ import annotations

from array import array
from typing import Iterable, Sequence

SUB_BITS = 7
EXACT = 1 << (SUB_BITS + 1)              # values below this have a bucket each
MAX_SHIFT = 33                           # 2**41 ns, about 36 minutes: anything above is clamped
SIZE = (MAX_SHIFT << SUB_BITS) + EXACT
TOP = (1 << (MAX_SHIFT + SUB_BITS + 1)) - 1
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
ORDER_HOPS = ("tick_to_ack", "tick_to_book", "book_to_decision", "order_rtt", "order_to_om", "om_process",
              "reply_to_strategy")
"""Latency series of tick-driven fills, measured by the strategy from the stamps an order and its
reply carry (docs/reference/counters.md)."""


class Histogram:
    """Counts per bucket of nanosecond values; ``record`` is the hot-path call (and :class:`Rows`)."""

    __slots__ = ("counts",)

    def __init__(self, counts: array | None = None) -> None:
        self.counts = counts if counts is not None else array("q", bytes(8 * SIZE))

    def record(self, ns: int) -> None:
        if ns < EXACT:
            self.counts[ns if ns > 0 else 0] += 1
        else:
            if ns > TOP:
                ns = TOP
            shift = ns.bit_length() - SUB_BITS - 1
            self.counts[(shift << SUB_BITS) + (ns >> shift)] += 1

    def __len__(self) -> int:
        return sum(self.counts)

    def tobytes(self) -> bytes:
        return self.counts.tobytes()

    @classmethod
    def frombytes(cls, data: bytes) -> "Histogram":
        counts = array("q")
        counts.frombytes(data)
        if len(counts) != SIZE:
            raise ValueError(f"histogram of {len(counts)} buckets, expected {SIZE}")
        return cls(counts)

    def merge(self, other: "Histogram") -> None:
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n


class Rows:
    """Histograms recorded together, a value each per row (the hops of one order). A row is
    appended raw to a buffer, and the buffer is binned ``batch`` rows at a time, one series
    after the other: in the strategy at 10k orders/s a record made among the process's other
    work cost ~0.5 us a value (cold caches), three times what the same arithmetic costs in a
    tight loop. The bucket arithmetic is :meth:`Histogram.record`'s, inline: a call per value
    would cost what the batching saves. A bin costs ~0.4 us a value however many rows it
    takes, and it holds up the process's next message: 64 rows of seven hops are a stall of
    ~0.2 ms, 1024 rows were ~3 ms, every ~100 ms at 10k orders/s (a p99 of its own). Read the
    histograms after :meth:`flush`."""

    __slots__ = ("_hists", "_buf", "_limit")

    def __init__(self, hists: Iterable[Histogram], batch: int = 64) -> None:
        self._hists = tuple(hists)
        self._buf = array("q")
        self._limit = batch * len(self._hists)

    def record(self, row: Sequence[int]) -> None:
        """One value per histogram, in their order."""
        buf = self._buf
        try:
            buf.extend(row)
        except OverflowError:  # beyond a signed 64-bit word (a hostile stamp): clamped, as a record would
            del buf[len(buf) - len(buf) % len(self._hists):]  # extend kept the values before the bad one
            buf.extend([min(max(ns, 0), TOP) for ns in row])
        if len(buf) >= self._limit:
            self.flush()

    def flush(self) -> None:
        buf, n = self._buf, len(self._hists)
        for k, hist in enumerate(self._hists):
            counts = hist.counts
            for ns in buf[k::n]:
                if ns < EXACT:
                    counts[ns if ns > 0 else 0] += 1
                else:
                    if ns > TOP:
                        ns = TOP
                    shift = ns.bit_length() - SUB_BITS - 1
                    counts[(shift << SUB_BITS) + (ns >> shift)] += 1
        del buf[:]


def bucket_bounds(index: int) -> tuple[int, int]:
    """The [low, high) nanosecond range bucket ``index`` holds."""
    if index < EXACT:
        return index, index + 1
    shift = (index >> SUB_BITS) - 1
    low = (index - (shift << SUB_BITS)) << shift
    return low, low + (1 << shift)


def points_us(hist: Histogram) -> list[list[float]]:
    """The non-empty buckets as [middle in us, count] pairs, for plots and comparisons."""
    out = []
    for i, n in enumerate(hist.counts):
        if n:
            low, high = bucket_bounds(i)
            out.append([round((low + high) / 2000.0, 3), n])
    return out


def merged(chunks: Iterable[bytes]) -> Histogram:
    total = Histogram()
    for chunk in chunks:
        if chunk:
            total.merge(Histogram.frombytes(chunk))
    return total


def summarize_us(hist: Histogram) -> dict[str, float | int]:
    """count, mean, p50, p90, p99, p999 and max in microseconds (zeros when empty).

    A percentile is the middle of the bucket it falls in (within 0.4%); max is the top of the
    highest bucket used.
    """
    import numpy as np  # the launcher only

    counts = np.frombuffer(hist.counts, dtype=np.int64)
    n = int(counts.sum())
    out: dict[str, float | int] = {"count": n}
    if n == 0:
        out.update({k: 0.0 for k in ("mean", *PERCENTILES, "max")})
        return out
    used = np.nonzero(counts)[0]
    bounds = np.array([bucket_bounds(int(i)) for i in used], dtype=np.float64)
    mids = bounds.mean(axis=1)
    weights = counts[used]
    cum = np.cumsum(weights)
    out["mean"] = round(float((mids * weights).sum() / n) / 1000, 1)
    for key, q in PERCENTILES.items():
        rank = max(1, int(np.ceil(q / 100.0 * n)))
        out[key] = round(float(mids[int(np.searchsorted(cum, rank))]) / 1000, 1)
    out["max"] = round(float(bounds[-1, 1]) / 1000, 1)
    return out
