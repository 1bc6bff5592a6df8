"""What each idea of the per-tick work buys: zmqtrade's defaults with one idea taken back (or
one more tried) at a time, against the lean chain, in turn round after round.

    python -m perf.ideas [--quick]

The defaults hold the ideas that measured better: the pipe doorbell, CPU placement, the
order manager committing each message as it is decided, the gateway's early wake-up. The
variants undo one (ZeroMQ doorbell, no placement) or try another (SCHED_BATCH I/O threads,
other batch windows). A second pass holds /dev/cpu_dma_latency at 0 for both chains: the
machine tuned for latency, which zmqtrade does on request (tuning.cpu_dma_latency_us). A third
measures what durability costs: the journal flushed to disk per group commit or per order.
"""
from __future__ import annotations

import argparse
from typing import Any

from perf.ab import compare, lean_runner, stack_runner

VARIANTS: dict[str, tuple[tuple[str, Any], ...]] = {
    "zmq doorbell": (("strategies.s1.doorbell", "zmq"),),
    "no placement": (("placement", "none"),),
    "batch I/O threads": (("tuning.io_threads", "batch"),),
    "window 0 us": (("gateway.batch_window_us", 0),),
    "window 250 us": (("gateway.batch_window_us", 250),),  # the default before 2026-12-04 02:30
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one round of 2 s per variant")
    args = p.parse_args(argv)
    rounds, seconds = (1, 2.0) if args.quick else (3, 5.0)
    print(f"ideas, one order per tick over tcp, {rounds} round(s) of {seconds:g} s; ratios to the lean chain")
    variants = {"lean": lean_runner(), "zmqtrade": stack_runner(),
                **{name: stack_runner(overrides) for name, overrides in VARIANTS.items()}}
    out = {"plain": compare(variants, [1000.0, 10_000.0], rounds, seconds)}
    print("the same, the machine tuned: cpu_dma_latency held at 0 for both chains")
    tuned = {"lean": lean_runner(pm_qos=True), "zmqtrade": stack_runner(pm_qos=True)}
    out["tuned"] = compare(tuned, [1000.0, 10_000.0], rounds, seconds)
    print("durability: what flushing the journal to disk costs (ordermanager.fsync; om_process is in the hops)")
    durable = {"lean": lean_runner(), "fsync off": stack_runner(),
               "fsync batch": stack_runner(fsync="batch"), "fsync order": stack_runner(fsync="order")}
    out["durability"] = compare(durable, [1000.0, 10_000.0], rounds, seconds)
    return out


if __name__ == "__main__":
    main()
