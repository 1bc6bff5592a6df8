"""The lead host's launcher: it starts the other hosts' shares level by level, keeps their clocks
in step with its own, stops them in order and writes the combined report."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import zmq

from zmqtrade import security
from zmqtrade.launch import peering
from zmqtrade.launch.child import Child, RecordedChild
from zmqtrade.launch.launcher import EXIT_RECOVERED, STATS_AFTER_EXIT_S, STOP_GRACE_S, Launcher, stop_stages
from zmqtrade.launch.multihost import BYE_WAIT_S, JOIN_WAIT_S, REPORT_WAIT_S, SILENT_S, data_endpoints, endpoints_for
from zmqtrade.topology import launcher_key

log = logging.getLogger("zmqtrade.launcher")


@dataclass
class Peer:
    """What the lead knows of another host's launcher."""

    host: str
    joined: bool = False
    sync: dict[str, int] = field(default_factory=dict)
    last_seen: float = 0.0
    silent: bool = False
    levels: dict[int, dict[str, str]] = field(default_factory=dict)
    streaming: bool = False
    stopped: set[int] = field(default_factory=set)
    status: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    gone: bool = False
    """It answered the lead's bye."""
    pending: tuple[str, Any, Callable[["Peer"], bool]] | None = None
    """A command re-sent every beat until its check (of this peer) says it was answered."""
    next_send: float = 0.0


