"""Another host's launcher: it joins the lead, starts its share of the stack when told, reports
to the lead and ends its share when the lead says so (or when the lead is lost)."""
from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from zmqtrade import security
from zmqtrade.launch import peering
from zmqtrade.launch.launcher import Launcher, start_levels, stop_stages
from zmqtrade.launch.multihost import JOIN_WAIT_S, LEAD_LOST_S, data_endpoints
from zmqtrade.launch.peering import ClockSync
from zmqtrade.topology import launcher_key

log = logging.getLogger("zmqtrade.launcher")


class PeerLauncher(Launcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel: peering.PeerChannel | None = None
        self.digest = peering.digest(self.topo)  # before {run_dir} is made this host's own
        self.sync: ClockSync | None = None
        self.lead_t0_ns = 0
        self.last_heard = time.monotonic()
        self.refused: str | None = None
        self.levels_wanted: dict[int, dict[str, str]] = {}
        self.levels_ready: dict[int, dict[str, str]] = {}
        self.stream_wanted = False
        self.stops_wanted: set[int] = set()
        self.stops_done: set[int] = set()
        self.report_wanted = False
        self.bye = False
        self.payload: dict[str, Any] | None = None
        self._next_status = 0.0

    # ------------------------------------------------------------------ channel
    def _open_links(self, ctx: zmq.Context) -> None:
        try:
            sec = security.for_process(self.topo, launcher_key(self.host or ""), ctx)
            self.channel = peering.PeerChannel(ctx, self.topo.lead_endpoint, self.host or "",
                                               sec.opts(security.LEAD) if sec else None)
        except (zmq.ZMQError, security.SecurityError) as exc:
            self._launcher_failure(f"cannot reach for the lead at {self.topo.lead_endpoint}: {exc}")

    def _link_sockets(self) -> list[zmq.Socket]:
        return [self.channel.sock] if self.channel is not None else []

    def _close_links(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _send(self, verb: str, payload: Any = None) -> None:
        if self.channel is not None:
            self.channel.send(verb, payload)

    def _lead_lost(self) -> bool:
        return time.monotonic() - self.last_heard > LEAD_LOST_S

    def _pump_links(self) -> None:
        if self.channel is None:
            return
        while (msg := self.channel.recv()) is not None:
            self._on_command(*msg)
        now = time.monotonic()
        if now >= self._next_status and self.sync is not None:
            self._next_status = now + peering.BEAT_S
            failed = self.failures[0]["reason"] if self.failures and not self.stream_stopped else None
            self._send(peering.STATUS, {"failed": failed, "interrupted": bool(self.interrupts)})

    def _on_command(self, verb: str, p: Any) -> None:
        self.last_heard = time.monotonic()
        try:
            self._obey(verb, p)
        except (KeyError, TypeError, ValueError):  # a malformed payload: dropped, as on every socket
            log.warning("dropped a malformed %r from the lead", verb)

    def _obey(self, verb: str, p: Any) -> None:
        if verb == peering.LEVEL and isinstance(p, dict):
            i = int(p["i"])
            self.levels_wanted.setdefault(i, dict(p.get("endpoints") or {}))
            if i in self.levels_ready:
                self._send(peering.LEVEL_READY, {"i": i, "endpoints": self.levels_ready[i]})
        elif verb == peering.STREAM:
            self.stream_wanted = True
            if self.stream_started:
                self._send(peering.STREAMING)
        elif verb == peering.STOP and isinstance(p, dict):
            k = int(p["k"])
            self.stops_wanted.update(range(k + 1))  # the lead moves on from a stage it gave up on: run it first
            if k in self.stops_done:
                self._send(peering.STOPPED, {"k": k})
        elif verb == peering.REPORT:
            self.report_wanted = True
            if self.payload is not None:
                self._send(peering.REPORT_DATA, self.payload)
        elif verb == peering.BYE:
            self.bye = True
            self._send(peering.BYE)  # the lead holds its channel open until it hears this
        elif verb == peering.REFUSED and isinstance(p, dict):
            self.refused = str(p.get("reason"))

    def _remote_failure(self) -> bool:
        """The lead is ending the run (or gone): stop starting, stop supervising."""
        return self.bye or bool(self.stops_wanted) or self._lead_lost()

    def _join(self) -> bool:
        """Say hello until the lead welcomes us, then measure the clock offset."""
        assert self.channel is not None
        log.info("host %s: joining the lead at %s", self.host, self.topo.lead_endpoint)
        deadline = time.monotonic() + JOIN_WAIT_S
        hello = {"host": self.host, "digest": self.digest}
        while self.lead_t0_ns == 0:
            if self.interrupts or time.monotonic() >= deadline or self.refused or self.bye:
                why = (f"refused by the lead: {self.refused}" if self.refused
                       else "the lead ended the run" if self.bye
                       else "interrupted" if self.interrupts
                       else f"no lead at {self.topo.lead_endpoint} within {JOIN_WAIT_S:.0f} s")
                self._launcher_failure(why)
                return False
            self._send(peering.HELLO, hello)
            msg = self.channel.recv(peering.BEAT_S)
            if msg and msg[0] == peering.WELCOME and isinstance(msg[1], dict):
                self.lead_t0_ns = int(msg[1]["t0_ns"])
            elif msg:
                self._on_command(*msg)
        self.sync = peering.measure_offset(self.channel, self._on_command)
        if self.sync is None:
            self._launcher_failure("the lead stopped answering while the clocks were compared")
            return False
        self.clock_offset_ns = self.sync.offset_ns
        self.last_heard = time.monotonic()
        log.info("host %s: clock offset to the lead %+.3f ms (+/- %.0f us)", self.host,
                 self.sync.offset_ns / 1e6, self.sync.uncertainty_ns / 1e3)
        return True

    def _joined_payload(self) -> dict[str, int]:
        assert self.sync is not None
        return {"offset_ns": self.sync.offset_ns, "uncertainty_ns": self.sync.uncertainty_ns}

    # ------------------------------------------------------------------ phases
    def _start(self) -> bool:
        if self.channel is None or not self._join():
            return False
        levels = start_levels(self.topo)
        next_joined = 0.0
        while not self.stream_wanted:
            if self.interrupts or self._remote_failure():
                return False
            todo = sorted(set(self.levels_wanted) - set(self.levels_ready))
            if todo:
                i = todo[0]
                self.topo = self.topo.replace_endpoints(self.levels_wanted[i])
                if not self._start_level(i, levels[i]):
                    return False
                self.levels_ready[i] = data_endpoints({k: v for n in levels[i] if n in self.children
                                                       for k, v in self.children[n].endpoints.items()})
                self._send(peering.LEVEL_READY, {"i": i, "endpoints": self.levels_ready[i]})
                continue
            if not self.levels_wanted and time.monotonic() >= next_joined:  # until the lead acts on it
                next_joined = time.monotonic() + peering.BEAT_S
                self._send(peering.JOINED, self._joined_payload())
            self._pump(0.05)
        self._write_topology()
        self._write_stack()
        return True

    def _supervise(self) -> None:
        self._begin_streaming()
        self._send(peering.STREAMING)
        log.info("host %s streaming; the lead ends the run", self.host)
        healthy = True
        while not (self.interrupts or self._remote_failure()):
            self._pump(0.05)
            if healthy and not self._supervise_step():
                healthy = False  # reported in the next status; the lead stops the run

    def _stop(self) -> None:
        """Run each stop stage when the lead asks (alone, in order, if the lead is gone)."""
        self._end_streaming()
        stages = stop_stages(self.topo)
        while len(self.stops_done) < len(stages):
            alone = self.sync is None or self._lead_lost() or self.bye or self.interrupts > 1
            todo = sorted(set(range(len(stages))) - self.stops_done)
            k = todo[0] if alone else next((k for k in todo if k in self.stops_wanted), None)
            if k is None:
                self._pump(0.05)
                continue
            self._stop_stage(k, [self.children[n] for n in stages[k] if n in self.children])
            self.stops_done.add(k)
            self._send(peering.STOPPED, {"k": k})
        if self.sync is not None and self._lead_lost() and not self.bye:
            self._launcher_failure(f"lost the lead: nothing from it for {LEAD_LOST_S:.0f} s; stopped alone")

    def _finish(self, code: int) -> int:
        rep = self._report(code)
        self._write_report(rep, [self.me, *self.children.values()])
        if self.sync is None or self.bye or self._lead_lost():
            return code
        end = peering.measure_offset(self.channel, self._on_command) if self.channel is not None else None
        shift_s = (self._t0 * 1e9 + self.clock_offset_ns - self.lead_t0_ns) / 1e9
        self.payload = {
            "report": rep,
            "children": [c.record(shift_s, code if c is self.me else None) for c in (self.me, *self.children.values())],
            "clock_end": {"end_offset_ns": end.offset_ns} if end else {},
        }
        if self.report_wanted:
            self._send(peering.REPORT_DATA, self.payload)
        while not (self.bye or self._lead_lost() or self.interrupts > 1):  # the lead may still be stopping
            self._pump(0.05)
        if not self.bye and self._lead_lost():
            log.warning("no bye from the lead: ended after %.0f s without a word from it", LEAD_LOST_S)
        return code
