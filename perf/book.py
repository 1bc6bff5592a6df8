"""Book cost: seqlock read and write per symbol, against a Lock-guarded numpy row (the classic
design), then the torn-read stress with and without the seqlock.

    python -m perf.book [--quick]
"""
from __future__ import annotations

import argparse
import multiprocessing

import numpy as np

from perf.timing import per_op_ns, row
from zmqtrade import bookcheck
from zmqtrade.book import Book, segment_name


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    out: dict[str, float] = {}
    n, reps, stress_s = (20_000, 5, 1.0) if args.quick else (200_000, 9, 5.0)

    lock = multiprocessing.Lock()
    arr = np.zeros((8, 8))

    def locked_write(k: int) -> None:
        for i in range(k):
            with lock:
                arr[3, 1] = 1.0; arr[3, 2] = 2.0; arr[3, 3] = 1.5; arr[3, 4] = 100  # noqa: E702
                arr[3, 5] = i; arr[3, 6] = i; arr[3, 7] = i  # noqa: E702

    def locked_read(k: int) -> None:
        for _ in range(k):
            with lock:
                tuple(arr[3].tolist())

    with Book.create(segment_name("bench"), [f"S{i}" for i in range(8)]) as book:
        write, read = book.write, book.read

        def seq_write(k: int) -> None:
            for i in range(k):
                write(3, 1.0, 2.0, 1.5, 100, i, i, i)

        def seq_read(k: int) -> None:
            for _ in range(k):
                read(3)

        print(f"book, {n} ops x {reps} runs, uncontended (median ns/op, ± IQR)")
        base_w = per_op_ns(locked_write, n, reps)
        base_r = per_op_ns(locked_read, n, reps)
        w, r = per_op_ns(seq_write, n, reps), per_op_ns(seq_read, n, reps)
        print(row("write: Lock + numpy row (baseline)", *base_w))
        print(row("write: seqlock", *w, base_w[0]))
        print(row("read: Lock + numpy row (baseline)", *base_r))
        print(row("read: seqlock", *r, base_r[0]))
        out.update(write_ns=w[0], read_ns=r[0], lock_write_ns=base_w[0], lock_read_ns=base_r[0])

    print(f"torn-read stress, writer and reader processes, {stress_s:g} s each")
    for raw in (True, False):
        w, r = bookcheck.stress(stress_s, raw=raw)
        label = "without seqlock" if raw else "with seqlock"
        print(f"  {label:<16} reads {r['reads']:>10}  torn {r['torn']:>8}  "
              f"read {r['read_ns']:6.0f} ns  write {w['write_ns']:6.0f} ns (contended; a read is a quote, "
              f"and with the seqlock its bid and ask again)")
        out["torn_raw" if raw else "torn_seqlock"] = r["torn"]
    return out


if __name__ == "__main__":
    main()
