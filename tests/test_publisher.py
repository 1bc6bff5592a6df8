"""The publishers' welcome contract: a WELCOME is sent once the subscription is in effect."""
from __future__ import annotations

import time

import pytest
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


def rogue_xsub(ctx: zmq.Context) -> zmq.Socket:
    """A client that talks to a publisher as an XSUB: it may send anything upstream."""
    rogue = ctx.socket(zmq.XSUB)
    rogue.setsockopt(zmq.LINGER, 0)
    return rogue


@pytest.mark.parametrize("flood", ["garbage", "long topics"])
def test_a_hostile_xsub_is_served_in_slices_and_misdirects_nothing(tmp_path, flood):
    """Garbage, or over-long topics, from an XSUB are read a bounded slice per call, never applied,
    and never leave libzmq's "last subscriber" pointing at the rogue: a real subscriber joining
    meanwhile is welcomed and then gets every message."""
    ctx = zmq.Context()
    try:
        ep = f"ipc://{tmp_path}/p.ipc"
        pub = sockets.publisher(ctx, ep, "prices", 7, 100_000, False)
        rogue = rogue_xsub(ctx)
        rogue.connect(ep)
        for i in range(3 * sockets.MAX_NOTIFICATIONS):
            rogue.send(b"\x01" + b"t" * (sockets.MAX_TOPIC + 1) if flood == "long topics" else b"\x02garbage")
        real = sockets.subscriber(ctx, ep)
        deadline = time.monotonic() + 20
        calls, subscribed = 0, 0
        while not subscribed:
            assert time.monotonic() < deadline, "the real subscription never came through the flood"
            if pub.poll(100):
                calls += 1
                subscribed += sockets.drain_subscriptions(pub)
        assert calls > 1  # the flood took several slices, none of them unbounded
        assert pub.subscriptions == 1  # only the real one applied
        sockets.await_welcome(real, time.monotonic() + 10)
        for n in range(1, 4):
            pub.send(wire.encode_news(n, "AAPL", 50, 1))
        assert [wire.unpack(real.recv())[1][0] for _ in range(3)] == [1, 2, 3]
        assert not rogue.poll(200), "a refused topic or garbage got messages"
        for s in (rogue, real, pub):
            s.close(linger=0)
    finally:
        ctx.term()


@pytest.mark.parametrize("size", [sockets.PUBLISHER_MAX_INBOUND + 1, 8192])
def test_a_subscription_longer_than_any_topic_drops_its_connection(tmp_path, size):
    from zmq.utils.monitor import recv_monitor_message

    ctx = zmq.Context()
    try:
        ep = f"ipc://{tmp_path}/p.ipc"
        pub = sockets.publisher(ctx, ep, "prices", 7, 1000, False)
        rogue = rogue_xsub(ctx)
        monitor = rogue.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        rogue.connect(ep)
        rogue.send(b"\x01" + b"t" * (size - 1))  # libzmq would keep it in its trie; the size limit refuses it
        assert monitor.poll(10_000), f"a subscription of {size} bytes was accepted"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        rogue.disable_monitor()
        monitor.close(linger=0)
        assert sockets.drain_subscriptions(pub) == 0
        for s in (rogue, pub):
            s.close(linger=0)
    finally:
        ctx.term()
