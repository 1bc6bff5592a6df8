"""The pipe doorbell: FIFOs beside the book, found, reopened and cleaned up by their owners."""
from __future__ import annotations

import os
import stat

from zmqtrade import bell, wire
from zmqtrade.bell import BellReader, BellWriter
from zmqtrade.book import Book, segment_name


def make_book(tmp_path) -> Book:
    return Book.create(segment_name(f"bell{tmp_path.name[-10:]}"), ["AAPL", "MSFT"])


def test_doorbells_arrive_in_order_with_welcome_and_end_of_stream(tmp_path):
    with make_book(tmp_path) as book:
        reader = BellReader(book.name, "s1")
        try:
            assert stat.S_IMODE(os.stat(reader.path).st_mode) == 0o600  # the stack's user alone
            counters: dict[str, int] = {}
            writer = BellWriter(book.name, {"s1": None, "absent": None}, 77, counters)
            writer.rescan()  # opens s1's pipe and greets it; "absent" made none: skipped
            assert counters["pipe_readers"] == 1
            writer.ring([0])
            writer.ring([1, 0])
            writer.end()
            msgs, eos = reader.messages()
            assert msgs == [wire.Welcome("doorbell", 77), wire.Doorbell(1, (0,), 0), wire.Doorbell(2, (1, 0), 0)]
            assert eos == wire.Eos("doorbell", 2)
            assert reader.messages() == ([], None)  # nothing more: a spurious wake reads nothing
            writer.close()
        finally:
            reader.close()
        assert not reader.path.exists()


def test_a_full_pipe_drops_whole_doorbells_and_counts_them(tmp_path):
    with make_book(tmp_path) as book:
        reader = BellReader(book.name, "s1")
        counters: dict[str, int] = {}
        writer = BellWriter(book.name, {"s1": None}, 1, counters)
        try:
            writer.rescan()
            reader.messages()  # the welcome
            seq = 0
            while not counters["pipe_doorbells_dropped"]:  # fill it: a reader that stopped reading
                seq += 1
                writer.ring(list(range(bell.MAX_SLOTS)) if seq % 2 else [1])
            msgs, _ = reader.messages()
            assert [m.seq for m in msgs] == list(range(1, seq))  # every doorbell whole, up to the drop
            assert all(len(m.slots) == (bell.MAX_SLOTS if m.seq % 2 else 1) for m in msgs)
        finally:
            writer.close()
            reader.close()


def test_a_restarted_reader_gets_a_fresh_pipe_and_a_new_welcome(tmp_path):
    with make_book(tmp_path) as book:
        counters: dict[str, int] = {}
        writer = BellWriter(book.name, {"s1": None}, 5, counters)
        first = BellReader(book.name, "s1")
        writer.rescan()
        first.close()  # its process died (its FIFO removed) ...
        writer.ring([0])  # ... so the write finds no reader: the pipe is dropped
        assert counters["pipe_readers"] == 0
        second = BellReader(book.name, "s1")  # its next life makes a new FIFO
        try:
            writer.rescan()
            writer.ring([1])
            msgs, _ = second.messages()  # a new pipe numbers from 1
            assert msgs == [wire.Welcome("doorbell", 5), wire.Doorbell(1, (1,), 0)]
        finally:
            writer.close()
            second.close()


def test_each_reader_is_rung_for_its_own_slots_and_numbered_on_its_own(tmp_path):
    with make_book(tmp_path) as book:
        low, high = BellReader(book.name, "low"), BellReader(book.name, "high")
        counters: dict[str, int] = {}
        writer = BellWriter(book.name, {"low": [0], "high": [1]}, 9, counters)
        try:
            writer.rescan()
            for slots in ([0], [1], [1], [1, 0], [0]):
                writer.ring(slots)
            writer.end()
            msgs, eos = low.messages()
            assert msgs == [wire.Welcome("doorbell", 9), wire.Doorbell(1, (0,), 0), wire.Doorbell(2, (0,), 0),
                            wire.Doorbell(3, (0,), 0)]
            assert eos == wire.Eos("doorbell", 3)
            msgs, eos = high.messages()
            assert msgs == [wire.Welcome("doorbell", 9), wire.Doorbell(1, (1,), 0), wire.Doorbell(2, (1,), 0),
                            wire.Doorbell(3, (1,), 0)]
            assert eos == wire.Eos("doorbell", 3)
        finally:
            writer.close()
            low.close()
            high.close()


def test_the_book_owner_removes_pipes_a_killed_reader_left(tmp_path):
    book = make_book(tmp_path)
    left = bell.fifo_path(book.name, "s1")
    os.mkfifo(left, 0o600)  # as a SIGKILLed strategy leaves it
    book.close()
    assert not left.exists()
