"""The shared-memory book: layout, lifecycle and the seqlock under real contention."""
from __future__ import annotations

import os
import stat
import time
import subprocess
import sys
from pathlib import Path

import pytest

from zmqtrade import bookcheck
from zmqtrade.book import Book, BookError, segment_name, sweep_stale

SHM = Path("/dev/shm")


def test_created_book_is_private_and_readable_by_another_mapping(tmp_path):
    with Book.create(segment_name("t1"), ["AAA", "BBBB.X"]) as b:
        assert stat.S_IMODE(os.stat(SHM / b.name).st_mode) == 0o600
        other = Book.attach(b.name)
        assert other.symbols == ("AAA", "BBBB.X") and other.index == {"AAA": 0, "BBBB.X": 1}
        assert other.read(0) is None and other.bid_ask(0) is None  # never written: no quote, not a zero price
        b.write(1, 1.5, 2.5, 2.0, 300, 7, 1000, 2000)
        b.write(1, 1.6, 2.6, 2.1, 400, 8, 1100, 2100)
        q = other.read(1)
        assert (q.symbol, q.bid, q.ask, q.last, q.size, q.tick_seq, q.tick_ts, q.write_ts, q.updates) == (
            "BBBB.X", 1.6, 2.6, 2.1, 400, 8, 1100, 2100, 2)
        assert other.bid_ask(1) == (1.6, 2.6)  # what the order manager prices an order from
        assert other.heartbeat_ns == 2100
        snap = other.snapshot()
        assert snap["seq"].tolist() == [0, 4] and snap["last"][1] == 2.1
        other.close()
        assert (SHM / b.name).exists()  # a reader closing never unlinks
    assert not (SHM / b.name).exists()  # the owner does


def test_a_write_left_unfinished_by_a_dead_writer_neither_stalls_readers_nor_outlives_a_new_writer():
    """A writer SIGSTOPped and then SIGKILLed between its two seq stores leaves the slot odd."""
    with Book.create(segment_name("t3"), ["AAA", "BBB"]) as b:
        b.write(0, 1.0, 2.0, 1.5, 100, 1, 10, 20)
        b.write(1, 3.0, 4.0, 3.5, 100, 2, 10, 20)
        reader = Book.attach(b.name)
        b._u[b._base] += 1  # slot 0 mid-write, for good
        t0 = time.monotonic()
        assert reader.read(0) is None  # gives up after READ_DEADLINE_S instead of raising
        assert time.monotonic() - t0 < 1.0
        b.claim_writer()  # the restarted writer: the unfinished slot becomes never written
        assert reader.read(0) is None and reader.read(1).bid == 3.0
        b.write(0, 5.0, 6.0, 5.5, 100, 3, 10, 20)
        assert reader.read(0).bid == 5.0
        reader.close()


def test_slots_are_64_byte_aligned(tmp_path):
    with Book.create(segment_name("t2"), [f"S{i}" for i in range(5)]) as b:
        assert (b._base * 8) % 64 == 0


def test_attach_refuses_what_is_not_a_book():
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(name=segment_name("junk"), create=True, size=4096)
    try:
        with pytest.raises(BookError, match="not a zmqtrade book"):
            Book.attach(shm.name)
    finally:
        shm.close()
        shm.unlink()


def test_attach_missing_segment_names_it():
    with pytest.raises(BookError, match="no book segment 'zmqtrade_nope'"):
        Book.attach("zmqtrade_nope", timeout=0.05)


def test_attached_segment_survives_the_attacher_exiting():
    """bpo-38119: on 3.11 an attaching process's resource tracker would unlink the segment."""
    with Book.create(segment_name("t3"), ["A"]) as b:
        code = (f"from zmqtrade.book import Book; b = Book.attach({b.name!r}); "
                f"b.write(0, 1.0, 2.0, 1.5, 1, 1, 1, 1); b.close()")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
        assert (SHM / b.name).exists()
        assert b.read(0).last == 1.5


def test_sweep_removes_segments_of_dead_creators_only():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = SHM / f"zmqtrade_{int(dead.stdout)}_stale"
    stale.write_bytes(b"\0" * 64)
    with Book.create(segment_name("live"), ["A"]) as live:
        removed = sweep_stale()
        assert stale.name in removed and not stale.exists()
        assert (SHM / live.name).exists()


def test_seqlock_never_tears_under_a_concurrent_writer():
    """A writer process hammers one slot while a reader process checks every read is whole."""
    w, r = bookcheck.stress(seconds=1.5)
    assert w["writes"] > 10_000 and r["reads"] > 10_000  # both really ran, concurrently
    assert r["torn"] == 0
