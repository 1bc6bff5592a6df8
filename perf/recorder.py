"""Hot-path cost of recording one latency sample, by method.

    python -m perf.recorder [--quick]

zmqtrade's log-linear histogram (bounded memory) against a preallocated numpy buffer, a
stdlib array, and the hdrhistogram package when it is installed (``pip install hdrhistogram``).
"""
from __future__ import annotations

import argparse

import numpy as np

from perf.timing import per_op_ns, row
from zmqtrade.metrics import Histogram


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n, reps = (50_000, 5) if args.quick else (500_000, 9)
    values = [int(v) for v in np.random.default_rng(1).lognormal(12, 1, 4096)]

    def loop(record) -> object:
        def run(k: int) -> None:
            vs = values
            for i in range(k):
                record(vs[i & 4095])
        return run

    buf = np.empty(n + 1000, dtype=np.int64)
    pos = [0]

    def numpy_record(v: int) -> None:
        buf[pos[0] % len(buf)] = v
        pos[0] += 1

    from array import array
    arr = array("q")
    cases = [("numpy buffer (baseline)", numpy_record), ("array('q').append, grows", arr.append),
             ("zmqtrade Histogram.record", Histogram().record)]
    try:
        from hdrh.histogram import HdrHistogram
        cases.append(("hdrhistogram record_value", HdrHistogram(1, 3_600_000_000_000, 3).record_value))
    except ImportError:
        print("  (hdrhistogram not installed: pip install hdrhistogram to include it)")
    print(f"latency recording, {n} ops x {reps} runs (median ns/op, ± IQR)")
    out, base = {}, None
    for name, fn in cases:
        med, spread = per_op_ns(loop(fn), n, reps)
        print(row(name, med, spread, base))
        base = base or med
        out[name] = med
    return out


if __name__ == "__main__":
    main()
