"""The event loop's poller: no input is left waiting behind a reset ZMQ_FD."""
from __future__ import annotations

import os
import select
import time

import zmq

from zmqtrade.poller import Poller


def pair(ctx: zmq.Context, name: str) -> tuple[zmq.Socket, zmq.Socket]:
    """Over inproc: a message is in its peer's queue when ``send`` returns (no I/O thread
    between), so a test that sends three and reads one knows two are queued behind it. Over ipc
    the third could still be on its way, and ``more`` then said no (a flaky failure, seen)."""
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.bind(f"inproc://{name}")
    b.connect(f"inproc://{name}")
    for s in (a, b):
        s.setsockopt(zmq.LINGER, 0)
    return a, b


def wait_for(poller: Poller, source, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while source not in poller.wait(100):
        assert time.monotonic() < deadline, "never ready"


def test_input_behind_a_send_and_a_short_read_is_not_left_waiting():
    ctx = zmq.Context()
    try:
        mine, peer = pair(ctx, "a")
        other, other_peer = pair(ctx, "b")
        r, w = os.pipe()
        poller = Poller(mine, other, r)
        peer.send(b"1")
        wait_for(poller, mine)
        assert mine.recv() == b"1"
        assert not poller.more(mine)  # read to the end: settled, nothing asked before sleeping

        peer.send(b"2")
        assert select.select([mine.getsockopt(zmq.FD)], [], [], 5)[0]  # it landed, and signalled...
        mine.send(b"out")  # ...and a send may take that signal away
        poller.touched(mine)
        assert mine in poller.wait(1000)  # ...so a touched socket is asked before any sleep
        assert mine.recv() == b"2" and not poller.more(mine)

        for i in range(3):
            peer.send(b"%d" % i)
        wait_for(poller, mine)
        assert mine.recv() == b"0"  # stopped short of EAGAIN: no new signal will come
        poller.touched(mine)
        assert mine in poller.wait(1000) and mine.recv() == b"1"  # (others may show: "may hold input")
        assert poller.more(mine) and mine.recv() == b"2" and not poller.more(mine)

        os.write(w, b"x")  # a plain descriptor: readable is ready
        assert r in poller.wait(1000)
        os.read(r, 1)
        other_peer.send(b"late")
        wait_for(poller, other)
        assert other.recv() == b"late"
        poller.close()
        os.close(r)
        os.close(w)
        for s in (mine, peer, other, other_peer):
            s.close()
    finally:
        ctx.destroy(linger=0)
