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
from typing import Iterable

import msgspec

from zmqtrade.wire import encode_fields

_decode = msgspec.msgpack.Decoder().decode


SEGMENT = 4096
"""Answers a segment takes before the next one starts. One dict that takes new keys and loses
its oldest is rebuilt whenever its entry table fills (deleted keys keep their slots): with the
filter full that was a stall of the order manager of ~3 ms every 7.5 s at 10k orders/s and of
4-13 ms every second at 50k (a rebuild is 2.3 ms at 87k keys, 4.3 at 175k in a tight loop), and
each stall the latency of every order queued behind it. A segment is rebuilt only while it grows
(~60 us at most); the older ones only lose keys, which never rebuilds a dict."""


class _Held:
    """One strategy's answers in the order they were made: dicts of ``SEGMENT`` answers keyed by
    client order id, and three queues of plain ints, so that what the filter keeps for 10 s is
    nothing Python's cyclic garbage collector tracks: this commit's answers wait in
    ``unsettled`` while they are lists, so the segments hold only ints and bytes (dicts the
    collector does not track). The queues it does track, and a collection of their generation
    walks every int in them: made at a strategy's first order, the first young collection after
    the filter had filled walked 300k ints, a ~10 ms stall at 10k orders/s. So they are made
    with the filter, for every strategy of the topology, before the process freezes what it
    made at start-up (:func:`zmqtrade.runner.serve`)."""

    __slots__ = ("clordids", "ages", "made", "segments", "unsettled", "hi")

    def __init__(self) -> None:
        self.clordids: deque[int] = deque()
        self.ages: deque[int] = deque()  # ns: the earlier of decide_ts and the time received
        self.made: deque[int] = deque()  # ns: when the answer was made (our clock)
        self.segments: deque[dict[int, bytes]] = deque([{}])  # oldest first; the last takes new answers
        self.unsettled: dict[int, list] = {}  # this commit's answers, lists until sent
        self.hi = -1  # no answer held has a higher id: a new order (ids count up) is one comparison

    def __len__(self) -> int:
        return len(self.clordids)

    def find(self, clordid: int) -> bytes | list | None:
        if clordid > self.hi:
            return None
        reply = self.unsettled.get(clordid)
        if reply is not None:
            return reply
        for seg in reversed(self.segments):  # a re-send is usually recent
            reply = seg.get(clordid)
            if reply is not None:
                return reply
        return None

    def put(self, clordid: int, reply: bytes) -> None:
        """A settled answer, into the last segment."""
        self.segments[-1][clordid] = reply
        if clordid > self.hi:
            self.hi = clordid

    def roll(self) -> None:
        """Start a new segment once the last is full. One also losing its oldest (the only one)
        stays below ``SEGMENT`` keys, so its rebuilds stay as cheap."""
        if len(self.segments[-1]) >= SEGMENT:
            self.segments.append({})

    def pop_oldest(self) -> tuple[int, int]:
        """Forget the oldest answer; its (age, made)."""
        segments = self.segments
        del segments[0][self.clordids.popleft()]
        if not segments[0] and len(segments) > 1:
            segments.popleft()
        return self.ages.popleft(), self.made.popleft()


