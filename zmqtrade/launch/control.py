"""The control channel between the launcher (ROUTER) and each process (DEALER).

A process connects with its name as routing id and says ``ready`` once its sockets are
bound and its subscriptions confirmed (one with long work before that, the order manager
replaying its journal, says ``starting`` with ``{"phase", "done", "total"}`` as it goes, so the
launcher waits while it advances rather than for a fixed time); the launcher answers ``start`` when the whole stack
is ready and ``stop`` when the run ends. While running, each process sends ``progress`` (its
counters) every report interval and ``heartbeat`` whenever it has sent nothing for a heartbeat
interval, from its event loop: a process whose loop hangs (or is SIGSTOPped) falls silent, and
the launcher's liveness check sees it. Just before it exits, ``stats`` (counters and latency
histograms). Bodies are MessagePack ``[verb, payload]``.

The socket is plain (loopback or ipc), so a link is known by a secret, not by its name alone:
the launcher makes a random token per run and hands it to its children in their environment
(``ZMQTRADE_CONTROL_TOKEN``, readable only by the stack's user), and a child's routing id is
``<name>.<token>``. A local client that connects calling itself ``gateway`` takes over nothing
and is not heard (``foreign`` counts what it sent); nor can it make the launcher hold more
than ``MAX_MESSAGE`` bytes of one message.
"""
from __future__ import annotations

import os
import secrets
from typing import Any

import msgpack
import zmq

from zmqtrade import sockets

READY, START, STOP, STATS, PROGRESS, HEARTBEAT = "ready", "start", "stop", "stats", "progress", "heartbeat"
STARTING = "starting"
TOKEN_ENV = "ZMQTRADE_CONTROL_TOKEN"
MAX_MESSAGE = 16 << 20
"""Bytes of one control message at most (a ``stats`` with its histograms is tens of KB); a peer
that sends more is disconnected by libzmq before the message is held."""
_RECV_BATCH = 1024
"""Messages handled per :meth:`ControlServer.recv` call at most: a flood cannot hold the launcher."""


def pack(verb: str, payload: Any = None) -> bytes:
    return msgpack.packb([verb, payload], use_bin_type=True)


def unpack(body: bytes) -> tuple[str, Any]:
    verb, payload = msgpack.unpackb(body, raw=False)
    return str(verb), payload


class ControlServer:
    """Launcher side: one ROUTER, messages addressed by process name."""

    def __init__(self, ctx: zmq.Context, endpoint: str, token: str | None = None) -> None:
        self.token = token or secrets.token_hex(16)
        self._suffix = f".{self.token}".encode()
        self.foreign = 0  # messages dropped: not from a link holding the token, or not [verb, payload]
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, sockets.LINGER_MS)
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted process (same id, same token) takes over
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a process not connected fails, not vanishes
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sockets.for_endpoint(self.sock, endpoint).bind(endpoint)
        self.endpoint = sockets.bound_endpoint(self.sock)

    def env(self) -> dict[str, str]:
        """What a child's environment needs for its link to be heard."""
        return {TOKEN_ENV: self.token}

    def send(self, name: str, verb: str, payload: Any = None) -> bool:
        """Send to a process; False if it is not connected (gone or never came)."""
        try:
            self.sock.send_multipart([name.encode() + self._suffix, pack(verb, payload)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def recv(self, timeout_s: float) -> tuple[str, str, Any] | None:
        """Next (name, verb, payload) from a link holding the token, or None after ``timeout_s``
        without one (or after a run of foreign messages: the caller's loop gets its turn)."""
        if not self.sock.poll(max(0, int(timeout_s * 1000))):
            return None
        for _ in range(_RECV_BATCH):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            rid = frames[0]
            if len(frames) == 2 and rid.endswith(self._suffix):
                try:
                    verb, payload = unpack(frames[1])
                    return rid[:-len(self._suffix)].decode(), verb, payload
                except Exception:
                    pass
            self.foreign += 1
        return None

    def close(self) -> None:
        self.sock.close(linger=0)


class ControlLink:
    """Process side. With no endpoint (started by hand) it reports nothing and starts at once."""

    def __init__(self, ctx: zmq.Context, endpoint: str | None, name: str, token: str | None = None) -> None:
        self.sock: zmq.Socket | None = None
        if endpoint:
            token = token or os.environ.get(TOKEN_ENV, "")
            self.sock = ctx.socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, sockets.LINGER_MS)
            self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
            self.sock.setsockopt(zmq.ROUTING_ID, f"{name}.{token}".encode())
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
