"""Two hosts on one machine: a network namespace each, joined by a veth pair.

Needs root and iproute2. Where either is missing the tests that use it skip, saying why;
with ZMQTRADE_REQUIRE_NETNS=1 (set by .ci/run) they fail instead, so CI cannot pass by
skipping them.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

import pytest

_counter = itertools.count()
T = TypeVar("T")


@dataclass
class Hosts:
    """Host a (``ns_a``, ``veth_a``, ``addr_a``) and host b, on one /24."""

    ns_a: str
    ns_b: str
    veth_a: str
    veth_b: str
    addr_a: str
    addr_b: str

    def exec_in(self, ns: str) -> list[str]:
        """The prefix that runs a command inside ``ns`` (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", ns]

    def link(self, up: bool) -> None:
        """Cut (or restore) the link: host a's end of the pair goes down (or up)."""
        ip("-n", self.ns_a, "link", "set", self.veth_a, "up" if up else "down")


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed (apt-get install iproute2)"
    return None


def skip_or_fail(why: str) -> None:
    if os.environ.get("ZMQTRADE_REQUIRE_NETNS") == "1":
        pytest.fail(f"ZMQTRADE_REQUIRE_NETNS=1 but {why}")
    pytest.skip(why)


def make() -> Hosts:
    tag = f"zt{os.getpid() % 100000}{next(_counter)}"
    h = Hosts(f"{tag}a", f"{tag}b", f"{tag}va", f"{tag}vb", "10.77.0.1", "10.77.0.2")
    try:
        ip("netns", "add", h.ns_a)
        ip("netns", "add", h.ns_b)
        ip("link", "add", h.veth_a, "type", "veth", "peer", "name", h.veth_b)
        ip("link", "set", h.veth_a, "netns", h.ns_a)
        ip("link", "set", h.veth_b, "netns", h.ns_b)
        for ns, dev, addr in ((h.ns_a, h.veth_a, h.addr_a), (h.ns_b, h.veth_b, h.addr_b)):
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", dev, "up")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        remove(h)
        skip_or_fail(f"cannot make network namespaces here: {exc}")
    return h


def remove(h: Hosts) -> list[int]:
    """Delete both namespaces (the veth pair goes with them); pids that were still inside, killed."""
    return _delete((h.ns_a, h.ns_b))


def _delete(names: Iterable[str]) -> list[int]:
    """Delete namespaces, killing the pids still inside them first; those pids."""
    killed = []
    for ns in names:
        try:
            pids = [int(p) for p in ip("netns", "pids", ns).split()]
        except RuntimeError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        try:
            ip("netns", "del", ns)
        except RuntimeError:
            pass
    return killed


@contextlib.contextmanager
def made(make_hosts: Callable[[], T], remove_hosts: Callable[[T], list[int]],
         names: Callable[[T], Iterable[str]]) -> Iterator[T]:
    """Hosts for one test (skipped, or failed under ZMQTRADE_REQUIRE_NETNS, where they cannot be
    made), removed after it and checked gone, with no process left inside."""
    why = unavailable()
    if why:
        skip_or_fail(why)
    h = make_hosts()
    try:
        yield h
    finally:
        stray = remove_hosts(h)
        assert not stray, f"processes were left in the namespaces: {stray}"
        assert not set(names(h)) & set(namespaces())


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


@dataclass
class Star:
    """Hosts on one /24 (a, b, c, ...), each a namespace with a veth pair to a bridge in the root
    namespace: a star, so the link of one host can be cut while the others stay joined."""

    bridge: str
    ns: dict[str, str]
    veth: dict[str, str]   # host -> the bridge's end of its pair
    addr: dict[str, str]

    def exec_in(self, host: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[host]]

    def link(self, host: str, up: bool) -> None:
        """Cut (or restore) ``host``'s link to the others."""
        ip("link", "set", self.veth[host], "up" if up else "down")


def make_star(names: tuple[str, ...] = ("a", "b", "c")) -> Star:
    tag = f"zs{os.getpid() % 10000}{next(_counter)}"
    s = Star(f"{tag}br", {h: f"{tag}{h}" for h in names}, {h: f"{tag}{h}p" for h in names},
             {h: f"10.78.0.{i + 1}" for i, h in enumerate(names)})
    try:
        ip("link", "add", s.bridge, "type", "bridge")
        ip("link", "set", s.bridge, "up")
        for h in names:
            inside = f"{tag}{h}i"
            ip("netns", "add", s.ns[h])
            ip("link", "add", inside, "type", "veth", "peer", "name", s.veth[h])
            ip("link", "set", inside, "netns", s.ns[h])
            ip("link", "set", s.veth[h], "master", s.bridge)
            ip("link", "set", s.veth[h], "up")
            ip("-n", s.ns[h], "addr", "add", f"{s.addr[h]}/24", "dev", inside)
            ip("-n", s.ns[h], "link", "set", "lo", "up")
            ip("-n", s.ns[h], "link", "set", inside, "up")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        remove_star(s)
        skip_or_fail(f"cannot make network namespaces and a bridge here: {exc}")
    return s


def remove_star(s: Star) -> list[int]:
    """Delete the namespaces (their pairs go with them) and the bridge; pids still inside, killed."""
    killed = _delete(s.ns.values())
    try:
        ip("link", "del", s.bridge)
    except RuntimeError:
        pass
    return killed
