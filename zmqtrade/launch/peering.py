"""The channel between the launchers of a multi-host stack: a ROUTER on the lead, a DEALER on
every other host's launcher (its routing id is the host's name).

Commands from the lead are re-sent until answered and every handler is idempotent, so a
message lost to a cut link costs a re-send, never a stuck run (the zguide's Lazy Pirate).
Peers send ``status`` and the lead sends ``beat`` every :data:`BEAT_S`: each side sees the
other fall silent. Bodies are MessagePack ``[verb, payload]``, as on the control socket.

A conversation, lead's view::

    peer: hello {host, digest}      lead: welcome {t0_ns} (or refused {reason})
    peer: ping {n, t1}  x N         lead: pong {n, t1, t2}        (clock offset, NTP-style)
    peer: joined {offset}
    lead: level {i, endpoints}      peer: level_ready {i, endpoints}   (per start level)
    lead: stream                    peer: streaming
    lead: stop {k}                  peer: stopped {k}                  (per stop stage)
    lead: report                    peer: report_data {...}
    lead: bye                       peer: bye                          (then both close)
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import zmq

from zmqtrade import sockets
from zmqtrade.launch.control import pack, unpack
from zmqtrade.topology import Topology, launcher_key

if TYPE_CHECKING:
    from zmqtrade.security import CurveOpts

HELLO, WELCOME, REFUSED, PING, PONG, JOINED = "hello", "welcome", "refused", "ping", "pong", "joined"
LEVEL, LEVEL_READY, STREAM, STREAMING, STOP, STOPPED = "level", "level_ready", "stream", "streaming", "stop", "stopped"
REPORT, REPORT_DATA, BYE, STATUS, BEAT = "report", "report_data", "bye", "status", "beat"

BEAT_S = 0.5
"""How often each side tells the other it is alive, and how often an unanswered command is re-sent."""
MAX_MESSAGE = 256 << 20
"""A report with its samples is tens of kB per process; this only bounds a hostile peer."""


def digest(topo: Topology) -> str:
    """What every host's launcher must agree on: the topology minus what is local to a host
    (its control socket, and paths that name its own files)."""
    plain = topo.to_dict()
    plain.pop("control", None)
    plain.get("security", {}).pop("keys", None)
    plain["gateway"].get("feed", {}).pop("path", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def _tune(sock: zmq.Socket, curve: CurveOpts | None) -> zmq.Socket:
    sock.setsockopt(zmq.LINGER, sockets.LINGER_MS)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
    if curve is not None:
        curve.apply(sock)
    return sock


class LeadChannel:
    """The lead launcher's side: one ROUTER, messages addressed by host name. Under CURVE a
    message counts only if its sender's key is that host's launcher's (the ZAP user id)."""

    def __init__(self, ctx: zmq.Context, bind: str, curve: CurveOpts | None = None) -> None:
        self.named = curve is not None
        self.sock = _tune(ctx.socket(zmq.ROUTER), curve)
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a peer reconnecting after a cut takes its name back
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sockets.for_endpoint(self.sock, bind, heartbeat=True).bind(bind)

    def send(self, host: str, verb: str, payload: Any = None) -> bool:
        """False if that host's launcher is not connected (the command is re-sent later)."""
        try:
            self.sock.send_multipart([host.encode(), pack(verb, payload)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def recv(self) -> tuple[str, str, Any] | None:
        """The next (host, verb, payload) already here, or None. Garbage is dropped."""
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return None
        try:
            host = frames[0].bytes.decode()
            if self.named and frames[-1].get("User-Id") != launcher_key(host):
                return ("", "", None)  # an admitted key posing as another host's launcher
            verb, payload = unpack(frames[1].bytes)
            return host, verb, payload
        except Exception:
            return ("", "", None)

    def close(self) -> None:
        self.sock.close()


class PeerChannel:
    """Another host's launcher's side: a DEALER to the lead, named for its host."""

    def __init__(self, ctx: zmq.Context, endpoint: str, host: str, curve: CurveOpts | None = None) -> None:
        self.sock = _tune(ctx.socket(zmq.DEALER), curve)
        self.sock.setsockopt(zmq.ROUTING_ID, host.encode())
        self.sock.setsockopt(zmq.IMMEDIATE, 1)  # while the lead is away, a send fails instead of queueing
        sockets.for_endpoint(self.sock, endpoint, heartbeat=True).connect(endpoint)

    def send(self, verb: str, payload: Any = None) -> bool:
        try:
            self.sock.send(pack(verb, payload), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def recv(self, timeout_s: float = 0.0) -> tuple[str, Any] | None:
        if not self.sock.poll(max(0, int(timeout_s * 1000))):
            return None
        body = self.sock.recv()
        try:
            return unpack(body)
        except Exception:
            return ("", None)

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class ClockSync:
    """This host's monotonic clock against the lead's: ``lead = local + offset_ns``, give or
    take ``uncertainty_ns`` (half the best round trip: the lead read its clock somewhere in it)."""

    offset_ns: int
    uncertainty_ns: int


def measure_offset(chan: PeerChannel, other: Callable[[str, Any], None], samples: int = 16,
                   timeout_s: float = 1.0) -> ClockSync | None:
    """Ping the lead ``samples`` times and keep the fastest exchange; None if none came back.
    Whatever else arrives meanwhile goes to ``other``."""
    best: tuple[int, int] | None = None  # (round trip, offset)
    for n in range(samples):
        t1 = time.monotonic_ns()
        deadline = time.monotonic() + timeout_s
        if not chan.send(PING, {"n": n, "t1": t1}):  # not connected: wait a little (on the socket) and go on
            if (msg := chan.recv(min(timeout_s, 0.1))) is not None:
                other(*msg)
            continue
        while (left := deadline - time.monotonic()) > 0:
            msg = chan.recv(left)
            if msg is None:
                break
            verb, p = msg
            if verb == PONG and isinstance(p, dict) and p.get("n") == n and p.get("t1") == t1:
                t3 = time.monotonic_ns()
                rtt, offset = t3 - t1, int(p["t2"]) - (t1 + t3) // 2
                if best is None or rtt < best[0]:
                    best = (rtt, offset)
                break
            if verb != PONG:
                other(verb, p)
    if best is None:
        return None
    return ClockSync(best[1], best[0] // 2)
