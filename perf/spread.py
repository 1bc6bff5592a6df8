"""What spreading strategies over hosts costs: N strategies on one host against N split over two.

    python -m perf.spread [--strategies 4] [--rate 2000] [--pairs 3] [--seconds 6]

Three hosts are made of network namespaces on this machine (as the multi-host tests make them:
root and iproute2 needed), joined by a bridge: the gateway and the order manager on host a, and
either all N every_quote strategies on host b with one orderbook ("one host"), or N/2 on b and N/2
on c, each host with an orderbook of its own (``orderbook.hosts: [b, c]``, "split"). The two run
alternately, ``--pairs`` times; printed per setup: tick-to-ack p50 and p99 over all strategies,
orders acked per second, the CPU of the whole stack and of its orderbooks, median [min-max] of
the runs, and the split's ratio to one host.

What the figure means here: the namespaces share this machine's cores, so the split gains no
CPU. It measures what spreading itself costs (a second orderbook applying the whole feed, one
more host's launcher, the hops now crossing a bridge), which on separate machines buys a host's
cores for the strategies. A split that costs little here is one whose gain on real machines is
the strategies' own CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from perf.stack import ROOT

sys.path.insert(0, str(ROOT / "tests"))  # the namespace helpers the multi-host tests use
import netns  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA", "META", "ORCL"]


def topology(n: int, rate: float, seconds: float, split: bool) -> dict[str, Any]:
    per = max(1, len(SYMBOLS) // n)
    strategies = {f"s{i}": {"host": "c" if split and i >= n // 2 else "b", "class": "every_quote", "qty": 1,
                            "symbols": SYMBOLS[(i * per) % len(SYMBOLS):][:per]} for i in range(n)}
    return {
        "name": "spread", "duration_s": seconds, "symbols": SYMBOLS,
        "hosts": {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"},
        "gateway": {"host": "a", "prices": "tcp://{host}:5555", "news": "tcp://{host}:5556", "rate": rate,
                    "news_rate": 10},
        "orderbook": {"hosts": ["b", "c"], "doorbell": "ipc://{run_dir}/doorbell.ipc"} if split else
                     {"host": "b", "doorbell": "ipc://{run_dir}/doorbell.ipc"},
        "ordermanager": {"host": "a", "endpoint": "tcp://{host}:5558",
                         "risk": {"max_order_qty": 10, "max_position": 1000, "max_orders_per_s": 1e6}},
        "strategies": strategies,
    }


def one_run(star: netns.Star, data: dict[str, Any], seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zt-spread-") as tmp:
        tmp_path = Path(tmp)
        path = tmp_path / "spread.yaml"
        path.write_text(yaml.safe_dump(data))
        common = [arg for h in star.addr for arg in ("--set", f"hosts.{h}={star.addr[h]}")] + ["-q"]
        used = sorted({s["host"] for s in data["strategies"].values()} | {"a"})
        procs = [subprocess.Popen([*star.exec_in(h), sys.executable, str(ROOT / "launch.py"), str(path), "--host", h,
                                   "--run-dir", str(tmp_path / h), *common], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for h in reversed(used)]
        codes = [p.wait(timeout=seconds + 120) for p in procs]
        report = json.loads((tmp_path / "a" / "report.json").read_text())
    processes = report["processes"]
    lat = report["latency_us"]["tick_to_ack"]
    return {"exit": max(codes), "p50": lat["p50"], "p99": lat["p99"], "samples": lat["count"],
            "acked_per_s": report["counters"]["orders_acked"] / max(report["duration_s"], 1e-9),
            "cpu": sum(p["cpu_percent"]["mean"] for p in processes.values() if p["kind"] != "launcher"),
            "book_cpu": sum(p["cpu_percent"]["mean"] for p in processes.values() if p["kind"] == "orderbook"),
            "lost": report["counters"]["tick_gaps"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", type=int, default=4)
    p.add_argument("--rate", type=float, default=2000.0)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--quick", action="store_true", help="one pair of 3 s runs")
    args = p.parse_args(argv)
    pairs, seconds = (1, 3.0) if args.quick else (args.pairs, args.seconds)
    why = netns.unavailable()
    if why:
        print(f"spread: skipped ({why})")
        return {"skipped": why}
    star = netns.make_star()
    runs: dict[str, list[dict[str, Any]]] = {"one host": [], "split": []}
    try:
        for _ in range(pairs):
            for name, split in (("one host", False), ("split", True)):
                runs[name].append(one_run(star, topology(args.strategies, args.rate, seconds, split), seconds))
    finally:
        netns.remove_star(star)
    print(f"{args.strategies} every_quote strategies at {args.rate:g} ticks/s, {pairs} alternating pairs of "
          f"{seconds:g} s, on namespace hosts sharing this machine's cores: median [min-max]")
    print(f"  {'setup':<10}{'tick_to_ack p50 us':>24}{'p99 us':>24}{'acked/s':>10}{'cpu %':>18}{'orderbooks cpu %':>20}"
          f"{'exit':>6}")
    out: dict[str, Any] = {}
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "acked_per_s", "cpu", "book_cpu")}
        rng = {k: (min(r[k] for r in rs), max(r[k] for r in rs)) for k in med}
        out[name] = {"median": med, "range": rng, "runs": rs}
        print(f"  {name:<10}{med['p50']:>10.0f} [{rng['p50'][0]:.0f}-{rng['p50'][1]:.0f}]{'':>3}"
              f"{med['p99']:>10.0f} [{rng['p99'][0]:.0f}-{rng['p99'][1]:.0f}]{'':>3}{med['acked_per_s']:>10.0f}"
              f"{med['cpu']:>10.0f} [{rng['cpu'][0]:.0f}-{rng['cpu'][1]:.0f}]{med['book_cpu']:>14.0f}"
              f"{max(r['exit'] for r in rs):>8}")
    one, split = out["one host"]["median"], out["split"]["median"]
    print(f"  split / one host: p50 {split['p50'] / one['p50']:.2f}x, p99 {split['p99'] / one['p99']:.2f}x, "
          f"cpu {split['cpu'] / one['cpu']:.2f}x (the second orderbook: "
          f"+{split['book_cpu'] - one['book_cpu']:.0f}% cpu)")
    return out


if __name__ == "__main__":
    main()
