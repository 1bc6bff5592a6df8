"""perf.tail's reading of a run: orders grouped by the reply that answered them, and periodic work
set against what chance alone would overlap. Its figures go into perf/ANALYSIS.md, so the
arithmetic is held here on orders whose answer is known."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from perf import tail  # noqa: E402

US = 1000


def orders_of(rows: list[tuple[int, int]]) -> np.ndarray:
    """Orders from (tick, ack) in us; the stamps between them evenly spread."""
    out = np.zeros((len(rows), 7), dtype=np.int64)
    for i, (tick, ack) in enumerate(rows):
        out[i] = np.linspace(tick * US, ack * US, 7).astype(np.int64)
    return out


def test_orders_answered_together_are_one_group_and_the_first_is_the_earliest_tick():
    rows = [(0, 300), (100, 300), (200, 500), (1000, 1900), (1100, 1900), (1200, 1900), (2000, 2200)]
    o, size, first = tail.groups(orders_of(rows)[::-1])  # any order in, sorted out
    assert list(o[:, tail.TICK] // US) == [0, 100, 200, 1000, 1100, 1200, 2000]
    assert list(size) == [2, 2, 1, 3, 3, 3, 1]
    assert list(first) == [True, False, True, True, False, False, True]


def test_a_span_counts_only_where_it_overlaps_an_order():
    spans = np.array([[50, 60], [500, 900], [2000, 2001]], dtype=np.int64)
    start = np.array([0, 70, 400, 950, 2001], dtype=np.int64)
    end = np.array([55, 80, 600, 1000, 2005], dtype=np.int64)
    assert list(tail.overlapped(spans, start, end)) == [True, False, True, False, False]


def test_the_report_names_the_backlog_and_the_work_that_came_with_it():
    rng = np.random.default_rng(1)
    rows, spans = [], []
    for k in range(0, 20_000, 2):  # pairs of ticks 100 us apart, answered 300 us after the first
        t = k * 100
        late = k % 200 == 0        # every 20 ms a stall: a span, and three orders answered late together
        ack = t + (2000 if late else 300 + int(rng.integers(0, 50)))
        rows += [(t, ack), (t + 100, ack)] + ([(t + 150, ack)] if late else [])
        if late:
            spans.append([(t + 50) * US, (t + 1500) * US])
    lines = tail.report(orders_of(rows), {"stall": np.array(spans, dtype=np.int64)}, warmup=0.0)
    text = "\n".join(lines)
    backlog = next(line for line in lines if "backlog groups" in line)
    assert "100% of the slowest 1%" in backlog
    stall = next(line for line in lines if line.strip().startswith("stall"))
    seen, chance = (float(w.rstrip("%")) for w in stall.split()[4:6])
    assert seen == 100.0 and chance < 20.0, text
