"""The publishers' welcome contract: a WELCOME is sent once the subscription is in effect."""
from __future__ import annotations

import time

import zmq

from zmqtrade import sockets, wire


def test_welcome_comes_only_once_the_subscription_is_in_effect(tmp_path):
    ctx = zmq.Context()
    try:
        pub = sockets.publisher(ctx, f"ipc://{tmp_path}/p.ipc", "news", 42, 1000, False)
        first = sockets.subscriber(ctx, f"ipc://{tmp_path}/p.ipc")
        deadline = time.monotonic() + 10
        while not pub.poll(100):  # the subscription has reached the publisher...
            assert time.monotonic() < deadline
        pub.send(wire.encode_news(1, "AAPL", 50, 1))  # ...but it is not applied yet: not for it
        assert not first.poll(200), "a message reached a subscriber before its WELCOME"
        assert sockets.drain_subscriptions(pub) == 1
        assert sockets.await_welcome(first, time.monotonic() + 10) == wire.Welcome("news", 42)
        pub.send(wire.encode_news(2, "AAPL", 50, 1))  # from the WELCOME on, nothing is missed
        assert first.poll(5000) and wire.unpack(first.recv())[1][0] == 2

        second = sockets.subscriber(ctx, f"ipc://{tmp_path}/p.ipc")
        silent = sockets.subscriber(ctx, f"ipc://{tmp_path}/p.ipc", topic=sockets.NOTHING)
        got = 0
        while got < 2:  # each is greeted alone: the first subscriber sees no second WELCOME
            assert time.monotonic() < deadline + 10
            if pub.poll(100):
                got += sockets.drain_subscriptions(pub)
        sockets.await_welcome(second, time.monotonic() + 10)
        pub.send(wire.encode_news(3, "AAPL", 50, 1))
        assert wire.unpack(first.recv())[1][0] == 3 and wire.unpack(second.recv())[1][0] == 3
        assert not first.poll(100) and not silent.poll(100)  # no stray WELCOME; NOTHING gets nothing

        second.setsockopt(zmq.UNSUBSCRIBE, b"")  # an unsubscription applies to its sender alone
        while not pub.poll(100):
            pass
        sockets.drain_subscriptions(pub)
        pub.send(wire.encode_news(4, "AAPL", 50, 1))
        assert wire.unpack(first.recv())[1][0] == 4
        assert not second.poll(200)
        for s in (first, second, silent, pub):
            s.close(linger=0)
    finally:
        ctx.term()