class LeadLauncher(Launcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peers = {h: Peer(h) for h in self.topo.hosts_used() if h != self.host}
        self.channel: peering.LeadChannel | None = None
        self.security: security.ProcessSecurity | None = None
        self.digest = peering.digest(self.topo)
        self._next_beat = 0.0
        self._remote_failed: set[str] = set()
        self._gave_up: set[str] = set()
        """Hosts that never confirmed a stop stage: not waited for again."""

    # ------------------------------------------------------------------ channel
    def _open_links(self, ctx: zmq.Context) -> None:
        bind = self.topo.bind_endpoint("lead_endpoint")
        try:
            self.security = security.for_process(self.topo, launcher_key(self.host or ""), ctx)
            self.channel = peering.LeadChannel(ctx, bind, self.security.opts(security.LEAD) if self.security else None)
        except (zmq.ZMQError, security.SecurityError) as exc:
            self._launcher_failure(f"cannot listen for the other hosts on {bind}: {exc}")
            return
        log.info("lead of %s: waiting for %s at %s", self.topo.name, ", ".join(self.peers), self.topo.lead_endpoint)

    def _link_sockets(self) -> list[zmq.Socket]:
        return [self.channel.sock] if self.channel is not None else []

    def _close_links(self) -> None:
        if self.channel is not None:
            self._say_bye()
            self.channel.close()
            self.channel = None
        if self.security is not None:  # after the socket: none may outlive its ZAP handler
            self.security.close()

    def _say_bye(self) -> None:
        """Send bye until each joined host answers it. Sent once and closed at once, it was lost
        about one run in three: a TCP close with input still unread (the peer's status) resets
        the connection and drops what the kernel had not sent yet, and the peer then waited
        LEAD_LOST_S for a lead that had gone."""
        assert self.channel is not None
        waiting = {h for h, p in self.peers.items() if p.joined and not p.silent and h not in self._gave_up}
        for h in set(self.peers) - waiting:
            self.channel.send(h, peering.BYE)  # it may still be listening
        deadline, next_send = time.monotonic() + BYE_WAIT_S, 0.0
        while waiting and (now := time.monotonic()) < deadline:
            if now >= next_send:
                next_send = now + BYE_WAIT_S / 5
                for h in waiting:
                    self.channel.send(h, peering.BYE)
            self.channel.sock.poll(int(BYE_WAIT_S * 1000 / 5))
            while (msg := self.channel.recv()) is not None:
                if msg[1] == peering.BYE:
                    waiting.discard(msg[0])

    def _ask(self, hosts: Sequence[str], verb: str, payload: Any, answered: Callable[[Peer], bool]) -> None:
        """Send ``verb`` to each host until ``answered``; ``payload`` may be a function of the host."""
        for h in hosts:
            peer = self.peers[h]
            peer.pending = (verb, payload(h) if callable(payload) else payload, answered)
            peer.next_send = 0.0

    def _pump_links(self) -> None:
        if self.channel is None:
            return
        now = time.monotonic()
        while (msg := self.channel.recv()) is not None:
            try:
                self._on_message(now, *msg)
            except (KeyError, TypeError, ValueError):  # a malformed payload: dropped, as on every socket
                log.warning("dropped a malformed %r from host %r", msg[1], msg[0])
        beat = now >= self._next_beat
        if beat:
            self._next_beat = now + peering.BEAT_S
        for peer in self.peers.values():
            if peer.pending is not None and peer.pending[2](peer):
                peer.pending = None
            if peer.pending is not None and now >= peer.next_send:
                peer.next_send = now + peering.BEAT_S
                self.channel.send(peer.host, peer.pending[0], peer.pending[1])
            elif beat and peer.joined:
                self.channel.send(peer.host, peering.BEAT)
            if peer.joined and not peer.silent and now - peer.last_seen > SILENT_S:
                peer.silent = True
                self._host_event(peer.host, f"silent for {now - peer.last_seen:.1f} s (link down?)")

    def _on_message(self, now: float, host: str, verb: str, p: Any) -> None:
        peer = self.peers.get(host)
        if verb == peering.HELLO:
            why = self._refusal(host, p)
            if why:
                log.warning("refused a launcher calling itself %r: %s", host, why)
                self.channel.send(host, peering.REFUSED, {"reason": why})
                return
            self.channel.send(host, peering.WELCOME, {"t0_ns": int(self._t0 * 1e9), "lead": self.host})
        if peer is None:
            return
        if peer.silent:
            peer.silent = False
            self._host_event(host, f"back after {now - peer.last_seen:.1f} s")
        peer.last_seen = now
        if verb == peering.PING and isinstance(p, dict):
            self.channel.send(host, peering.PONG, {**p, "t2": time.monotonic_ns()})
        elif verb == peering.JOINED and isinstance(p, dict):
            if not peer.joined:
                log.info("host %s joined (clock offset %+.3f ms, +/- %.0f us)", host,
                         p.get("offset_ns", 0) / 1e6, p.get("uncertainty_ns", 0) / 1e3)
            peer.joined, peer.sync = True, dict(p)
        elif verb == peering.LEVEL_READY and isinstance(p, dict):
            peer.levels[int(p["i"])] = dict(p.get("endpoints") or {})
        elif verb == peering.STREAMING:
            peer.streaming = True
        elif verb == peering.STOPPED and isinstance(p, dict):
            peer.stopped.add(int(p["k"]))
        elif verb == peering.STATUS and isinstance(p, dict):
            peer.status = p
        elif verb == peering.REPORT_DATA and isinstance(p, dict):
            peer.data = p

    def _refusal(self, host: str, p: Any) -> str | None:
        if host not in self.peers:
            return (f"{host!r} runs no process of {self.topo.name} (its hosts: "
                    f"{', '.join(self.topo.hosts_used())}; the lead is {self.host})")
        if not isinstance(p, dict) or p.get("digest") != self.digest:
            return ("its topology differs from the lead's: start every host's launcher with the same file "
                    "and the same --set options")
        return None

    def _host_event(self, host: str, what: str) -> None:
        self.events.append({"t_s": round(time.monotonic() - (self.stream_started or self._t0), 3),
                            "process": f"launcher@{host}", "pid": 0, "host": host, "event": what})
        self.view.print(f"launcher | host {host} {what}")

    def _host_failure(self, host: str, reason: str) -> None:
        """A failure of another host's share of the run, under its launcher's name."""
        self.failures.append({"process": f"launcher@{host}", "exit_code": None, "log_tail": [],
                              "reason": f"host {host}: {reason}"})
        self.view.print(f"launcher | host {host}: {reason}")

    def _remote_failure(self) -> bool:
        """Whether another host ends the run: a process there failed for good (its report says
        which), or its launcher was interrupted (Ctrl-C ends a run cleanly, on any host)."""
        for peer in self.peers.values():
            why = peer.status.get("failed") or ("interrupted" if peer.status.get("interrupted") else None)
            if why and peer.host not in self._remote_failed:
                self._remote_failed.add(peer.host)
                self._host_event(peer.host, f"{why}; ending the run")
        return bool(self._remote_failed)

    def _wait_for(self, hosts: Sequence[str], done: Callable[[Peer], bool], timeout_s: float, what: str,
                  starting: bool = True) -> bool:
        """Pump until ``done`` holds for every host in ``hosts``; False (a failure recorded per
        missing host) after ``timeout_s``, or while ``starting``, on Ctrl-C or a failed host."""
        deadline = time.monotonic() + timeout_s
        while not all(done(self.peers[h]) for h in hosts):
            if starting and (self.interrupts or self._remote_failure()):
                return False
            if time.monotonic() >= deadline:
                for h in hosts:
                    if not done(self.peers[h]):
                        self._host_failure(h, f"{what} within {timeout_s:.0f} s")
                return False
            self._pump(0.05)
        return True

    # ------------------------------------------------------------------ phases
    def _start(self) -> bool:
        if self.channel is None:
            return False
        hosts = list(self.peers)
        for h in hosts:
            log.info("  on %s (%s): this command, with the same file and options, but --host %s",
                     h, self.topo.host(h).address, h)
        if not self._wait_for(hosts, lambda p: p.joined, JOIN_WAIT_S, "no launcher joined"):
            return False
        return super()._start()

    def _start_level(self, i: int, level: list[str]) -> bool:
        remote = sorted({self.topo.host_of(n) for n in level} - {self.host})
        self._ask(remote, peering.LEVEL, lambda h: {"i": i, "endpoints": endpoints_for(self.topo, h)},
                  lambda p: i in p.levels)
        if not super()._start_level(i, level):
            return False
        if not self._wait_for(remote, lambda p: i in p.levels, self.topo.supervision.ready_timeout_s + 5,
                              f"start level {i} not ready"):
            return False
        for h in remote:
            self.topo = self.topo.replace_endpoints({k: ep for k, ep in data_endpoints(self.peers[h].levels[i]).items()
                                                     if not self.topo.host_local(k)})  # each host's own doorbell
        return True

    def _begin_streaming(self) -> None:
        super()._begin_streaming()
        self._ask(list(self.peers), peering.STREAM, None, lambda p: p.streaming)

    def _stop(self) -> None:
        self._end_streaming()
        joined = [h for h, p in self.peers.items() if p.joined]
        for k, stage in enumerate(stop_stages(self.topo)):
            self._ask(joined, peering.STOP, {"k": k}, lambda p, k=k: k in p.stopped)
            self._stop_stage(k, [self.children[n] for n in stage if n in self.children])
            grace = STOP_GRACE_S + STATS_AFTER_EXIT_S + 2 * peering.BEAT_S
            waiting = [h for h in joined if h not in self._gave_up]
            if not self._wait_for(waiting, lambda p, k=k: k in p.stopped, grace if self.interrupts < 2 else 1.0,
                                  f"did not confirm stop stage {k} ({', '.join(stage) or 'nothing'})",
                                  starting=False):
                self._gave_up.update(h for h in waiting if k not in self.peers[h].stopped)

    # ------------------------------------------------------------------ report
    def _finish(self, code: int) -> int:
        joined = [h for h, p in self.peers.items() if p.joined and h not in self._gave_up]
        self._ask(joined, peering.REPORT, None, lambda p: p.data is not None)
        self._wait_for(joined, lambda p: p.data is not None, REPORT_WAIT_S,
                       "no report received (see its own run directory)", starting=False)
        others: list[Child] = []
        failures: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        records = 0
        hosts: dict[str, Any] = {}
        for h, peer in self.peers.items():
            data = peer.data or {}
            theirs = data.get("report") or {}
            others += [RecordedChild.from_record(r, Path(str(theirs.get("run_dir", ""))) / f"{r['name']}.log")
                       for r in data.get("children", [])]
            records += int((theirs.get("counters") or {}).get("journal_records", 0))
            failures += [{**f, "host": h} for f in theirs.get("failures", [])]
            self.recovered += [{**r, "host": h} for r in theirs.get("recovered", [])]
            events += [{**e, "host": h} for e in theirs.get("events", [])]
            hosts[h] = self._host_entry("peer", theirs.get("run_dir"), {**peer.sync, **data.get("clock_end", {})},
                                        received=peer.data is not None, code=theirs.get("exit_code"))
            if peer.data is not None:
                (self.run_dir / "hosts").mkdir(exist_ok=True)
                (self.run_dir / "hosts" / f"{h}.json").write_text(json.dumps(theirs, indent=2) + "\n")
        peer_codes = [e["exit_code"] for e in hosts.values()]
        if self.failures or failures or any(c and c != EXIT_RECOVERED for c in (code, *peer_codes)):
            code = 1
        elif code or self.recovered or EXIT_RECOVERED in peer_codes:
            code = EXIT_RECOVERED
        hosts = {self.host or "": self._host_entry("lead", self.run_dir, {}, code=code), **hosts}
        rep = self._report(code, others, failures, events, records)
        rep["hosts"] = hosts
        return code if self._write_report(rep, [self.me, *self.children.values(), *others]) else 1

    def _host_entry(self, role: str, run_dir: Any, sync: dict[str, Any], received: bool = True,
                    code: int | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": role, "run_dir": str(run_dir) if run_dir else None, "report": received,
                                 "exit_code": code,
                                 "clock_offset_ns": int(sync.get("offset_ns", 0)),
                                 "clock_uncertainty_ns": int(sync.get("uncertainty_ns", 0))}
        if "end_offset_ns" in sync:
            entry["clock_drift_ns"] = int(sync["end_offset_ns"]) - entry["clock_offset_ns"]
        return entry
