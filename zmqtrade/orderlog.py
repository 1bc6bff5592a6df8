"""The order manager's log lines per order (rejects, and fills with ``-v``): formatted after the
replies are out, and written together every LOG_EVERY_S or when the process idles. A write per
group commit cost a syscall and a timestamp per order."""
from __future__ import annotations

import sys
import time

from zmqtrade import wire
from zmqtrade.service import LOG_DATEFMT

LOG_EVERY_S = 0.1


class OrderLog:
    def __init__(self, logger_name: str) -> None:
        self.name = logger_name
        self.lines: list[str | tuple] = []  # this commit's entries (a fill: its fields), to format
        self._text: list[str] = []          # formatted lines waiting to be written
        self._due = 0.0                     # when the oldest of those must be written
        self._second, self._stamp = -1, ""

    def format(self) -> None:
        """Turn this commit's entries into lines; write them if the oldest waited LOG_EVERY_S."""
        t = time.time()
        sec = int(t)
        if sec != self._second:  # one strftime per second, not per line
            self._second, self._stamp = sec, time.strftime(LOG_DATEFMT, time.localtime(sec))
        head = f"{self._stamp}.{int(t * 1000) % 1000:03d} INFO {self.name}: "
        out = self._text
        if not out:
            self._due = time.monotonic() + LOG_EVERY_S
        for line in self.lines:
            if type(line) is tuple:
                order_id, strategy, side, qty, symbol, fill = line
                out.append(f"{head}order {order_id} {strategy} {side} {qty} {symbol} @ {fill:.2f} filled\n")
            else:
                out.append(f"{head}{line}\n")
        self.lines.clear()
        if time.monotonic() >= self._due:
            self.write()

    def write(self) -> None:
        """Write the formatted lines waiting, in one write."""
        if self._text:
            sys.stderr.write("".join(self._text))
            self._text.clear()


def shown(text: str) -> str:
    """Client text for a log line: as is when short and printable, else quoted and cut (a newline
    in a symbol must not forge a log line, nor 20 KB of it flood the log)."""
    return text if len(text) <= 32 and text.isprintable() else wire.brief(text)
