"""Classic ordermanager: a TCP server that fills JSON order lines at the locked book's price.

Imitates zmqtrade's ordermanager (ROUTER orders -> validate -> fill from the book -> journal ->
REPLY). For each order line: ``json.loads``, check the symbol is known, side BUY/SELL and qty > 0,
read the row under the ``multiprocessing.Lock`` (buys fill at the ask, sells at the bid; no quote
yet is a reject), then the journal line is appended (``os.write`` on an ``O_APPEND`` file, one
write per ``recv`` worth of orders) before the acks ``{"clordid", "status", "price"}`` are sent.
Stops at the strategy's EOF.
"""
from __future__ import annotations

import json
import os
import select
import socket
import time

from .common import ASK, BID, DRAIN_S, book_view, nodelay, serve_one, split_lines


def main(q, start, lock, shm, syms: list[str], journal_path: str, duration_s: float) -> dict:
    book = book_view(shm, len(syms))
    index = {s: i for i, s in enumerate(syms)}
    conn = serve_one(q, "ordermanager")
    fd = os.open(journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    filled = rejected = 0
    loads, dumps = json.loads, json.dumps
    try:
        with conn:
            nodelay(conn)
            if not start.wait(15.0):
                raise RuntimeError("no start signal")
            deadline = time.monotonic() + duration_s + DRAIN_S + 1.0  # the strategy drains first
            buf = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([conn], [], [], left)
                if not r:
                    continue
                try:
                    data = conn.recv(1 << 18)
                except ConnectionError:
                    break
                if not data:
                    break
                recv_ts = time.monotonic_ns()
                lines, buf = split_lines(buf, data)
                journal, acks = [], []
                for line in lines:
                    clordid, price, reason = -1, 0.0, None
                    try:
                        o = loads(line)
                        clordid = o["clordid"]
                        i = index.get(o["symbol"])
                        side, qty = o["side"], o["qty"]
                        if i is None:
                            reason = "unknown symbol"
                        elif side not in ("BUY", "SELL"):
                            reason = "bad side"
                        elif not isinstance(qty, int) or qty <= 0:
                            reason = "bad qty"
                    except (ValueError, KeyError, TypeError):
                        reason = "malformed"
                    if reason is None:
                        with lock:
                            price = float(book[i, ASK] if side == "BUY" else book[i, BID])
                        if price <= 0.0:
                            reason = "no market"
                    if reason is not None:
                        rejected += 1
                        acks.append(dumps({"clordid": clordid, "status": "rejected", "reason": reason}))
                        continue
                    filled += 1
                    journal.append(dumps({"order_id": filled, "clordid": clordid, "symbol": o["symbol"],
                                          "side": side, "qty": qty, "limit": o.get("price"), "price": price,
                                          "recv_ts": recv_ts}))
                    acks.append(dumps({"clordid": clordid, "status": "filled", "price": price}))
                if journal:
                    journal.append("")
                    os.write(fd, "\n".join(journal).encode())  # journal first, then ack
                if acks:
                    acks.append("")
                    try:
                        conn.sendall("\n".join(acks).encode())
                    except ConnectionError:  # the strategy gave up waiting and left
                        break
    finally:
        os.close(fd)
    return {"orders_filled": filled, "orders_rejected": rejected}
