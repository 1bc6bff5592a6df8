"""The control channel between the launcher (ROUTER) and each process (DEALER).

A process connects with its name as routing id and says ``ready`` once its sockets are
bound and its subscriptions confirmed; the launcher answers ``start`` when the whole stack
is ready and ``stop`` when the run ends. While running, each process sends ``progress`` (its
counters) every report interval and ``heartbeat`` whenever it has sent nothing for a heartbeat
interval, from its event loop: a process whose loop hangs (or is SIGSTOPped) falls silent, and
the launcher's liveness check sees it. Just before it exits, ``stats`` (counters and latency
histograms). Bodies are MessagePack ``[verb, payload]``.
"""
from __future__ import annotations

from typing import Any

import msgpack
import zmq

from zmqtrade import sockets

READY, START, STOP, STATS, PROGRESS, HEARTBEAT = "ready", "start", "stop", "stats", "progress", "heartbeat"


def pack(verb: str, payload: Any = None) -> bytes:
    return msgpack.packb([verb, payload], use_bin_type=True)


def unpack(body: bytes) -> tuple[str, Any]:
    verb, payload = msgpack.unpackb(body, raw=False)
    return str(verb), payload


class ControlServer:
    """Launcher side: one ROUTER, messages addressed by process name."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, sockets.LINGER_MS)
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a process not connected fails, not vanishes
        sockets.for_endpoint(self.sock, endpoint).bind(endpoint)
        self.endpoint = sockets.bound_endpoint(self.sock)

    def send(self, name: str, verb: str, payload: Any = None) -> bool:
        """Send to a process; False if it is not connected (gone or never came)."""
        try:
            self.sock.send_multipart([name.encode(), pack(verb, payload)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def recv(self, timeout_s: float) -> tuple[str, str, Any] | None:
        """Next (name, verb, payload), or None after ``timeout_s`` without one."""
        if not self.sock.poll(max(0, int(timeout_s * 1000))):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            return None
        try:
            verb, payload = unpack(frames[1])
        except Exception:
            return None
        return frames[0].decode(errors="replace"), verb, payload

    def close(self) -> None:
        self.sock.close(linger=0)


class ControlLink:
    """Process side. With no endpoint (started by hand) it reports nothing and starts at once."""

    def __init__(self, ctx: zmq.Context, endpoint: str | None, name: str) -> None:
        self.sock: zmq.Socket | None = None
        if endpoint:
            self.sock = ctx.socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, sockets.LINGER_MS)
            self.sock.setsockopt(zmq.ROUTING_ID, name.encode())
            sockets.for_endpoint(self.sock, endpoint).connect(endpoint)

    def send(self, verb: str, payload: Any = None, block: bool = True) -> bool:
        """Send to the launcher; with ``block=False`` a full queue drops it (progress, heartbeats:
        the next one supersedes it) rather than stall the event loop on a stalled launcher."""
        if self.sock is None:
            return False
        try:
            self.sock.send(pack(verb, payload), 0 if block else zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def poll_command(self) -> str | None:
        """A pending command from the launcher, without blocking."""
        if self.sock is None:
            return None
        try:
            body = self.sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return None
        try:
            return unpack(body)[0]
        except Exception:
            return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
