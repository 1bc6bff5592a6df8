"""CLI for the classic baseline: ``python -m perf.baseline --rate 1000 --duration 3 --mode poll``."""
from __future__ import annotations

import argparse
import json

from . import run


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m perf.baseline", description=__doc__)
    ap.add_argument("--rate", type=float, default=1000.0, help="total ticks/s (default 1000)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds of streaming (default 3)")
    ap.add_argument("--mode", choices=("event", "poll"), default="event")
    ap.add_argument("--symbols", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(run(a.rate, a.duration, a.mode, a.symbols, a.seed), indent=2))


if __name__ == "__main__":
    main()
