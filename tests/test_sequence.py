"""SeqCheck: the one sequence rule every subscriber uses (ticks, batches, doorbells, news)."""
from __future__ import annotations

from zmqtrade import wire
from zmqtrade.service import SeqCheck


def test_gaps_duplicates_and_batches():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps", "dups")
    assert [s.see(1), s.see(2), s.see(5)] == [0, 0, 0] and c == {"gaps": 2, "dups": 0}
    assert s.see(3) == 1 and s.expected == 6   # a step back is a repeat, never a rewind
    assert s.see(6) == 0 and c["gaps"] == 2     # ...so the next message is no false gap
    assert s.see(5, 4) == 2 and s.expected == 9  # a batch 5..8 overlapping 5..6: skip two
    assert c == {"gaps": 2, "dups": 3}


def test_end_of_stream_counts_the_lost_tail():
    c: dict[str, int] = {}
    s = SeqCheck(c, "gaps")
    s.see(1)
    s.end(wire.Eos("prices", 4))
    assert c == {"gaps": 3}
    s.end(None)
    s.end(wire.Eos("prices", 1))
    assert c == {"gaps": 3}
