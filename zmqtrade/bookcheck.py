"""Seqlock stress: one process hammers a slot, another checks every read is whole.

The writer stores a counter ``k`` into every field of slot 0 (each field a different function
of ``k``); a reader that ever sees fields from two different ``k`` has read a torn slot (it
checks both reads: the whole quote, and the bid and ask the order manager prices from). The
test suite runs this to prove the book never tears; ``perf/`` runs it for timings too.

    python -m zmqtrade.bookcheck writer SEGMENT SECONDS
    python -m zmqtrade.bookcheck reader SEGMENT SECONDS [--raw]

Each prints one JSON line with its counts. ``--raw`` reads the fields without the seqlock,
to show what the seqlock prevents.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Sequence

from zmqtrade.book import S_ASK, S_BID, S_LAST, S_SIZE, S_TICK_SEQ, S_TICK_TS, S_WRITE_TS, Book, segment_name


def fields_for(k: int) -> tuple[float, float, float, int, int, int, int]:
    return float(k), k + 0.5, k + 0.25, k, k, 2 * k, 3 * k


def consistent(bid: float, ask: float, last: float, size: int, tseq: int, tts: int, wts: int) -> bool:
    k = int(bid)
    return (bid, ask, last, size, tseq, tts, wts) == fields_for(k)


def writer(book: Book, seconds: float) -> dict[str, float]:
    end = time.monotonic() + seconds
    k = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(1000):
            k += 1
            bid, ask, last, size, tseq, tts, wts = fields_for(k)
            book.write(0, bid, ask, last, size, tseq, tts, wts)
        if time.monotonic() >= end:
            break
    elapsed = time.perf_counter() - t0
    return {"writes": k, "write_ns": elapsed / k * 1e9}


def reader(book: Book, seconds: float, raw: bool = False) -> dict[str, float]:
    end = time.monotonic() + seconds
    reads = torn = unwritten = 0
    u, f = book._u, book._f  # raw mode reads the words directly, bypassing the seqlock
    b = book._base
    t0 = time.perf_counter()
    while True:
        for _ in range(1000):
            reads += 1
            if raw:
                vals = (f[b + S_BID], f[b + S_ASK], f[b + S_LAST], u[b + S_SIZE],
                        u[b + S_TICK_SEQ], u[b + S_TICK_TS], u[b + S_WRITE_TS])
                if u[b] == 0:
                    unwritten += 1
                    continue
            else:
                q = book.read(0)
                if q is None:
                    unwritten += 1
                    continue
                vals = (q.bid, q.ask, q.last, q.size, q.tick_seq, q.tick_ts, q.write_ts)
                touch = book.bid_ask(0)  # the order manager's read, under the same seqlock
                if touch is not None and touch[1] != touch[0] + 0.5:
                    torn += 1
            if not consistent(*vals):
                torn += 1
        if time.monotonic() >= end:
            break
    elapsed = time.perf_counter() - t0
    return {"reads": reads, "torn": torn, "unwritten": unwritten, "read_ns": elapsed / reads * 1e9}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zmqtrade.bookcheck", description=__doc__.split("\n")[0])
    p.add_argument("role", choices=("writer", "reader"))
    p.add_argument("segment")
    p.add_argument("seconds", type=float)
    p.add_argument("--raw", action="store_true", help="read without the seqlock")
    args = p.parse_args(argv)
    book = Book.attach(args.segment, timeout=5.0)
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # the driver says go once both sides are attached
        out = writer(book, args.seconds) if args.role == "writer" else reader(book, args.seconds, args.raw)
    finally:
        book.close()
    print(json.dumps(out), flush=True)
    return 0


def stress(seconds: float, raw: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """Create a book, run a writer and a reader process against it; their results."""
    book = Book.create(segment_name("stress"), ["STRESS"])
    procs = []
    try:
        for role in ("writer", "reader"):
            argv = [sys.executable, "-m", "zmqtrade.bookcheck", role, book.name, str(seconds)]
            procs.append(subprocess.Popen(argv + (["--raw"] if raw and role == "reader" else []),
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in procs:  # both attached before either starts
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 30)
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results[0], results[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        book.close()


if __name__ == "__main__":
    sys.exit(main())
