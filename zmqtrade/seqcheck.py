"""Sequence numbers of one stream, as every subscriber counts them: gaps, duplicates, restarts."""
from __future__ import annotations

from zmqtrade import wire

SEQ_WINDOW = 1 << 40
"""A sequence jump larger than this is no loss but a stream that started over, or a forged number:
no run publishes 10^12 ticks, while real gaps (100k-message HWMs of up to 512 ticks) stay far below."""


class SeqCheck:
    """One stream's sequence numbers: a jump counts as a gap, a repeat or step back as a duplicate.

    Shared by every subscriber (ticks, batches, doorbells, news), so they all count the same way;
    ``end`` counts what was sent after the last message received, from the end of stream.
    ``session`` is the publisher's, from its WELCOME: a publisher that restarted greets with a new
    one and numbers from 1 again, and :meth:`resync` starts counting afresh (``resyncs``) instead
    of calling its whole new stream duplicates.
    """

    __slots__ = ("expected", "counters", "gaps", "duplicates", "session", "resync_due")

    def __init__(self, counters: dict[str, int], gaps: str, duplicates: str | None = None,
                 joined_late: bool = False) -> None:
        self.expected: int | None = None if joined_late else 1
        """Next number due; None until the first message when ``joined_late`` (a restarted process
        joins a stream already running: what was sent before it existed is not its gap)."""
        self.counters = counters
        self.gaps = gaps
        self.duplicates = duplicates
        self.session: int | None = None
        self.resync_due = False
        counters.setdefault(gaps, 0)
        if duplicates:
            counters.setdefault(duplicates, 0)
        counters.setdefault("resyncs", 0)

    def welcome(self, w: wire.Welcome) -> bool:
        """A WELCOME arrived; True if it opens a new session (resync before the next message)."""
        if self.session is None:
            self.session = w.session
            return False
        if w.session == self.session:
            return False
        self.session = w.session
        self.resync_due = True
        return True

    def resync(self) -> None:
        self.expected = 1  # a new session numbers from 1: what this subscriber missed of it is a gap
        self.resync_due = False
        self.counters["resyncs"] += 1

    def see(self, first: int, n: int = 1) -> int:
        """Account for messages ``first`` .. ``first + n - 1``; how many of them, from the front,
        were seen before (to skip). ``expected`` never moves backwards, except by a jump of more
        than ``SEQ_WINDOW`` either way: no queue holds that many, so it is a stream that started
        over (or one forged number), and counting from it resyncs instead of silencing the stream."""
        expected = self.expected
        if first == expected:  # the common case
            self.expected = first + n
            return 0
        if expected is None or abs(first - expected) > SEQ_WINDOW:
            if expected is not None:
                self.counters["resyncs"] += 1
            self.expected = first + n
            return 0
        if first > expected:
            self.counters[self.gaps] += first - expected
            self.expected = first + n
            return 0
        repeats = min(n, expected - first)
        if self.duplicates:
            self.counters[self.duplicates] += repeats
        self.expected = max(expected, first + n)
        return repeats

    def end(self, eos: wire.Eos | None) -> None:
        if eos is not None and self.expected is not None and eos.last_seq >= self.expected:
            self.counters[self.gaps] += eos.last_seq - self.expected + 1
