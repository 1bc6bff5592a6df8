"""Classic orderbook: reads JSON tick lines from the gateway's TCP socket into a locked numpy book.

Imitates zmqtrade's orderbook (SUB prices -> seqlock writes -> DOORBELL). Here every tick is
``json.loads``-ed and written into its symbol's row under a ``multiprocessing.Lock``: bid, ask,
last, size, tick seq, tick ts, write ts and the row's update counter. Gaps are counted by seq.
In ``event`` mode it also sends one notification per applied tick (one byte: the row index) on a
socketpair to the strategy; the bytes of one ``recv`` worth of ticks go out in one ``sendall``.
At the gateway's EOF it closes the notification socket and sets ``book_done``.
"""
from __future__ import annotations

import json
import socket
import time

from .common import DRAIN_S, HOST, book_view, nodelay, split_lines


def main(q, start, book_done, lock, shm, syms: list[str], gw_port: int,
         notify: socket.socket | None, duration_s: float) -> dict:
    book = book_view(shm, len(syms))
    index = {s: i for i, s in enumerate(syms)}
    counts = [0] * len(syms)
    applied = gaps = duplicates = unknown = malformed = 0
    last_seq = 0
    eof = False
    loads = json.loads
    mono = time.monotonic_ns
    try:
        sock = nodelay(socket.create_connection((HOST, gw_port), timeout=10.0))
        with sock:
            sock.settimeout(0.25)  # lets the loop check its deadline if the gateway hangs
            q.put(("ready", "orderbook", None))
            if not start.wait(15.0):
                raise RuntimeError("no start signal")
            deadline = time.monotonic() + duration_s + DRAIN_S
            buf = b""
            while True:
                try:
                    data = sock.recv(1 << 18)
                except socket.timeout:
                    if time.monotonic() > deadline:
                        break
                    continue
                if not data:
                    eof = True
                    break
                lines, buf = split_lines(buf, data)
                notes = bytearray()
                for line in lines:
                    try:
                        t = loads(line)
                        seq = t["seq"]
                        i = index.get(t["symbol"])
                        row = (t["bid"], t["ask"], t["last"], t["size"], seq, t["ts_ns"])
                    except (ValueError, KeyError, TypeError):
                        malformed += 1
                        continue
                    if seq <= last_seq:
                        duplicates += 1
                        continue
                    if seq != last_seq + 1:
                        gaps += seq - last_seq - 1
                    last_seq = seq
                    if i is None:
                        unknown += 1
                        continue
                    counts[i] += 1
                    with lock:
                        book[i] = (*row, mono(), counts[i])
                    applied += 1
                    if notify is not None:
                        notes.append(i)
                if notes:
                    notify.sendall(notes)
                if time.monotonic() > deadline:
                    break
    finally:
        if notify is not None:
            notify.close()  # EOF tells an event-mode strategy the stream is over
        book_done.set()
    return {"ticks_applied": applied, "tick_gaps": gaps, "tick_duplicates": duplicates,
            "ticks_unknown_symbol": unknown, "ticks_malformed": malformed, "last_seq": last_seq,
            "gateway_eof": eof}
