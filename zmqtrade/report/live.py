"""What the console shows while a run goes on.

On a terminal, a table redrawn about once a second (rich): elapsed time against the duration,
and per process CPU, RSS, messages per second, gaps and orders. Anywhere else (CI, a pipe,
a file), a plain progress line every few seconds, so logs stay readable. Log lines of the
merged view are printed through the same console, above the table, so the two never tear.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Mapping, TextIO

from zmqtrade.launch.child import Child
from zmqtrade.ledger import PNL_PREFIX

RATE_COUNTER = {"gateway": "ticks_published", "orderbook": "ticks_applied", "strategy": "quotes_read",
                "ordermanager": "orders_received"}
"""The counter whose growth is a process's 'messages per second' in the view."""
RATE_CAPTION = ("msgs/s: the gateway's ticks published, the orderbook's ticks applied, a strategy's quotes read, "
                "the order manager's orders received; tick->ack us: a strategy's mean over the last report interval; "
                "pnl: its net PnL as the order manager marks it")
GAP_COUNTERS = ("tick_gaps", "news_gaps", "doorbell_gaps")
PLAIN_EVERY_S = 5.0


def rate_between(a: tuple[float, int], b: tuple[float, int]) -> float | None:
    """Per second between two (t, counter) points; None if no time passed. A counter that went
    down belongs to a restarted process counting from 0 again: its new value is the interval's."""
    if b[0] <= a[0]:
        return None
    return (b[1] - a[1] if b[1] >= a[1] else b[1]) / (b[0] - a[0])


def pnl_now(children: Iterable[Child]) -> dict[str, float]:
    """Each strategy's net PnL in the order manager's latest progress report."""
    om = next((c for c in children if c.kind == "ordermanager" and c.progress), None)
    latest = om.progress[-1][1] if om else {}
    return {k[len(PNL_PREFIX):]: v for k, v in latest.items() if k.startswith(PNL_PREFIX)}


def row(c: Child, pnl: Mapping[str, float] | None = None) -> dict[str, Any]:
    """One process's live figures from its latest psutil sample and progress reports (``pnl``:
    :func:`pnl_now`)."""
    sample = c.samples[-1] if c.samples else None
    counters = c.progress[-1][1] if c.progress else {}
    per_s = 0.0
    key = RATE_COUNTER.get(c.kind)
    if key and len(c.progress) >= 2:
        (t0, a), (t1, b) = c.progress[-2], c.progress[-1]
        per_s = rate_between((t0, a.get(key, 0)), (t1, b.get(key, 0))) or 0.0
    orders, ack_us = "", None
    if c.kind == "strategy" and len(c.progress) >= 2:  # the mean over the last report interval
        a, b = c.progress[-2][1], c.progress[-1][1]
        acks = b.get("tick_acks", 0) - a.get("tick_acks", 0)
        if acks > 0:  # none, or a restart between the two reports: nothing to say
            ack_us = (b.get("tick_to_ack_us", 0) - a.get("tick_to_ack_us", 0)) / acks
    if c.kind == "strategy":
        orders = f"{counters.get('orders_acked', 0)}/{counters.get('orders_sent', 0)}"
    elif c.kind == "ordermanager":
        orders = f"{counters.get('orders_filled', 0)} filled"
    state = "" if c.running else "exited"
    if c.running and not c.ready and c.start_phase:
        state = c.start_phase  # e.g. "replaying the journal 40%"
    if c.restarts:
        state = ", ".join(x for x in (f"life {len(c.restarts) + 1}", state) if x)
    return {
        "name": c.name, "kind": c.kind, "running": c.running, "state": state,
        "cpu": sample.cpu_percent if sample else 0.0,
        "rss_mb": sample.rss_bytes / 1e6 if sample else 0.0,
        "rate": per_s if key else None, "ack_us": ack_us, "gaps": sum(int(counters.get(k, 0)) for k in GAP_COUNTERS), "orders": orders,
        "pnl": (pnl or {}).get(c.name) if c.kind == "strategy" else None,
    }


COLUMNS = (("process", "left"), ("kind", "left"), ("cpu %", "right"), ("rss MB", "right"), ("msgs/s", "right"),
           ("tick->ack us", "right"), ("gaps", "right"), ("orders", "right"), ("pnl", "right"))
"""The live table's columns and how each is justified."""


