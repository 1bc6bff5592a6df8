"""The latency histogram: exact where small, within 1% where large, mergeable, bounded."""
from __future__ import annotations

import numpy as np
import pytest

from zmqtrade.metrics import EXACT, SIZE, TOP, Histogram, Rows, bucket_bounds, merged, summarize_us


def test_small_values_are_exact_and_empty_summary_is_zero():
    assert summarize_us(Histogram())["count"] == 0
    h = Histogram()
    for v in (0, -5, 1, 200, 200):
        h.record(v)
    assert [h.counts[i] for i in (0, 1, 200)] == [2, 1, 2]


def test_buckets_are_contiguous_and_cover_the_range():
    prev_high = EXACT
    for index in range(EXACT, SIZE):
        low, high = bucket_bounds(index)
        assert low == prev_high and high > low
        prev_high = high
    assert prev_high > TOP


def test_percentiles_are_within_one_percent():
    vals = np.random.default_rng(2).lognormal(12, 1.2, 100_000).astype(np.int64)
    h = Histogram()
    for v in vals.tolist():
        h.record(v)
    s = summarize_us(h)
    assert s["count"] == len(vals)
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        assert s[key] == pytest.approx(np.percentile(vals, q) / 1000, rel=0.01), key
    assert s["max"] == pytest.approx(vals.max() / 1000, rel=0.01)
    assert s["mean"] == pytest.approx(vals.mean() / 1000, rel=0.01)


def test_merge_equals_recording_everything_in_one():
    a, b, both = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(range(1, 5_000_000, 7919)):
        (a if i % 2 else b).record(v)
        both.record(v)
    m = merged([a.tobytes(), b.tobytes(), b""])
    assert m.counts == both.counts


def test_huge_values_are_clamped_and_bad_bytes_refused():
    h = Histogram()
    h.record(10 ** 15)
    assert len(h) == 1
    with pytest.raises(ValueError):
        Histogram.frombytes(b"\0" * 16)


def test_rows_bin_what_a_record_per_histogram_would():
    values = np.random.default_rng(5).lognormal(11, 2.0, (2_000, 3)).astype(np.int64).tolist()
    values += [[-3, 0, TOP + 10**6], [EXACT - 1, EXACT, 10**15], [-(1 << 64), 1 << 64, 5], [7, 1 << 64, 9]]  # stamps out of range, first and in the middle
    one_by_one, in_rows = [Histogram() for _ in range(3)], [Histogram() for _ in range(3)]
    rows = Rows(in_rows, batch=64)
    for vals in values:
        for h, v in zip(one_by_one, vals):
            h.record(v)
        rows.record(vals)
    assert 0 < sum(map(len, in_rows)) < sum(map(len, one_by_one))  # binned 64 rows at a time...
    rows.flush()  # ...and the rest when asked
    for a, b in zip(one_by_one, in_rows):
        assert a.counts == b.counts and len(b) == len(values)
