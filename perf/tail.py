"""Where the slowest 1% of orders sit: how they travelled, and what ran while they did.

    python -m perf.tail [--rate 10000] [--seconds 6] [--rounds 2]

Runs the stack as :mod:`perf.stack` does (one order per tick over tcp, the defaults otherwise)
with ``perf/tail_site`` on PYTHONPATH, each round beside a lean chain run (:mod:`perf.lean`):
the strategy keeps every order's stamps, and every process the spans of its periodic work (the
launcher's psutil samples, each component's heartbeat, the gateway's block making and publisher
servicing, the order manager's ledger booking, the strategy's histogram bins, collections).

- **How the orders travelled.** Orders answered by one reply went through the stack together: at
  10k ticks/s with the default window a message holds two ticks, so its two orders travel as a
  pair; a stage that fell a message or more behind sends what piled up as one (a backlog group).
  Each kind's p50 / p99 and its share of the slowest 1%, and the first against the last tick of
  the pairs (the first waited for its message).
- **What ran meanwhile.** For each kind of periodic work, the share of the slowest 1% that one of
  its spans overlapped, against the share the same spans overlap when moved by a few tens of
  milliseconds (the same orders, chance alone): a ratio well above 1 says the work comes with
  slow orders more often than chance, below or near 1 that it does not.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from perf import lean
from perf.stack import Setup, run

SITE = Path(__file__).resolve().parent / "tail_site"
TICK, BOOK, DECIDE, SEND, OM_IN, OM_OUT, ACK = range(7)
SHIFTS_NS = (13_700_000, 29_300_000, 51_100_000, -23_900_000)
"""Offsets the spans are moved by to see what chance alone overlaps (not a multiple of any period
the stack keeps: 5 ms housekeeping, 100 ms sampling turns, 200 ms heartbeats)."""


def load(out: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The strategy's orders (one row of stamps each) and every process's spans, by label."""
    orders = np.zeros((0, 7), dtype=np.int64)
    spans: dict[str, list[np.ndarray]] = {}
    for path in out.glob("*.json"):
        d = json.loads(path.read_text())
        if d["orders"]:
            orders = np.array(d["orders"], dtype=np.int64).reshape(-1, 7)
        for label, flat in d["spans"].items():
            spans.setdefault(label, []).append(np.array(flat, dtype=np.int64).reshape(-1, 2))
    return orders, {k: np.concatenate(v) for k, v in spans.items()}


def groups(orders: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orders sorted by (ack, tick), the size of the group each was answered in, and whether it
    is the first of its group."""
    o = orders[np.lexsort((orders[:, TICK], orders[:, ACK]))]
    starts = np.r_[0, np.nonzero(np.diff(o[:, ACK]))[0] + 1]
    sizes = np.diff(np.r_[starts, len(o)])
    first = np.zeros(len(o), dtype=bool)
    first[starts] = True
    return o, np.repeat(sizes, sizes), first


def overlapped(spans: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Whether any span overlaps each interval [start, end]."""
    by_start = spans[np.argsort(spans[:, 0])]
    latest_end = np.maximum.accumulate(by_start[:, 1])
    before = np.searchsorted(by_start[:, 0], end)  # spans that began before the interval ended
    out = np.zeros(len(start), dtype=bool)
    some = before > 0
    out[some] = latest_end[before[some] - 1] > start[some]
    return out


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) / 1000 if len(x) else float("nan")


def report(orders: np.ndarray, spans: dict[str, np.ndarray], warmup: float = 0.1) -> list[str]:
    o, size, first = groups(orders[int(len(orders) * warmup):])
    took = o[:, ACK] - o[:, TICK]
    slow = took >= np.percentile(took, 99)
    lines = [f"  {len(o):,} orders: tick_to_ack p50 {pct(took, 50):.0f} / p99 {pct(took, 99):.0f} us"]
    kinds = [("alone", size == 1), ("in pairs", size == 2), ("in backlog groups (3 or more)", size >= 3)]
    for name, m in kinds:
        if m.any():
            hop = lambda a, b: pct(o[m, b] - o[m, a], 50)  # noqa: E731
            lines.append(f"    {name:30s} {100 * m.mean():5.1f}% of orders, p50 {pct(took[m], 50):5.0f} / p99 "
                         f"{pct(took[m], 99):5.0f} us, {100 * (slow & m).sum() / slow.sum():3.0f}% of the slowest 1%; "
                         f"p50 tick->book {hop(TICK, BOOK):.0f}, book->send {hop(BOOK, SEND):.0f}, "
                         f"round trip {hop(SEND, ACK):.0f} us")
    pairs = size == 2
    for name, m in (("first tick of a pair", pairs & first), ("last tick of a pair", pairs & ~first)):
        if m.any():
            lines.append(f"    {name:30s} p50 {pct(took[m], 50):5.0f} / p99 {pct(took[m], 99):5.0f} us")
    lines.append(f"    {'periodic work':34s} {'a second':>9s} {'p50 us':>7s} {'max us':>7s}   "
                 f"{'with the slowest 1%':>19s}  {'by chance':>9s}  ratio")
    start, end = o[slow, TICK], o[slow, ACK]
    seconds = (o[:, ACK].max() - o[:, TICK].min()) / 1e9
    for label in sorted(spans):
        s = spans[label]
        s = s[(s[:, 1] >= o[:, TICK].min()) & (s[:, 0] <= o[:, ACK].max())]
        if not len(s):
            continue
        seen = overlapped(s, start, end).mean()
        chance = np.mean([overlapped(s + shift, start, end).mean() for shift in SHIFTS_NS])
        dur = (s[:, 1] - s[:, 0]) / 1000
        lines.append(f"    {label:34s} {len(s) / seconds:9.1f} {np.median(dur):7.0f} {dur.max():7.0f}   "
                     f"{100 * seen:18.1f}%  {100 * chance:8.1f}%  {seen / chance if chance else float('nan'):5.1f}x")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    print(f"{args.rate:,.0f} ticks/s, one order per tick, tcp, {args.seconds:g} s a run, "
          f"the lean chain in turn; the first 10% of each run's orders left out")
    for rnd in range(1, args.rounds + 1):
        ref = lean.run(args.rate, args.seconds)["tick_to_ack_us"]
        out = Path(tempfile.mkdtemp(prefix="zmqtrade-tail-"))
        try:
            run(Setup(rate=args.rate, duration_s=args.seconds), env={"PYTHONPATH": str(SITE), "ZMQTRADE_TAIL_DIR": str(out)})
            orders, spans = load(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(f"round {rnd}: lean chain p50 {ref['p50']:.0f} / p99 {ref['p99']:.0f} us; zmqtrade:")
        print("\n".join(report(orders, spans)))


if __name__ == "__main__":
    main()
