"""The duplicate filter on its own: what it keeps is nothing the cyclic garbage collector tracks
(a cache of tracked objects made the order manager's young collections run inside its orders),
and it still answers re-sends with the original answer, by age and within its bound."""
from __future__ import annotations

import gc

import pytest

from zmqtrade import wire
from zmqtrade.duplicates import SEGMENT, DuplicateFilter

SECOND = 10**9


def commit(f: DuplicateFilter, strategy: str, clordids: range, now: int) -> None:
    for cid in clordids:
        f.remember(strategy, cid, [cid, wire.FILLED, cid, 100.5, now, 0], now, now)
    f.stamp(now + 1)
    f.settle()


@pytest.fixture
def collector_off():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


def test_the_answers_kept_are_not_tracked_by_the_cyclic_collector(collector_off):
    f = DuplicateFilter(10.0, 100_000, {"replies_forgotten_early": 0})
    commit(f, "s1", range(1, 33), SECOND)  # the dict and queues exist: only their growth is left
    before = gc.get_count()[0]
    for first in range(33, 20_033, 32):
        commit(f, "s1", range(first, first + 32), SECOND)
    assert len(f) == 20_032
    assert gc.get_count()[0] - before < 100  # three tracked objects an answer would be 60,000


def test_a_resend_gets_its_original_answer_until_it_is_too_old():
    counters = {"replies_forgotten_early": 0}
    f = DuplicateFilter(1.0, 1000, counters)
    commit(f, "s1", range(1, 4), SECOND)
    assert f.answer("s1", 2) == [2, wire.FILLED, 2, 100.5, SECOND, SECOND + 1]
    assert f.answer("s2", 2) is None and f.answer("s1", 9) is None
    commit(f, "s1", range(4, 5), 3 * SECOND)  # two seconds on: the first three age out
    assert f.answer("s1", 2) is None and len(f) == 1
    assert f.too_old("s1", SECOND) and not f.too_old("s1", SECOND + 1)
    assert counters["replies_forgotten_early"] == 0


def test_past_its_bound_the_strategy_holding_most_loses_its_oldest():
    counters = {"replies_forgotten_early": 0}
    f = DuplicateFilter(10.0, 10, counters)
    commit(f, "quiet", range(1, 4), SECOND)
    commit(f, "flood", range(1, 11), SECOND)
    assert len(f) == 10 and counters["replies_forgotten_early"] == 3
    assert all(f.answer("quiet", c) for c in (1, 2, 3))
    assert f.answer("flood", 3) is None and f.answer("flood", 4) is not None
    assert "replies_kept" in f.too_old_reason("flood", SECOND)


def test_answers_span_segments_none_larger_than_one_and_emptied_ones_go():
    """One dict holding everything was rebuilt whole whenever its table filled (milliseconds at
    100k answers); segments keep every rebuild small and still find every answer kept."""
    f = DuplicateFilter(2.0, 1_000_000, {"replies_forgotten_early": 0})
    n = 3 * SEGMENT + 100
    for first in range(1, n + 1, 50):
        commit(f, "s1", range(first, min(first + 50, n + 1)), SECOND)
    held = f.kept["s1"]
    assert len(held.segments) == 4 and max(map(len, held.segments)) < SEGMENT + 50
    assert all(f.answer("s1", c)[0] == c for c in (1, SEGMENT, SEGMENT + 1, n))
    assert f.answer("s1", n + 1) is None and f.answer("s1", 0) is None
    commit(f, "s1", range(0, 1), SECOND)  # an id below the newest, never answered: kept as well
    assert f.answer("s1", 0)[0] == 0 and len(f) == n + 1
    commit(f, "s1", range(n + 1, n + 2), 4 * SECOND)  # two seconds on: all but the newest age out
    assert len(f) == 1 and len(held.segments) == 1 and f.answer("s1", n + 1) is not None
    assert f.answer("s1", SEGMENT) is None and f.too_old("s1", SECOND)


def test_the_queues_are_made_before_start_up_is_frozen_so_no_collection_walks_them():
    """The order manager freezes what it made at start-up (gc.freeze); the queues of every
    strategy of its topology are among it, so a young collection never walks their 100k ints."""
    f = DuplicateFilter(10.0, 100_000, {"replies_forgotten_early": 0}, ["s1", "s2"])
    gc.freeze()
    try:
        commit(f, "s1", range(1, 1001), SECOND)
        queues = [q for held in f.kept.values() for q in (held.clordids, held.ages, held.made)]
        walked = {id(o) for o in gc.get_objects()}  # every generation a collection walks
        assert len(f.kept["s1"]) == 1000 and not any(id(q) in walked for q in queues)
        assert not any(gc.is_tracked(seg) for held in f.kept.values() for seg in held.segments)
    finally:
        gc.unfreeze()
