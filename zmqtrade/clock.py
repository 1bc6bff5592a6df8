"""The stack clock: the timestamps that messages carry, comparable across hosts.

On one host every process reads the same CLOCK_MONOTONIC, so a tick stamped by the gateway
and an ack read by a strategy can be subtracted directly. Two hosts' monotonic clocks start
at their boots, days apart. So every host's launcher measures how far its clock is from the
lead launcher's (:mod:`zmqtrade.launch.peering`, NTP-style, to within half the best round trip) and
starts its processes with ``--clock-offset``; they stamp ``now_ns()``, the lead's clock as
seen from here. On the lead's host, and in a one-host stack, the offset is 0 and ``now_ns``
is ``time.monotonic_ns`` itself.

Call it as ``clock.now_ns()`` (not ``from ... import now_ns``): :func:`set_offset` rebinds it.
"""
from __future__ import annotations

import time

offset_ns = 0
now_ns = time.monotonic_ns


def set_offset(ns: int) -> None:
    """Make ``now_ns`` the lead's clock: this host's monotonic clock plus ``ns``."""
    global offset_ns, now_ns
    offset_ns = int(ns)
    if not offset_ns:
        now_ns = time.monotonic_ns
        return
    mono = time.monotonic_ns

    def shifted() -> int:
        return mono() + offset_ns

    now_ns = shifted
