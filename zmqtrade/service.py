"""What every zmqtrade process has in common: arguments, logging, signals and lifecycle.

A component subclasses :class:`Service` and its module's ``main()`` calls
:func:`zmqtrade.runner.serve`.
The lifecycle is the same for all of them, and mirrors the launcher's side of it::

    open()          bind / connect sockets, attach the book
    await_ready()   wait until every subscription is confirmed (publisher's WELCOME)
    -> "ready"      tell the launcher, with the endpoints actually bound
    <- "start"      wait, servicing publishers so late subscribers get welcomed
    run()           the event loop, until "stop" or SIGTERM/SIGINT, then drain
    -> "stats"      counters and latency samples, then close everything and exit 0

Started by hand (no ``--control``) a process skips the handshake and runs until a signal.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import zmq

from zmqtrade import security, sockets, wire
from zmqtrade.launch import control
from zmqtrade.poller import Poller, Source
from zmqtrade.seqcheck import SeqCheck
from zmqtrade.topology import Topology

READY_TIMEOUT_S = 15.0
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%H:%M:%S"
PR_SET_TIMERSLACK = 29
REJOIN_AFTER_S = 1.0
"""A subscriber disconnected this long without libzmq retrying is connected again by hand."""
STARTING_EVERY_S = 0.5
"""How often a process in a long start (a journal replay) tells the launcher how far it is."""
T = TypeVar("T")


class Stopped(Exception):
    """Told to stop while still starting (raised out of :meth:`Service.starting`)."""


class Service:
    """Base of the four components; subclasses fill in the hooks."""

    kind: ClassVar[str] = ""

    def __init__(self, topo: Topology, name: str, args: argparse.Namespace, ctx: zmq.Context) -> None:
        self.topo = topo
        self.name = name
        self.args = args
        self.ctx = ctx
        self.log = logging.getLogger(f"zmqtrade.{name}")
        self.stopping = False
        self.running = False
        """In ``run()``: past the start, so a failure now stops a running process."""
        self.link: control.ControlLink | None = None
        self.counters: dict[str, int] = {"malformed_messages": 0}
        self.publishers: list[zmq.Socket] = []
        self._sockets: list[zmq.Socket] = []
        self._owned: list[Any] = []
        self._watched: list[list[Any]] = []  # [SUB, endpoint, its monitor, disconnected since]
        self._next_progress = 0.0
        self._next_heartbeat = 0.0
        self._next_starting = 0.0
        self._poller: Poller | None = None
        """The event loop's poller (:meth:`poller`), told about sends that may hide input."""
        self.heartbeat = len(topo.hosts_used()) > 1
        """Sockets beyond loopback heartbeat (sockets.HEARTBEAT_*): the stack spans hosts."""
        self.security: security.ProcessSecurity | None = None
        """This process's CURVE keys and authenticator (:func:`serve` makes it before ``open``)."""

    # ------------------------------------------------------------------ hooks
    def open(self) -> dict[str, str]:
        """Bind and connect; returns {topology path: endpoint bound} for what it binds."""
        return {}

    def await_ready(self, deadline: float) -> None:
        """Block until inputs are confirmed flowing (e.g. welcomes received)."""

    def run(self) -> None:
        raise NotImplementedError

    def latency_samples(self) -> dict[str, bytes]:
        return {}

    def periodic(self) -> None:
        """Housekeeping every heartbeat interval, from the event loop (no message needed)."""

    # ------------------------------------------------------------------ helpers
    def curve(self, key: str) -> security.CurveOpts | None:
        """CURVE options for the socket on topology ``key`` (e.g. ``"gateway.prices"``), for the
        socket factories; None when the topology leaves CURVE off."""
        return self.security.opts(key) if self.security is not None else None

    def track(self, sock: zmq.Socket) -> zmq.Socket:
        """Remember a socket so it is closed (with LINGER) at exit."""
        self._sockets.append(sock)
        return sock

    def bound(self, key: str, sock: zmq.Socket) -> str:
        """The endpoint at topology ``key`` as connecters must use it, now that ``sock`` is bound."""
        return self.topo.connect_endpoint(key, sockets.bound_endpoint(sock))

    def subscribe(self, key: str, hwm: int, topic: bytes = b"") -> zmq.Socket:
        """A SUB to the endpoint at topology ``key``, watched so that a connection libzmq gives
        up on (it does after a frame above MAXMSGSIZE: a protocol error, never retried) is made
        again (:meth:`rejoin_dropped`) instead of leaving this process on a dead feed."""
        endpoint = self.topo.binds()[key]
        sock = self.track(sockets.subscriber(self.ctx, endpoint, hwm, curve=self.curve(key), heartbeat=self.heartbeat,
                                             topic=topic))
        events = zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_DELAYED | zmq.EVENT_CONNECT_RETRIED
        self._watched.append([sock, endpoint, sock.get_monitor_socket(events), 0.0])
        return sock

    def rejoin_dropped(self) -> None:
        """Connect again every watched SUB that libzmq left disconnected for ``REJOIN_AFTER_S``
        (it retries a lost publisher by itself, every 100 ms: those are left alone)."""
        now = time.monotonic()
        for watch in self._watched:
            sock, endpoint, mon, since = watch
            while mon.poll(0):
                # frame 0 starts with the event as a native uint16 (parsed here: zmq.utils.monitor
                # would import asyncio, ~7 MB in every process)
                event = int.from_bytes(mon.recv_multipart()[0][:2], sys.byteorder)
                watch[3] = since = now if event == zmq.EVENT_DISCONNECTED else 0.0
            if since and now - since > REJOIN_AFTER_S:
                try:
                    sock.disconnect(endpoint)
                except zmq.ZMQError:
                    pass
                sock.connect(endpoint)
                watch[3] = 0.0
                self.counters["reconnects"] = self.counters.get("reconnects", 0) + 1
                self.log.warning("connection to %s was dropped and not retried; connected again", endpoint)

    def own(self, resource: T) -> T:
        """Remember anything with a ``close()`` (book, journal) so it is released at exit."""
        self._owned.append(resource)
        return resource

    def report_progress(self) -> None:
        """Tell the launcher we are alive: the counters every report interval (its live view and
        rates), a heartbeat in between. Called once per event-loop iteration, so a hung loop goes
        silent; one clock read when nothing is due.
        """
        now = time.monotonic()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.topo.supervision.heartbeat_s
        if self._watched:
            self.rejoin_dropped()
        if self.publishers:  # sends take the signal a new subscription raises: look anyway
            self.service_publishers()
        self.periodic()
        if self.link is None or self.link.sock is None:
            return
        if now >= self._next_progress:
            self._next_progress = now + self.topo.report.sample_interval_s
            self.link.send(control.PROGRESS, self.progress_payload(), block=False)
        else:
            self.link.send(control.HEARTBEAT, None, block=False)
        if self._poller is not None:
            self._poller.touched(self.link.sock)

    def progress_payload(self) -> Mapping[str, int | float]:
        """What a progress report carries: the counters, and whatever else a process follows over time."""
        return self.counters

    def starting(self, phase: str, done: int, total: int) -> None:
        """Say how far a long start (``phase``) is, at most every STARTING_EVERY_S: the launcher
        waits for a process whose start advances. Raises Stopped when a stop came meanwhile
        (SIGTERM, or ``stop`` from the launcher), so a long start is never waited out."""
        if self.stop_requested():
            raise Stopped(phase)
        now = time.monotonic()
        if now >= self._next_starting and self.link is not None:
            self._next_starting = now + STARTING_EVERY_S
            self.link.send(control.STARTING, {"phase": phase, "done": done, "total": total}, block=False)

    def service_control(self) -> None:
        """Act on a pending launcher command; call when the control socket is readable."""
        if self.link is not None and self._next_command() == control.STOP:
            self.request_stop()

    def _next_command(self) -> str | None:
        """One command off the control socket; it is looked at again before the next sleep, in
        case another is queued behind it."""
        if self.link is None or self.link.sock is None:
            return None
        cmd = self.link.poll_command()
        if self._poller is not None:
            self._poller.touched(self.link.sock)
        return cmd

    def drain(self, sock: zmq.Socket, decoders: Mapping[wire.Kind, Callable[[tuple], Any]],
              limit: int = 4096, seq: SeqCheck | None = None) -> tuple[list[Any], wire.Eos | None]:
        """Read what is queued on a subscriber: (messages decoded by ``decoders``, its end of stream).

        A WELCOME that opens a new session (the publisher restarted) ends the drain there, so
        the caller checks the old session's messages against ``seq`` first and the next drain
        resyncs ``seq`` before it reads the new session's (see :meth:`drain_each`).
        """
        out: list[Any] = []
        eos = self.drain_each(sock, decoders, out.append, limit, seq, resync_now=False)
        return out, eos

    def drain_each(self, sock: zmq.Socket, decoders: Mapping[wire.Kind, Callable[[tuple], Any]],
                   handle: Callable[[Any], None], limit: int = 4096, seq: SeqCheck | None = None,
                   resync_now: bool = True, fast: Callable[[bytes], Any] | None = None,
                   until_ns: int = 0) -> wire.Eos | None:
        """Read what is queued on a socket, handing each message decoded by ``decoders`` to
        ``handle`` as it arrives (before asking the socket for the next: that ask, when nothing
        is left, is a syscall and an exception, which need not delay the first message);
        returns the end of stream, if it came.

        Malformed or unexpected bodies are counted, never raised. A WELCOME after the first means
        we reconnected (``resubscribed``); if it opens a new session, ``seq`` starts counting
        afresh at once (``resync_now``: ``handle`` checks each message in order), or the drain
        ends there. ``fast`` (a :mod:`zmqtrade.fastwire` decoder, for a stream without sequence
        numbers) decodes the common shapes first, returning None for what ``decoders`` must see.
        ``until_ns`` (CLOCK_MONOTONIC, looked at every 16 messages) ends a long drain on time
        whatever its messages hold, so the process still heartbeats through an endless backlog.
        """
        eos: wire.Eos | None = None
        c = self.counters
        poller = self._poller
        if seq is not None and seq.resync_due:
            seq.resync()
        for i in range(limit):
            if i == 1 and poller is not None and not poller.more(sock):
                return eos  # the common case, one message a wake-up: no failing receive after it
            if until_ns and not i & 15 and i and time.monotonic_ns() > until_ns:
                break
            try:
                body = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                if poller is not None:
                    poller.settled(sock)
                return eos
            if fast is not None and (value := fast(body)) is not None:
                handle(value)
                continue
            try:
                k, fields = wire.unpack(body)
                decode = decoders.get(k)
                if decode is not None:
                    handle(decode(fields))
                elif k is wire.Kind.EOS:
                    eos = wire.as_eos(fields)
                elif k is wire.Kind.WELCOME:
                    c["resubscribed"] = c.get("resubscribed", 0) + 1
                    if seq is not None and seq.welcome(wire.as_welcome(fields)):
                        self.log.info("publisher restarted (session %d): resynchronising", seq.session)
                        if not resync_now:
                            break
                        seq.resync()
                else:
                    raise wire.WireError(f"unexpected {k.name} on this stream")
            except wire.WireError as exc:
                c["malformed_messages"] += 1
                self.log.debug("malformed message: %s", exc)
        if poller is not None:  # stopped short of EAGAIN: what is left may never signal again
            poller.touched(sock)
        return eos

    def send_bounded(self, sock: zmq.Socket, body: bytes) -> bool:
        """Publish without ever blocking past a stop request.

        A plain PUB never blocks (it drops at the high-water mark, and subscribers count the
        gap). In lossless mode (XPUB_NODROP) a full subscriber makes the send fail with EAGAIN;
        then we wait for room, counting ``send_blocked``, but still answer ``stop``.
        """
        try:
            sock.send(body, zmq.NOBLOCK)
            return True
        except zmq.Again:
            pass
        self.counters["send_blocked"] = self.counters.get("send_blocked", 0) + 1
        while not self.stopping:
            if sock.poll(100, zmq.POLLOUT):
                try:
                    sock.send(body, zmq.NOBLOCK)
                    return True
                except zmq.Again:
                    continue
            self.report_progress()  # blocked by a slow subscriber is not hung
            self.service_control()
        return False

    def service_publishers(self) -> None:
        """Read (un)subscribe notifications so XPUBs keep welcoming late subscribers."""
        for pub in self.publishers:
            sockets.drain_subscriptions(pub)

    def poller(self, *sources: Source) -> tuple[Poller, zmq.Socket | None]:
        """The event loop's poller over ``sources`` and the control socket (returned too, or None)."""
        if self._poller is not None:
            self._poller.close()
        poller = self._poller = Poller(*sources)
        ctl = self.link.sock if self.link is not None else None
        if ctl is not None:
            poller.add(ctl)
        return poller, ctl

    def send_eos(self, sock: zmq.Socket, stream: str, last_seq: int) -> None:
        """Tell subscribers the stream ends at ``last_seq`` (they count what they missed of it)."""
        try:
            sock.send(wire.encode_eos(stream, last_seq), zmq.NOBLOCK)
        except zmq.Again:
            self.log.warning("could not send end of stream on %s (a subscriber is full)", stream)

    def stop_requested(self) -> bool:
        """For waits before the run (welcomes): a ``stop`` already sent by the launcher counts."""
        self.service_control()
        return self.stopping

    def request_stop(self) -> None:
        if not self.stopping:
            self.log.info("stopping")
        self.stopping = True

    def stats(self) -> dict[str, Any]:
        return {"kind": self.kind, "counters": dict(self.counters), "latency_ns": self.latency_samples()}

    def served_before_start(self) -> list[zmq.Socket]:
        """Sockets answered while the stack waits to start (:meth:`serve_before_start`)."""
        return []

    def serve_before_start(self) -> None:
        """Answer what came on :meth:`served_before_start`'s sockets before ``start``."""

    def _wait_start(self) -> bool:
        """Wait for ``start``; True to run, False if told to stop first."""
        if self.link is None or self.link.sock is None:
            return True
        early = self.served_before_start()
        poller, ctl = self.poller(*self.publishers, *early)
        while not self.stopping:
            events = poller.wait(100)
            self.report_progress()
            if self.publishers:
                self.service_publishers()
            if any(sock in events for sock in early):
                self.serve_before_start()
            if ctl in events:
                cmd = self._next_command()
                if cmd == control.START:
                    return True
                if cmd == control.STOP:
                    return False
        return False

    def release(self) -> None:
        """Close owned resources (newest first), then sockets; safe after a failed ``open``."""
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        while self._owned:
            self._owned.pop().close()
        for sock, _, mon, _ in self._watched:
            sock.disable_monitor()
            mon.close(linger=0)
        self._watched.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        if self.security is not None:  # after the server sockets: none may outlive its ZAP handler
            self.security.close()
