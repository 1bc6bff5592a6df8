"""Placement across hosts: each process's host, ``{host}`` in endpoints, and what cannot cross a
host boundary (a book in shared memory, a file socket, a loopback address)."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Iterator

from zmqtrade.topology import values as v
from zmqtrade.topology.convert import Converter
from zmqtrade.topology.schema import BINDERS, HOST_PLACEHOLDER, LOCAL, Topology


def launcher_key(host: str) -> str:
    """The CURVE key pair of a host's launcher, in a multi-host stack with security.curve."""
    return f"launcher-{host}"


def key_names(topo: Topology) -> list[str]:
    """Every key pair the stack's CURVE needs: each process's, each external strategy's (whose
    secret key its client holds) and, across hosts, each launcher's."""
    names = ["gateway", *topo.orderbooks(), "ordermanager", *topo.strategies]
    if len(topo.hosts_used()) > 1:
        names += [launcher_key(h) for h in topo.hosts_used()]
    return names


def place(topo: Topology, conv: Converter) -> Topology:
    """Check every ``host``, then write each binder's host address for ``{host}`` in its endpoints.

    The per-host book, ipc and loopback endpoints that cannot cross hosts, and the lead are
    checked in :func:`placement_checks`, once the endpoints are final."""
    known = sorted({*topo.hosts, LOCAL})
    for name in topo.process_names():
        host = topo.host_of(name)
        if host not in topo.hosts and host != LOCAL:
            key = f"{topo.path_of(name)}.host" + ("s" if topo.kind_of(name) == "orderbook" and topo.orderbook.hosts else "")
            conv.fail(key, f"no host {host!r}; add it to hosts (NAME: ADDRESS) or use one of {', '.join(known)}")
    if topo.lead is not None and topo.lead not in topo.hosts and topo.lead != LOCAL:
        conv.fail("lead", f"no host {topo.lead!r}; one of {', '.join(known)}")
    for name, host in topo.hosts.items():
        if v.name(name):
            conv.fail(f"hosts.{name}", v.name(name) or "")
        if host.bind is None and not _is_ip(host.address):
            conv.fail(f"hosts.{name}.bind", f"missing; ZeroMQ binds interfaces, not names like {host.address!r}: "
                      "add bind: '*' (every interface) or the IP address that name stands for")
    resolved = {}
    for key, ep in topo.binds().items():
        if HOST_PLACEHOLDER not in ep:
            continue
        if key == "control":
            conv.fail("control", f"{ep}: the control socket is each launcher's own, on its host; "
                      "bind it on tcp://127.0.0.1:PORT (or *)")
            continue
        if topo.host_local(key):
            conv.fail(key, f"{ep}: with orderbook.hosts each host's strategies ring at their own host's orderbook, "
                      "so no {host} can name it; use ipc://{run_dir}/doorbell.ipc or tcp://127.0.0.1:*")
            continue
        address = topo.host(topo.binder_host(key)).address
        resolved[key] = ep.replace(HOST_PLACEHOLDER, f"[{address}]" if ":" in address else address)
    if HOST_PLACEHOLDER in topo.lead_endpoint:
        address = topo.host(topo.lead_host()).address
        topo = dataclasses.replace(topo, lead_endpoint=topo.lead_endpoint.replace(
            HOST_PLACEHOLDER, f"[{address}]" if ":" in address else address))
    return topo.replace_endpoints(resolved) if resolved else topo


def available_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _unspecified(address: str) -> bool:
    """0.0.0.0 or ::: every interface to bind, no address to connect to."""
    try:
        return ipaddress.ip_address(address.strip("[]")).is_unspecified
    except ValueError:
        return False


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address.strip("[]"))
        return True
    except ValueError:
        return False


def placement_checks(topo: Topology, conv: Converter) -> None:
    """What cannot work across hosts: a book read from another host, a file socket or a
    loopback address reached from another host, a lead that other hosts cannot find."""
    book_hosts = topo.book_hosts()
    for name in topo.strategy_processes():
        if topo.host_of(name) not in book_hosts:
            there = ", ".join(repr(h) for h in book_hosts)
            conv.fail(f"strategies.{name}.host", f"{topo.host_of(name)!r} has no orderbook: the book is shared "
                      f"memory on its orderbook's host ({there}); run {name} there, or give that host an "
                      f"orderbook too (orderbook.hosts: [{', '.join([*book_hosts, topo.host_of(name)])}])")
    ob = topo.orderbook
    if ob.hosts:
        if ob.host != LOCAL:
            conv.fail("orderbook.host", "give host (one orderbook) or hosts (one on each), not both")
        if len(set(ob.hosts)) != len(ob.hosts):
            conv.fail("orderbook.hosts", "lists a host twice; at most one orderbook per host")
    binds = topo.binds()
    for key, binder_host, away in _crossings(topo):
        m = v.ENDPOINT_RE.match(binds[key])
        where = f"{BINDERS[key]} on {binder_host!r}, {away[0]} on {topo.host_of(away[0])!r}"
        if m and m.group("path"):
            conv.fail(key, f"{binds[key]} is a file on one host and cannot cross hosts ({where}); "
                      f"use tcp://{HOST_PLACEHOLDER}:PORT")
        elif m and m.group("host") and _unspecified(m.group("host")):
            conv.fail(key, f"{binds[key]} names no address another host can connect to ({where}); use "
                      f"tcp://{HOST_PLACEHOLDER}:PORT, and hosts.{binder_host}.bind: '*' to bind every interface")
        elif m and m.group("host") and v.is_loopback(m.group("host")) \
                and not all(v.is_loopback(topo.host(topo.host_of(c)).address) for c in away):
            conv.fail(key, f"{binds[key]} is loopback, reachable only on its own host ({where}); "
                      f"use tcp://{HOST_PLACEHOLDER}:PORT")
    if len(topo.hosts_used()) > 1:
        m = v.ENDPOINT_RE.match(topo.lead_endpoint)
        if not m or not m.group("host"):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint}: the launchers of other hosts reach the lead over "
                      f"tcp; use tcp://{HOST_PLACEHOLDER}:PORT")
        elif _unspecified(m.group("host")):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint} names no address the other launchers can connect "
                      f"to; use tcp://{HOST_PLACEHOLDER}:PORT")
        elif m.group("port") == "*":
            conv.fail("lead_endpoint", f"{topo.lead_endpoint}: the other hosts' launchers must know the port "
                      "before the lead starts; give a fixed one")
        elif v.is_loopback(m.group("host")) and not all(v.is_loopback(topo.host(h).address) for h in topo.hosts_used()):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint} is loopback; use tcp://{HOST_PLACEHOLDER}:PORT")


def _crossings(topo: Topology) -> Iterator[tuple[str, str, list[str]]]:
    """(data endpoint key, its binder's host, the connecters on other hosts), where there are any."""
    for key, clients in topo.connecters().items():
        binder_host = topo.binder_host(key)
        local = topo.host_local(key)  # a strategy on a host without a book is reported as such, not here
        away = [c for c in clients if topo.host_of(c) != topo.binder_host(key, topo.host_of(c))
                and not (local and topo.host_of(c) not in topo.book_hosts())]
        if away:
            yield key, binder_host, away


def cross_host(topo: Topology) -> dict[str, str]:
    """Data endpoints some connecter reaches from another host, with the hosts it joins."""
    return {key: f"{binder_host} -> {', '.join(sorted({topo.host_of(c) for c in away}))}"
            for key, binder_host, away in _crossings(topo)}


