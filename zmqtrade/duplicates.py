"""The order manager's duplicate filter: the answers it replays to a re-sent order.

Orders are at least once (a strategy re-sends what was not answered); this filter makes their
effect exactly once: a repeated (strategy, client order id) gets the original answer, never a
second fill.

It keeps answers for ``replies_kept_s`` (by when they were made: at least a strategy's longest
re-send interval) and ``replies_kept`` of them at most (its memory bound). Past the bound, the
strategy that holds the most answers loses its oldest: a strategy that floods the order manager
pushes out its own answers, and a quieter neighbour keeps at least an equal share. It forgets by age,
not by client order id: an order it holds no answer for is refused as too old to replay only if
it was decided (its ``decide_ts``, which a re-send keeps) no later than the newest answer
forgotten for that strategy. An id says nothing about age: when it did, one forged order with
clordid 2^64-1, pushed out of the filter, made every later order of that strategy "too old". A
forged time cannot do the same: an answer is aged at the earlier of the order's ``decide_ts``
and the time it was received. (An id ahead of the clock is refused before the filter sees it.)
"""
from __future__ import annotations

from collections import deque

Key = tuple[str, int]
"""(strategy, client order id)."""


class DuplicateFilter:
    def __init__(self, keep_s: float, keep_max: int, counters: dict[str, int]) -> None:
        self.replies: dict[Key, list | tuple] = {}  # key -> reply fields
        self.kept: dict[str, deque[tuple[Key, int, int]]] = {}  # strategy -> (key, age, answered at) ns, oldest first
        self.keep_ns = int(keep_s * 1e9)
        self.keep_max = keep_max
        self.fresh: list[tuple[Key, list, int, int]] = []  # this commit's answers (key, reply, age, made), kept once sent
        self.forgotten: dict[str, int] = {}  # strategy -> newest age (ns) no longer held
        self.forgotten_early: dict[str, int] = {}  # the same, of answers the count bound dropped before their time
        self.counters = counters

    def __len__(self) -> int:
        return sum(map(len, self.kept.values()))

    def too_old(self, strategy: str, decide_ts: int) -> bool:
        """An order decided no later than an answer this filter forgot: it cannot be told apart
        from a re-send of one, so it must not be filled (the order manager inlines this test)."""
        return decide_ts <= self.forgotten.get(strategy, -1)

    def too_old_reason(self, strategy: str, decide_ts: int) -> str:
        """The reject reason for a :meth:`too_old` order: it says when the memory bound, not the
        age, forgot an answer, since only a larger ``replies_kept`` helps then."""
        if decide_ts <= self.forgotten_early.get(strategy, -1):
            return (f"duplicate of an order too old to replay; not filled again (the filter's {self.keep_max} "
                    f"answers, ordermanager.replies_kept, were full before replies_kept_s: raise it)")
        return "duplicate of an order too old to replay; not filled again"

    def remember(self, key: Key, reply: list, age_ns: int, now_ns: int) -> list:
        """This commit's ``reply``, findable at once (a re-send in the same batch gets it). Its
        place in the age order, and forgetting what it pushes out, wait for :meth:`settle`, after
        the replies are sent (so ``replies`` may hold one commit more than ``replies_kept``).
        The list is stamped when sent (:meth:`stamp`) and then stored as a tuple of plain values,
        which the cyclic garbage collector stops tracking: a cache of lists made every full
        collection walk tens of thousands of objects, a multi-millisecond pause seen as p99 latency."""
        self.replies[key] = reply
        self.fresh.append((key, reply, age_ns, now_ns))
        return reply

    def keep(self, key: Key, reply: list | tuple, age_ns: int, now_ns: int) -> list | tuple:
        """Keep ``reply`` for re-sends, answered at ``now_ns``; forget answers older than
        ``replies_kept_s`` (and the oldest past ``replies_kept``, the memory bound), but not the
        age of each (``age_ns``).

        Answers expire by the time they were made (our clock), never by a time the client sent.
        The oldest is found in ``kept``, not as ``next(iter(replies))``: a dict emptied from the
        front skips its deleted entries on every such call (a quarter of the CPU at 10k orders/s).
        """
        self.replies[key] = reply
        self._queue(key[0]).append((key, age_ns, now_ns))
        self._forget(now_ns)
        return reply

    def _queue(self, strategy: str) -> deque[tuple[Key, int, int]]:
        q = self.kept.get(strategy)
        if q is None:
            q = self.kept[strategy] = deque()
        return q

    def _forget(self, now_ns: int) -> None:
        """Drop the answers past ``replies_kept_s`` at ``now_ns``; then, past ``replies_kept``, the
        oldest of the strategy that holds the most (the order manager knows only its topology's
        strategies, so there are few queues to look at)."""
        horizon = now_ns - self.keep_ns
        replies, forgotten = self.replies, self.forgotten
        for strategy, q in self.kept.items():  # by age (the common case, inline: once per commit)
            newest = -1
            while q and q[0][2] < horizon:
                old, age, _ = q.popleft()
                del replies[old]
                if age > newest:
                    newest = age
            if newest > forgotten.get(strategy, -1):
                forgotten[strategy] = newest
        while len(replies) > self.keep_max:
            strategy, q = max(self.kept.items(), key=_held)
            self._drop(strategy, q, horizon)

    def _drop(self, strategy: str, q: deque[tuple[Key, int, int]], horizon: int) -> None:
        old, age, made = q.popleft()
        del self.replies[old]
        if made >= horizon:
            self.counters["replies_forgotten_early"] += 1  # the count bound, not the age, forgot it
            if age > self.forgotten_early.get(strategy, -1):
                self.forgotten_early[strategy] = age
        if age > self.forgotten.get(strategy, -1):
            self.forgotten[strategy] = age

    def stamp(self, sent_ns: int) -> None:
        """The sent time of this commit's answers (after the journal write)."""
        for _, reply, _, _ in self.fresh:
            reply[5] = sent_ns

    def settle(self) -> None:
        """Keep this commit's answers, as tuples, once they are sent (see :meth:`remember`)."""
        if not self.fresh:
            return
        replies, kept = self.replies, self.kept
        for key, reply, age_ns, now_ns in self.fresh:
            replies[key] = tuple(reply)
            q = kept.get(key[0])  # _queue, inlined: a call per answer is a fifth of this loop
            if q is None:
                q = kept[key[0]] = deque()
            q.append((key, age_ns, now_ns))
        self.fresh.clear()
        self._forget(now_ns)  # once per commit, at its newest answer's time


def _held(item: tuple[str, deque]) -> int:
    return len(item[1])
