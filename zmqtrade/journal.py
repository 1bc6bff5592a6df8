"""The order journal: one JSON line per accepted order, appended before the ack is sent.

Each record is written with a single ``os.write`` on an ``O_APPEND`` descriptor: once the
call returns the line is in the kernel, so it survives a SIGKILL of the order manager (not a
power cut; that needs fsync). A reader drops a torn last line (no newline) instead of failing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

FILENAME = "journal.jsonl"


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.records = 0

    def append(self, record: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.records += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete record of a journal file, in order."""
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                return  # torn last record: the writer died mid-line
            yield json.loads(line)
