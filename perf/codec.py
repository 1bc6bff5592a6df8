"""Codec cost per message type: zmqtrade's msgpack arrays against msgpack maps and JSON.

    python -m perf.codec [--quick]
"""
from __future__ import annotations

import argparse
import json

import msgpack

from perf.timing import per_op_ns, row
from zmqtrade import wire

TICK = (1, "AAPL", 173.19, 173.21, 173.20, 300, 1_700_000_000_000_000_000)
ORDER = wire.Order(12, "strat1", "AAPL", "BUY", 10, 173.21, 1, 2, 3, 4)
FIELDS = ("seq", "symbol", "bid", "ask", "last", "size", "ts_ns")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n, reps = (20_000, 5) if args.quick else (200_000, 9)

    tick_body = wire.encode_tick(*TICK)
    tick_map = dict(zip(FIELDS, TICK))
    map_body = msgpack.packb(tick_map)
    json_body = json.dumps(tick_map).encode()
    order_body = wire.encode_order(ORDER)
    reply_body = wire.encode_reply(12, wire.FILLED, 7, 173.21, 1, 2)

    def loop(fn):
        def run(k: int) -> None:
            for _ in range(k):
                fn()
        return run

    cases = {
        "tick encode": [("json dict (baseline)", lambda: json.dumps(tick_map).encode()),
                        ("msgpack map", lambda: msgpack.packb(tick_map)),
                        ("zmqtrade array", lambda: wire.encode_tick(*TICK))],
        "tick decode": [("json dict (baseline)", lambda: json.loads(json_body)),
                        ("msgpack map", lambda: msgpack.unpackb(map_body)),
                        ("zmqtrade array + checks", lambda: wire.as_tick(wire.unpack(tick_body)[1]))],
        "order encode": [("zmqtrade", lambda: wire.encode_order(ORDER))],
        "order decode": [("zmqtrade + checks", lambda: wire.as_order(wire.unpack(order_body)[1]))],
        "reply decode": [("zmqtrade + checks", lambda: wire.as_reply(wire.unpack(reply_body)[1]))],
    }
    print(f"codec, {n} ops x {reps} runs (median ns/op, ± IQR)")
    print(f"  sizes: tick array {len(tick_body)} B, msgpack map {len(map_body)} B, json {len(json_body)} B")
    for title, variants in cases.items():
        print(title)
        base = None
        for name, fn in variants:
            med, spread = per_op_ns(loop(fn), n, reps)
            print(row(name, med, spread, base))
            base = base or (med if len(variants) > 1 else None)


if __name__ == "__main__":
    main()
