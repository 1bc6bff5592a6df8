"""Socket factories: every socket zmqtrade opens gets its options here, in one place.

All sockets get LINGER (so close never hangs and never silently drops a reply we meant to
send within the grace period) and MAXMSGSIZE (a peer cannot make us allocate a huge frame).
Publishers are XPUBs with a welcome message: a subscriber only counts as connected once the
welcome arrived, which proves the publisher holds its subscription. That is how the launcher
knows no subscriber will miss the start of a stream.

The data-socket factories take an optional ``curve`` (:class:`zmqtrade.security.CurveOpts`,
made once per process by :mod:`zmqtrade.security` when the topology turns CURVE on); it is
applied before bind/connect, as libzmq needs the mechanism fixed before any handshake.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import zmq

from zmqtrade import wire
from zmqtrade.topology import is_loopback

if TYPE_CHECKING:
    from zmqtrade.security import CurveOpts

LINGER_MS = 1000
HEARTBEAT_IVL_MS = 500
HEARTBEAT_TIMEOUT_MS = 2000
"""On a connection to another machine, a peer silent this long (a cut link, a dead host) is
dropped, so a SUB or DEALER reconnects as soon as the route is back instead of waiting on
TCP's retransmission backoff, and a PUB stops queueing for a subscriber that cannot hear."""


def _base(ctx: zmq.Context, kind: int, curve: CurveOpts | None = None) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, LINGER_MS)
    sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_BODY + 1024)
    if curve is not None:
        curve.apply(sock)
    return sock


def for_endpoint(sock: zmq.Socket, endpoint: str, heartbeat: bool = False) -> zmq.Socket:
    """Options that depend on where the socket goes. IPv6 only for an IPv6 endpoint
    (``tcp://[::1]:port``): turned on for IPv4 too, it would report 127.0.0.1 back as
    [::ffff:127.0.0.1]. ``heartbeat`` (a stack spread over hosts) only beyond loopback: on one
    host a peer's death closes the connection at once, and a paused process must not lose its
    feed."""
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    if heartbeat and endpoint.startswith("tcp://") and not is_loopback(endpoint[6:].rsplit(":", 1)[0]):
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        # a connect begun while the link was down would otherwise wait out TCP's SYN backoff
        # (1, 3, 7 s...) after the link is back: give it up and start a fresh one
        sock.setsockopt(zmq.CONNECT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
    return sock


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint actually bound (resolves ``tcp://host:*`` to the port the OS picked)."""
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def publisher(ctx: zmq.Context, endpoint: str, stream: str, session: int, hwm: int, lossless: bool,
              curve: CurveOpts | None = None, heartbeat: bool = False, verbose: bool = False) -> zmq.Socket:
    """A bound XPUB that greets every new subscriber with a WELCOME message.

    ``lossless`` sets XPUB_NODROP: a slow subscriber makes ``send`` block (we send with
    NOBLOCK and count EAGAIN) instead of silently dropping at the high-water mark.
    ``verbose`` (XPUB_VERBOSE) passes up every subscription, not only the first to a topic:
    the orderbook learns of each pipe-doorbell strategy that (re)joins.
    """
    sock = _base(ctx, zmq.XPUB, curve)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.XPUB_WELCOME_MSG, wire.encode_welcome(stream, session))
    if lossless:
        sock.setsockopt(zmq.XPUB_NODROP, 1)
    if verbose:
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    for_endpoint(sock, endpoint, heartbeat).bind(endpoint)
    return sock


NOTHING = b"\xff"
"""A topic no message matches (every body is a msgpack array, first byte 0x9_): a subscription
that only says "I am here", as a pipe-doorbell strategy's does."""


def subscriber(ctx: zmq.Context, endpoint: str, hwm: int = 100_000, curve: CurveOpts | None = None,
               heartbeat: bool = False, topic: bytes = b"") -> zmq.Socket:
    sock = _base(ctx, zmq.SUB, curve)
    # A SUB only ever sends its subscription; once the publisher is gone that message waits
    # for a reconnect that never comes, and a non-zero linger would hold up exit for nothing.
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    for_endpoint(sock, endpoint, heartbeat).connect(endpoint)
    return sock


def await_welcome(sock: zmq.Socket, deadline: float, stopping: Callable[[], bool] = lambda: False) -> wire.Welcome:
    """Block until the publisher's WELCOME arrives; TimeoutError at ``deadline`` or if told to stop."""
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0 or stopping():
            raise TimeoutError(f"no welcome from {sock.getsockopt(zmq.LAST_ENDPOINT).decode() or 'publisher'}")
        if not sock.poll(min(left_ms, 100)):
            continue
        try:
            kind, fields = wire.unpack(sock.recv())
        except wire.WireError:
            continue
        if kind is wire.Kind.WELCOME:
            return wire.as_welcome(fields)


def router(ctx: zmq.Context, endpoint: str, curve: CurveOpts | None = None, heartbeat: bool = False) -> zmq.Socket:
    sock = _base(ctx, zmq.ROUTER, curve)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted client takes its identity back
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # replies to a vanished client raise, not vanish
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    for_endpoint(sock, endpoint, heartbeat).bind(endpoint)
    return sock


def dealer(ctx: zmq.Context, endpoint: str, identity: str, curve: CurveOpts | None = None,
           heartbeat: bool = False) -> zmq.Socket:
    sock = _base(ctx, zmq.DEALER, curve)
    sock.setsockopt(zmq.ROUTING_ID, identity.encode())
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    for_endpoint(sock, endpoint, heartbeat).connect(endpoint)
    return sock


def drain_subscriptions(sock: zmq.Socket) -> int:
    """Read pending (un)subscribe notifications off an XPUB; returns how many were subscriptions."""
    subscribed = 0
    while True:
        try:
            msg = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return subscribed
        if msg[:1] == b"\x01":
            subscribed += 1
