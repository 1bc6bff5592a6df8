"""Raw ingest: ticks per second from the gateway into the shared book, batching on.

    python -m perf.ingest [--quick]

The gateway is asked for far more ticks than it can make, in lossless mode (a full orderbook
makes it wait instead of dropping), so the figure is what the pair sustains with zero gaps.
No strategy runs. Compared with the classic baseline asked for the same rate.
"""
from __future__ import annotations

import argparse
from typing import Any

from perf import baseline
from perf.stack import Setup, run

ASKED = 5_000_000


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 s runs")
    args = p.parse_args(argv)
    duration = 3.0 if args.quick else 8.0
    out: dict[str, Any] = {}
    print(f"raw ingest into the book, gateway asked for {ASKED:,} ticks/s, {duration:g} s")
    for batch in (512, 64):
        r = run(Setup(rate=ASKED, per_tick=False, batch=batch, lossless=True, orders=False, duration_s=duration,
                      pm_qos=False, news_rate=1, window_us=0))  # no window: batches fill from backlog alone
        c = r["counters"]
        rate = c["ticks_applied"] / r["duration_s"]
        per_msg = c["ticks_published"] / max(1, c["price_messages"])
        cpu = {n: p["cpu_percent"]["mean"] for n, p in r["processes"].items() if n in ("gateway", "orderbook")}
        print(f"  zmqtrade batch {batch:<4}        {rate:>12,.0f} ticks/s  gaps {c['tick_gaps']}  "
              f"{per_msg:5.1f} ticks/message  cpu gateway {cpu['gateway']:.0f}% orderbook {cpu['orderbook']:.0f}%",
              flush=True)
        out[f"zmqtrade batch {batch}"] = {"ticks_per_s": rate, "gaps": c["tick_gaps"], "ticks_per_message": per_msg}
    b = baseline.run(ASKED, duration, mode="event")
    brate = b["ticks_applied"] / duration
    print(f"  baseline (one JSON line per tick) {brate:>12,.0f} ticks/s  gaps {b['tick_gaps']}")
    best = max(v["ticks_per_s"] for v in out.values())
    print(f"  zmqtrade / baseline: {best / brate:.1f}x" if brate else "  baseline delivered nothing")
    out["baseline"] = {"ticks_per_s": brate, "gaps": b["tick_gaps"]}
    return out


if __name__ == "__main__":
    main()
