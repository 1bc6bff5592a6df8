"""The order journal: one JSON line per accepted order, appended before the ack is sent.

Records are written with ``os.write`` on an ``O_APPEND`` descriptor, a batch at a time: once
the call returns the lines are in the kernel, so they survive a SIGKILL of the order manager
(not a power cut; that needs fsync). A reader drops a torn last line (no newline) instead of
failing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from zmqtrade.wire import Order

FILENAME = "journal.jsonl"


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append_lines(self, lines: list[str]) -> None:
        """Append complete records (from :func:`record`) with one write."""
        data = "".join(lines).encode()
        while data:  # a regular file takes it all at once; loop only for the pathological case
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def record(order_id: int, o: Order, fill: float, recv_ts: int) -> str:
    """One journal line. Formatted by hand, about 4x faster than json.dumps: every string in
    it (strategy, symbol, side) was validated against the topology's name rules first, and
    floats are finite, so it is valid JSON without escaping."""
    return (f'{{"order_id":{order_id},"clordid":{o.clordid},"strategy":"{o.strategy}","symbol":"{o.symbol}",'
            f'"side":"{o.side}","qty":{o.qty},"limit":{o.price!r},"price":{fill!r},"recv_ts":{recv_ts}}}\n')


def read(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete record of a journal file, in order."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # torn last record: the writer died mid-line
            yield json.loads(line)
