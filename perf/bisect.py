"""What each of zmqtrade's features costs per tick: the stack with one feature off at a time.

    python -m perf.bisect [--rates 1000,10000] [--rounds 3] [--seconds 5] [--features a,b]

Each round runs the lean chain, the whole stack, then the stack with each feature off, in turn
(:mod:`perf.ab`), so the differences are measured on the same machine minutes. A feature is
turned off in every process by ``perf/bisect_site/sitecustomize.py`` (on PYTHONPATH for these runs
only): the shipped code has no switches for it. Turned off, a feature's guarantees go too (no
journal: acked orders are not durable), so these runs are measurements, never a configuration.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perf.ab import compare, lean_runner, stack_runner

SITE = Path(__file__).resolve().parent / "bisect_site"
FEATURES = {
    "progress": "progress reports (counters to the launcher every report interval; heartbeats stay)",
    "histograms": "latency histograms (every record() call)",
    "logs": "the order manager's per-order log lines",
    "journal": "journal writes (the ack no longer waits for the kernel to have the record)",
    "risk": "the risk check (size, position and rate limits)",
    "sequence": "sequence checks on every stream (gaps, duplicates, resyncs)",
    "gc": "Python's cyclic garbage collector",
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="1000,10000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--features", default=",".join(FEATURES), help="comma-separated: " + ", ".join(FEATURES))
    a = p.parse_args(argv)
    variants = {"lean": lean_runner(), "zmqtrade": stack_runner()}
    for feature in a.features.split(","):
        if feature not in FEATURES:
            p.error(f"unknown feature {feature!r}; one of {', '.join(FEATURES)}")
        variants[f"no {feature}"] = stack_runner(env={"PYTHONPATH": str(SITE), "ZMQTRADE_BISECT_OFF": feature})
    print("features turned off one at a time:")
    for feature in a.features.split(","):
        print(f"  no {feature}: {FEATURES[feature]}")
    return compare(variants, [float(r) for r in a.rates.split(",")], a.rounds, a.seconds)


if __name__ == "__main__":
    main()
