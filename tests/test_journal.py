"""The journal's crash safety: torn tails cut on open, damage refused, fsync per policy."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from zmqtrade import journal
from zmqtrade.journal import Journal, JournalError
from zmqtrade.wire import Order

ORDER = Order(7, "trend", "AAPL", "BUY", 10, 101.5, 1, 2, 3, 4)


@pytest.mark.parametrize("tail, torn", [(b'{"order_id":2,"cl', 17), (b"\x00\x00\x00\x00", 0),
                                        (b'{"order_id":2,"cl\x00\x00\n', 20), (b'{"order_id":2\x00\x00', 13)])
def test_a_torn_last_record_is_cut_off_so_appends_start_on_a_clean_line(tmp_path, tail, torn):
    """NULs after the last record are a killed writer's reserve (cut, not counted as torn)."""
    path = tmp_path / journal.FILENAME
    path.write_bytes(journal.record(1, ORDER, 101.0, 5).encode() + tail)
    replayed: list[dict] = []
    j = Journal(path, replay=replayed.append)
    assert [r["order_id"] for r in replayed] == [1] and (j.recovered, j.torn_bytes) == (1, torn)
    j.append_lines([journal.record(2, ORDER, 102.0, 6)])
    j.close()
    assert [r["order_id"] for r in journal.read(path)] == [1, 2]


def test_damage_before_the_end_is_refused_naming_the_line(tmp_path):
    path = tmp_path / journal.FILENAME
    path.write_bytes(journal.record(1, ORDER, 101.0, 5).encode() + b"garbage\n"
                     + journal.record(2, ORDER, 101.0, 5).encode())
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


def test_the_reserve_ahead_of_the_records_is_never_read_and_is_cut_on_close(tmp_path):
    path = tmp_path / journal.FILENAME
    j = Journal(path)
    lines = [journal.record(i, ORDER, 101.0, 5) for i in range(1, 4)]
    j.append_lines(lines[:2])
    j.append_lines(lines[2:])
    data = path.read_bytes()  # as a reader sees it while the order manager runs
    assert data[:j.size] == "".join(lines).encode() and len(data) >= j.size + journal.RESERVE_BYTES // 2
    assert data[j.size:] == bytes(len(data) - j.size)
    assert [r["order_id"] for r in journal.read(path)] == [1, 2, 3] and journal.count(path) == 3
    j.close()
    assert path.read_bytes() == "".join(lines).encode()


def test_commits_past_the_reserve_and_across_many_reserves_all_land_in_order(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "RESERVE_BYTES", 8192)  # a reserve of ~40 records: it is outrun and regrown
    monkeypatch.setattr(journal, "WRITABLE_AHEAD", 4096)
    path = tmp_path / journal.FILENAME
    j = Journal(path)
    n = 0
    for size in [1, 3, 2] * 100 + [400]:  # the last commit (~80 KB) is ten reserves at once
        j.append_lines([journal.record(n + i + 1, ORDER, 101.0, 5) for i in range(size)])
        n += size
        j.prepare()
    j.close()
    assert [r["order_id"] for r in journal.read(path)] == list(range(1, n + 1))
    assert os.path.getsize(path) == j.size


KILLED_WRITER = """
import os, signal, sys
from zmqtrade import journal
from zmqtrade.wire import Order
j = journal.Journal(sys.argv[1])
o = Order(7, "trend", "AAPL", "BUY", 10, 101.5, 1, 2, 3, 4)
j.append_lines([journal.record(i, o, 101.0, 5) for i in (1, 2)])
j.append_lines([journal.record(3, o, 101.0, 5)])
os.kill(os.getpid(), signal.SIGKILL)  # between commits, with the reserve mapped ahead
"""


def test_a_killed_writer_leaves_its_reserve_which_trim_and_the_next_opening_cut(tmp_path):
    path = tmp_path / journal.FILENAME
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    records = b"".join(journal.record(i, ORDER, 101.0, 5).encode() for i in (1, 2, 3))
    data = path.read_bytes()
    assert data.startswith(records) and data[len(records):] == bytes(len(data) - len(records)) and len(data) > len(records)
    assert [r["order_id"] for r in journal.read(path)] == [1, 2, 3] and journal.count(path) == 3

    again = path.with_name("copy.jsonl")
    again.write_bytes(data)
    j = Journal(again)  # the order manager's next life: the reserve is not a torn record
    assert (j.recovered, j.torn_bytes, j.size) == (3, 0, len(records))
    j.append_lines([journal.record(4, ORDER, 101.0, 5)])
    j.close()
    assert [r["order_id"] for r in journal.read(again)] == [1, 2, 3, 4]

    assert journal.trim(path) == len(data) - len(records)  # the launcher, when no life follows
    assert path.read_bytes() == records
    assert journal.trim(path) == 0
