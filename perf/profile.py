"""Where each process's main thread spends its CPU, by Python function: the stack, sampled.

    python -m perf.profile [--rate 10000] [--seconds 20] [--window-us 500] [--top 25] [--keep DIR]

Runs the stack as :mod:`perf.stack` does (one order per tick over tcp, the defaults otherwise)
with ``perf/profile_site`` on PYTHONPATH: each component's main thread gets a timer on its own
CPU clock (``CLOCK_THREAD_CPUTIME_ID``) that signals it every millisecond of CPU it uses, and
each signal records the Python stack it lands in. Time spent asleep or waiting for a CPU is
never sampled, which is what wall-clock samplers (py-spy) get wrong on a saturated core: they
showed half the order manager "in" ``Socket.send``, preempted by the I/O thread it woke.

Reading the figures: the kernel checks CPU timers at its tick (250 Hz here), so a process using
40% of a CPU for 20 s gets ~2,000 samples. Python runs the handler at its next check, a call or
a loop's back edge, so CPU spent in C or in straight-line code is charged to the next function
called: read a function's share with its caller's. ``self`` is where the sample landed,
``inclusive`` every function on the stack.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import shutil
import tempfile
from pathlib import Path

from perf.stack import Setup, run

SITE = Path(__file__).resolve().parent / "profile_site"


def load(path: Path) -> collections.Counter:
    """Collapsed stacks (``a;b;c count`` lines) as a Counter."""
    stacks: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        stacks[stack] += int(n)
    return stacks


def table(stacks: collections.Counter, top: int) -> list[str]:
    """The ``top`` functions by samples landed in them (self), beside the ``top`` by samples with
    them anywhere on the stack (inclusive; the entry points every sample holds left out)."""
    total = sum(stacks.values())
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    inner = [(f, n) for f, n in incl.most_common() if n < total][:top]
    rows = [f"  {'self':>6}  {'function':<40}  {'inclusive':>9}  function"]
    for (f, n), (g, m) in itertools.zip_longest(own.most_common(top), inner, fillvalue=("", 0)):
        left = f"{100 * n / total:5.1f}%  {f:<40}" if f else " " * 48
        rows.append(f"  {left}  {100 * m / total:8.1f}%  {g}" if g else f"  {left}")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--window-us", type=float, default=Setup(rate=1).window_us,
                   help="gateway.batch_window_us (0: a message, a doorbell and an order message per tick)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--keep", type=Path, help="keep the collapsed stacks here (flame-graph input)")
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="zmqtrade-profile-"))
    try:
        r = run(Setup(rate=args.rate, duration_s=args.seconds, window_us=args.window_us),
                env={"PYTHONPATH": str(SITE), "ZMQTRADE_PROFILE_DIR": str(out)})
        lat = r["latency_us"]["tick_to_ack"]
        print(f"{args.rate:,.0f} ticks/s, one order per tick, tcp, window {args.window_us:g} us, {args.seconds:g} s: tick_to_ack p50 {lat['p50']:.0f} "
              f"p99 {lat['p99']:.0f} us over {lat['count']:,} orders; CPU-time samples of each main thread (1 ms)")
        for path in sorted(out.glob("*.samples")):
            stacks = load(path)
            print(f"\n{path.stem.split('.')[0]} (pid {path.stem.split('.')[1]}): {sum(stacks.values()):,} samples")
            print("\n".join(table(stacks, args.top)))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in out.glob("*.samples"):
                shutil.copy(path, args.keep / path.name)
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
