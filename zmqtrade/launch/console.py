"""The launcher's console: its children's logs merged, each line prefixed with the process name."""
from __future__ import annotations

import logging
import threading
from typing import Callable, Sequence

from zmqtrade.launch.child import Child

log = logging.getLogger("zmqtrade.launcher")


class ConsoleTail(threading.Thread):
    """The console's merged view: new lines of every child's log, prefixed with its name.

    It reads the log files (the children never write to a pipe the launcher must drain), so
    it is a viewer only: it polls for new bytes, which synchronises nothing.
    """

    def __init__(self, children: Callable[[], Sequence[Child]], width: int, verbose: bool,
                 emit: Callable[[str], None] = print) -> None:
        super().__init__(name="console-tail", daemon=True)
        self.children = children
        self.emit = emit
        self.verbose = verbose
        self.width = width
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, str] = {}
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.wait(0.2):
            self.flush()
        self.flush()

    def flush(self) -> None:
        for c in self.children():
            try:
                with open(c.log_path, "rb") as fh:
                    fh.seek(self._offsets.get(c.name, 0))
                    data = fh.read()
            except OSError:
                continue
            if not data:
                continue
            self._offsets[c.name] = self._offsets.get(c.name, 0) + len(data)
            text = self._partial.pop(c.name, "") + data.decode(errors="replace")
            lines = text.split("\n")
            if lines[-1]:
                self._partial[c.name] = lines[-1]
            for line in lines[:-1]:
                if not self.verbose and ": order " in line:
                    continue
                self.emit(f"{c.name:>{self.width}} | {line}")

    def stop(self) -> None:
        self._stop_evt.set()
        if self.is_alive():
            self.join(2.0)