class DuplicateFilter:
    """Answers are kept as their encoded fields (bytes), per strategy in :class:`_Held`: no
    tuple, list or key object outlives its commit. Kept as tuples, three per order (key, answer,
    age entry) made the order manager's young collections run ~40 times a second at 10k orders/s
    (~60 us each, ~1 ms when they reached the middle generation), inside the decisions of the
    orders in flight."""

    def __init__(self, keep_s: float, keep_max: int, counters: dict[str, int], strategies: Iterable[str] = ()) -> None:
        self.kept: dict[str, _Held] = {s: _Held() for s in strategies}  # -> answers (a list until settled, then bytes)
        self.held = 0  # answers kept in all
        self.keep_ns = int(keep_s * 1e9)
        self.keep_max = keep_max
        self.fresh: list[tuple[str, int, list, int, int]] = []  # this commit's (strategy, clordid, reply, age, made)
        self.forgotten: dict[str, int] = {}  # strategy -> newest age (ns) no longer held
        self.forgotten_early: dict[str, int] = {}  # the same, of answers the count bound dropped before their time
        self.counters = counters

    def __len__(self) -> int:
        return self.held

    def answer(self, strategy: str, clordid: int) -> list | None:
        """The answer given to (``strategy``, ``clordid``), if it is still kept."""
        held = self.kept.get(strategy)
        if held is None:
            return None
        reply = held.find(clordid)
        return reply if reply is None or type(reply) is list else _decode(reply)

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

    def remember(self, strategy: str, clordid: int, reply: list, age_ns: int, now_ns: int) -> list:
        """This commit's ``reply``, findable at once (a re-send in the same batch gets it). Its
        place in the age order, and forgetting what it pushes out, wait for :meth:`settle`, after
        the replies are sent (so the filter may hold one commit more than ``replies_kept``). The
        list is stamped when sent (:meth:`stamp`) and kept encoded from then on."""
        held = self.kept.get(strategy)
        if held is None:
            held = self.kept[strategy] = _Held()
        held.unsettled[clordid] = reply
        if clordid > held.hi:
            held.hi = clordid
        self.fresh.append((strategy, clordid, reply, age_ns, now_ns))
        return reply

    def keep(self, strategy: str, clordid: int, reply: list | tuple, age_ns: int, now_ns: int) -> None:
        """Keep ``reply`` for re-sends, answered at ``now_ns``; forget answers older than
        ``replies_kept_s`` (and the oldest past ``replies_kept``, the memory bound), by the time
        each was made (our clock), never by a time the client sent."""
        q = self.kept.get(strategy)
        if q is None:
            q = self.kept[strategy] = _Held()
        q.put(clordid, encode_fields(reply))
        q.clordids.append(clordid)
        q.ages.append(age_ns)
        q.made.append(now_ns)
        q.roll()
        self.held += 1
        self._forget(now_ns)

    def _forget(self, now_ns: int) -> None:
        """Drop the answers past ``replies_kept_s`` at ``now_ns``; then, past ``replies_kept``, the
        oldest of the strategy that holds the most (the order manager knows only its topology's
        strategies, so there are few queues to look at)."""
        horizon = now_ns - self.keep_ns
        forgotten = self.forgotten
        for strategy, q in self.kept.items():  # by age (the common case, inline: once per commit)
            made = q.made
            if not made or made[0] >= horizon:
                continue
            segments, clordids, ages = q.segments, q.clordids, q.ages
            oldest = segments[0]
            newest, dropped = -1, 0
            while made and made[0] < horizon:  # q.pop_oldest, inlined: a call per answer is a third of this loop
                made.popleft()
                del oldest[clordids.popleft()]
                if not oldest and len(segments) > 1:
                    segments.popleft()
                    oldest = segments[0]
                age = ages.popleft()
                dropped += 1
                if age > newest:
                    newest = age
            self.held -= dropped
            if newest > forgotten.get(strategy, -1):
                forgotten[strategy] = newest
        while self.held > self.keep_max:
            strategy, q = max(self.kept.items(), key=_held)
            self._drop(strategy, q, horizon)

    def _drop(self, strategy: str, q: _Held, horizon: int) -> None:
        age, made = q.pop_oldest()
        self.held -= 1
        if made >= horizon:
            self.counters["replies_forgotten_early"] += 1  # the count bound, not the age, forgot it
            if age > self.forgotten_early.get(strategy, -1):
                self.forgotten_early[strategy] = age
        if age > self.forgotten.get(strategy, -1):
            self.forgotten[strategy] = age

    def stamp(self, sent_ns: int) -> None:
        """The sent time of this commit's answers (after the journal write)."""
        for _, _, reply, _, _ in self.fresh:
            reply[5] = sent_ns

    def settle(self) -> None:
        """Keep this commit's answers, encoded, once they are sent (see :meth:`remember`)."""
        if not self.fresh:
            return
        kept = self.kept
        for strategy, clordid, reply, age_ns, now_ns in self.fresh:
            q = kept[strategy]  # made by remember; inlined below: a call per answer is a fifth of this loop
            q.segments[-1][clordid] = encode_fields(reply)
            q.clordids.append(clordid)
            q.ages.append(age_ns)
            q.made.append(now_ns)
        for q in kept.values():
            q.unsettled.clear()
            q.roll()
        self.held += len(self.fresh)
        self.fresh.clear()
        self._forget(now_ns)  # once per commit, at its newest answer's time


def _held(item: tuple[str, _Held]) -> int:
    return len(item[1])
