"""SeqCheck: the one sequence rule every subscriber uses (ticks, batches, doorbells, news)."""
from __future__ import annotations

from zmqtrade import wire
from zmqtrade.seqcheck import SeqCheck


def test_gaps_duplicates_and_batches():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps", "dups")
    assert [s.see(1), s.see(2), s.see(5)] == [0, 0, 0] and c == {"gaps": 2, "dups": 0, "resyncs": 0}
    assert s.see(3) == 1 and s.expected == 6   # a step back is a repeat, never a rewind
    assert s.see(6) == 0 and c["gaps"] == 2     # ...so the next message is no false gap
    assert s.see(5, 4) == 2 and s.expected == 9  # a batch 5..8 overlapping 5..6: skip two
    assert c == {"gaps": 2, "dups": 3, "resyncs": 0}


def test_end_of_stream_counts_the_lost_tail():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps")
    s.see(1)
    s.end(wire.Eos("prices", 4))
    assert c["gaps"] == 3
    s.end(None)
    s.end(wire.Eos("prices", 1))
    assert c["gaps"] == 3


def test_a_new_session_resyncs_a_reconnect_does_not():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps", "dups")
    assert not s.welcome(wire.Welcome("prices", 7))  # the first greeting sets the session
    s.see(1, 100)
    assert not s.welcome(wire.Welcome("prices", 7))  # same publisher, reconnected: keep counting
    assert s.see(50) == 1 and c["dups"] == 1
    assert s.welcome(wire.Welcome("prices", 8))      # a restarted publisher numbers from 1 again
    s.resync()
    assert s.see(1) == 0 and s.see(2) == 0
    assert c == {"gaps": 0, "dups": 1, "resyncs": 1}


def test_a_jump_beyond_any_queue_resyncs_instead_of_silencing_the_stream():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps", "dups")
    s.see(1, 10)
    assert s.see(2**63) == 0          # one forged number...
    assert s.see(11) == 0 and s.see(12) == 0  # ...does not make the real stream duplicates
    assert c == {"gaps": 0, "dups": 0, "resyncs": 2}


def test_a_restarted_subscriber_counts_from_the_first_message_it_sees():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps", "dups", joined_late=True)
    assert s.see(5000, 3) == 0 and s.see(5004) == 0
    assert c == {"gaps": 1, "dups": 0, "resyncs": 0}
