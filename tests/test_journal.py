"""The journal's crash safety: torn tails cut on open, damage refused, fsync per policy."""
from __future__ import annotations

import os

import pytest

from zmqtrade import journal
from zmqtrade.journal import Journal, JournalError
from zmqtrade.wire import Order

ORDER = Order(7, "trend", "AAPL", "BUY", 10, 101.5, 1, 2, 3, 4)


@pytest.mark.parametrize("tail", [b'{"order_id":2,"cl', b"\x00\x00\x00\x00", b'{"order_id":2,"cl\x00\x00\n'])
def test_a_torn_last_record_is_cut_off_so_appends_start_on_a_clean_line(tmp_path, tail):
    path = tmp_path / journal.FILENAME
    path.write_bytes(journal.record(1, ORDER, 101.0, 5) + tail)
    replayed: list[dict] = []
    j = Journal(path, replay=replayed.append)
    assert [r["order_id"] for r in replayed] == [1] and (j.recovered, j.torn_bytes) == (1, len(tail))
    j.append_lines([journal.record(2, ORDER, 102.0, 6)])
    j.close()
    assert [r["order_id"] for r in journal.read(path)] == [1, 2]


def test_damage_before_the_end_is_refused_naming_the_line(tmp_path):
    path = tmp_path / journal.FILENAME
    path.write_bytes(journal.record(1, ORDER, 101.0, 5) + b"garbage\n"
                     + journal.record(2, ORDER, 101.0, 5))
    with pytest.raises(JournalError, match="line 2 is not a complete record"):
        Journal(path)


@pytest.mark.parametrize("policy, syncs", [("batch", 2), ("order", 2), ("off", 0)])
def test_fsync_policy(tmp_path, monkeypatch, policy, syncs):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    j = Journal(tmp_path / journal.FILENAME, policy)
    j.append_lines([journal.record(1, ORDER, 101.0, 5), journal.record(2, ORDER, 101.0, 5)])
    j.append_lines([journal.record(3, ORDER, 101.0, 5)])
    j.close()
    assert len(calls) == syncs  # one flush per commit: the order manager commits per order under "order"
    assert stat_mode(tmp_path / journal.FILENAME) == 0o600


def stat_mode(path) -> int:
    return os.stat(path).st_mode & 0o777