class LiveView:
    """The console while a run goes on: ``update`` often, ``print`` log lines, ``stop`` at the end."""

    def __init__(self, title: str, duration_s: float, interactive: bool | None = None,
                 out: TextIO | None = None) -> None:
        self.title = title
        self.duration_s = duration_s
        self.out = out or sys.stdout
        self.interactive = self.out.isatty() if interactive is None else interactive
        self._live: Any = None
        self._console: Any = None
        self._next = 0.0
        self._started = 0.0
        if self.interactive:
            from rich.console import Console

            self._console = Console(file=self.out)

    def start(self) -> None:
        self._started = time.monotonic()
        self._next = self._started + (0.0 if self.interactive else PLAIN_EVERY_S)  # no all-zero first line
        if self.interactive:
            from rich.live import Live

            self._live = Live(self._table([]), console=self._console, refresh_per_second=4, transient=False)
            self._live.start()

    def print(self, line: str) -> None:
        if self._console is not None:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.out, flush=True)

    def update(self, children: Iterable[Child]) -> None:
        now = time.monotonic()
        if not self._started or now < self._next:
            return
        children = list(children)
        pnl = pnl_now(children)
        rows = [row(c, pnl) for c in children]
        if self._live is not None:
            self._next = now + 1.0
            self._live.update(self._table(rows))
        else:
            self._next = now + PLAIN_EVERY_S
            self.print(self._line(rows))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._started = 0.0

    # ------------------------------------------------------------------ rendering
    def _elapsed(self) -> str:
        elapsed = time.monotonic() - self._started if self._started else 0.0
        if self.duration_s:
            done = min(1.0, elapsed / self.duration_s)
            bar = "#" * int(done * 20) + "-" * (20 - int(done * 20))
            return f"{elapsed:5.1f} / {self.duration_s:g} s [{bar}]"
        return f"{elapsed:5.1f} s (until Ctrl-C)"

    def _table(self, rows: list[dict[str, Any]]) -> Any:
        """The table, boxed; on a terminal too narrow for that (80 columns, with a dozen processes'
        orders and PnL), a compact one without the kind column or borders, so no process name
        and no figure is ever cut short."""
        from rich import box
        from rich.table import Table

        cells = [[r["name"] + (f" ({r['state']})" if r["state"] else ""), r["kind"], f"{r['cpu']:.0f}",
                  f"{r['rss_mb']:.1f}", "-" if r["rate"] is None else f"{r['rate']:,.0f}",
                  "" if r["ack_us"] is None else f"{r['ack_us']:,.0f}", str(r["gaps"]), r["orders"],
                  "" if r["pnl"] is None else f"{r['pnl']:,.2f}"] for r in rows]
        widths = [max([len(name), *(len(c[i]) for c in cells)]) for i, (name, _) in enumerate(COLUMNS)]
        boxed = sum(widths) + 3 * len(widths) + 1 <= self._console.width  # padding 1 a side, a border each
        keep = [i for i in range(len(COLUMNS)) if boxed or COLUMNS[i][0] != "kind"]
        style = {} if boxed else {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False,
                                  "padding": (0, 1, 0, 0)}
        table = Table(title=f"zmqtrade {self.title}  {self._elapsed()}", title_justify="left", caption=RATE_CAPTION,
                      caption_justify="left", **style)  # type: ignore[arg-type]
        for i in keep:
            name, justify = COLUMNS[i]
            header = name if boxed else name.replace(" ", "\n").replace("msgs/s", "msgs\n/s")  # two-line headers
            table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for c in cells:
            table.add_row(*(c[i] for i in keep))
        return table

    def _line(self, rows: list[dict[str, Any]]) -> str:
        parts = []
        for r in rows:
            state = f" ({r['state']})" if r["state"] else ""
            rate = "" if r["rate"] is None else f" {r['rate']:,.0f}/s"
            ack = "" if r["ack_us"] is None else f" tick->ack {r['ack_us']:,.0f}us"
            parts.append(f"{r['name']}{state}{rate}{ack} cpu {r['cpu']:.0f}%"
                         + (f" gaps {r['gaps']}" if r["gaps"] else "") + (f" orders {r['orders']}" if r["orders"] else "")
                         + ("" if r["pnl"] is None else f" pnl {r['pnl']:,.2f}"))
        return f"progress | {self._elapsed()} | " + " | ".join(parts)
