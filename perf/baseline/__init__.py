"""A deliberately classic version of zmqtrade's four-process chain, as a same-run baseline.

gateway --TCP, JSON lines--> orderbook --Lock-guarded numpy book in shared memory--> strategy
--TCP, JSON lines--> ordermanager, forked with ``multiprocessing``. The strategy either polls the
book every 1 ms (``mode="poll"``) or wakes on a per-tick notification (``mode="event"``).

    from perf.baseline import run
    figures = run(rate=1000, duration_s=3, mode="event")

CLI: ``python -m perf.baseline --rate 1000 --duration 3 --mode poll`` prints the dict as JSON.
"""
from .runner import run

__all__ = ["run"]
