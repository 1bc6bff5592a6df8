"""Opt-in CURVE for the stack's data sockets: encryption, and servers that admit only known keys.

This is ZeroMQ's "ironhouse" pattern. Every process has its own key pair (``NAME.key`` public,
``NAME.key_secret`` secret, as ``zmq.auth.create_certificates`` writes them; make them with
``python -m zmqtrade keys DIR --topology FILE``). A binder (a server) holds a secret key its
clients cannot fake, so a client that knows the server's public key cannot be fooled by an
impostor; a connecter (a client) must present a public key the server lists, checked by a ZAP
handler (pyzmq's :class:`~zmq.auth.thread.ThreadAuthenticator`) in the server's process.

Who serves and who may connect, per bound socket (topology key):

====================== ============ =============================================
socket                 server       clients admitted
====================== ============ =============================================
gateway.prices         gateway      orderbook, ``security.allow``
gateway.news           gateway      every strategy, ``security.allow``
orderbook.doorbell     orderbook    every strategy, ``security.allow``
ordermanager.endpoint  ordermanager every strategy, ``security.allow``
====================== ============ =============================================

Each server socket gets its own ZAP domain, so a key admitted to one socket of a process is
not thereby admitted to its other sockets.

Not covered: the launcher's control socket stays plain (NULL). The launcher binds it, on
loopback by default, and owns both ends of every connection to it; the topology warnings flag
a control endpoint that is not loopback. The shared-memory book and the journal are files
protected by their modes (0600), not by CURVE.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import zmq
import zmq.auth
from zmq.utils import z85

from zmqtrade.topology import BINDERS, Topology, launcher_key

SERVERS: Mapping[str, str] = BINDERS
"""The process that binds each data socket, by topology key (the control socket is not here)."""
LEAD = "lead_endpoint"
"""The lead launcher's socket, for the other hosts' launchers (multi-host only)."""


def servers(topo: Topology, near: str | None = None) -> dict[str, str]:
    """The key pair that serves each CURVE socket for a process on host ``near``: the data
    sockets' binders (the doorbell's: the orderbook of its host) and, in a multi-host stack, the
    lead's launcher (``launcher-<host>``)."""
    out = dict(SERVERS)
    out["orderbook.doorbell"] = topo.orderbook_on(near or topo.binder_host("orderbook.doorbell")) \
        or topo.orderbooks()[0]
    if len(topo.hosts_used()) > 1:
        out[LEAD] = launcher_key(topo.lead_host())
    return out

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"


class SecurityError(Exception):
    """Key material this process cannot run with (a file unreadable or without a key)."""


def public_path(keys: str | Path, name: str) -> Path:
    return Path(keys) / f"{name}{PUBLIC_SUFFIX}"


def secret_path(keys: str | Path, name: str) -> Path:
    return Path(keys) / f"{name}{SECRET_SUFFIX}"


def domain(key: str) -> str:
    """The ZAP domain of one server socket, so each socket has its own list of clients."""
    return f"zmqtrade/{key}"


def clients_of(topo: Topology) -> dict[str, tuple[str, ...]]:
    """Names whose public keys each server socket admits: its connecters, then ``security.allow``."""
    allow = tuple(topo.security.allow)
    out = {key: tuple(dict.fromkeys((*names, *allow))) for key, names in topo.connecters().items()}
    if len(topo.hosts_used()) > 1:  # only launchers talk to the lead
        out[LEAD] = tuple(launcher_key(h) for h in topo.hosts_used() if h != topo.lead_host())
    return out


def make_keys(directory: str | Path, names: Sequence[str], force: bool = False) -> list[tuple[Path, Path]]:
    """Write a key pair per name into ``directory``: [(public, secret)], in ``names`` order.

    The files are ``zmq.auth.create_certificates``'s, but that writes with the process umask
    (a world-readable secret, usually). So the pairs are made in a fresh 0700 folder inside
    ``directory``, set to 0600 (secret) and 0644 (public) there, and only then renamed into
    place: no moment exists at which another user could read a secret key. A missing
    ``directory`` is created 0700. Existing pairs are kept (FileExistsError naming them)
    unless ``force``; nothing is written then.
    """
    directory = Path(directory)
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
        directory.chmod(0o700)  # mkdir's mode is cut by the umask
    elif not directory.is_dir():
        raise NotADirectoryError(f"{directory} exists and is not a directory")
    existing = [p for n in names for p in (public_path(directory, n), secret_path(directory, n)) if p.exists()]
    if existing and not force:
        raise FileExistsError(", ".join(str(p) for p in existing))
    staging = Path(tempfile.mkdtemp(prefix=".new-keys-", dir=directory))  # mode 0700
    written: list[tuple[Path, Path]] = []
    try:
        for name in names:
            public, secret = (Path(f) for f in zmq.auth.create_certificates(staging, name))
            secret.chmod(0o600)
            public.chmod(0o644)
        for name in names:
            pair = (public_path(directory, name), secret_path(directory, name))
            os.replace(staging / pair[1].name, pair[1])
            os.replace(staging / pair[0].name, pair[0])
            written.append(pair)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


def _load(path: Path, want_secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"{path}: {exc}; make keys with python -m zmqtrade keys") from None
    if want_secret and not secret:
        raise SecurityError(f"{path}: holds no secret key; make keys with python -m zmqtrade keys")
    return public, secret


@dataclass(frozen=True)
class CurveOpts:
    """The CURVE options of one socket; the socket factories apply them before bind/connect."""

    public: bytes
    secret: bytes
    server_key: bytes | None = None
    """The server's public key, for a client; None makes this socket the server."""
    zap_domain: str = ""

    def __repr__(self) -> str:  # never print a secret key into a log
        role = "server" if self.server_key is None else "client"
        return f"CurveOpts({role}, public={self.public.decode()!r}, zap_domain={self.zap_domain!r})"

    def apply(self, sock: zmq.Socket) -> zmq.Socket:
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)
        if self.server_key is None:
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.ZAP_DOMAIN, self.zap_domain.encode())
            _enforce_zap(sock)
        else:
            sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        return sock


def _enforce_zap(sock: zmq.Socket) -> None:
    """Refuse clients when no ZAP handler answers (libzmq otherwise admits any CURVE client then).

    ZAP_ENFORCE_DOMAIN is a draft option of libzmq 4.3; where it is missing, the authenticator
    running for the whole life of the server sockets is what keeps them closed.
    """
    opt = getattr(zmq, "ZAP_ENFORCE_DOMAIN", None)
    if opt is None:
        return
    try:
        sock.setsockopt(opt, 1)
    except zmq.ZMQError:
        pass


class _KeyList:
    """The credentials provider of one ZAP domain: admits only the listed public keys (z85).

    Called on the authenticator's thread; a refused key is logged once, not at every reconnect.
    """

    def __init__(self, zap_domain: str, keys: Mapping[bytes, str], log: logging.Logger) -> None:
        self.zap_domain = zap_domain
        self.keys = dict(keys)
        self.log = log
        self._refused: set[bytes] = set()
        self._lock = threading.Lock()

    def callback(self, zap_domain: str, key: bytes) -> bool:
        if zap_domain == self.zap_domain and key in self.keys:
            return True
        with self._lock:
            first = key not in self._refused
            self._refused.add(key)
        if first:
            self.log.warning("refused a CURVE client on %s: its public key %s is not listed",
                             zap_domain, key.decode(errors="replace"))
        return False


def _naming_authenticator(ctx: zmq.Context, names: Mapping[bytes, str], log: logging.Logger) -> Any:
    """A started ThreadAuthenticator that names each admitted connection after its key pair:
    libzmq attaches the ZAP reply's user id to every message as the ``User-Id`` property, so the
    order manager can check that an order's ``strategy`` is the sender's own name, and one
    admitted key cannot trade as another. (Imported here: zmq.auth.thread pulls in asyncio,
    ~7 MB, which processes without CURVE should not carry.)"""
    from zmq.auth.thread import ThreadAuthenticator

    class NamingAuthenticator(ThreadAuthenticator):
        def curve_user_id(self, client_public_key: bytes) -> str:
            z85_key = z85.encode(client_public_key)
            return names.get(z85_key, z85_key.decode("ascii"))

    auth = NamingAuthenticator(ctx, log=log)
    auth.start()
    return auth


class ProcessSecurity:
    """One process's CURVE setup: its key pair, its servers' public keys, and (for a server) the
    authenticator that admits only its listed clients. Made once per process, before any socket."""

    def __init__(self, topo: Topology, name: str, ctx: zmq.Context, log: logging.Logger | None = None) -> None:
        keys = topo.security.keys
        if not keys:
            raise SecurityError("security.curve is on but security.keys is not set")
        self.name = name
        self.log = log or logging.getLogger(f"zmqtrade.{name}.security")
        public, secret = _load(secret_path(keys, name), want_secret=True)
        self.public: bytes = public
        self.secret: bytes = secret or b""  # _load refused a file without one
        self.servers = servers(topo, topo.host_of(name) if name in topo.process_names() else None)
        self.server_keys = {server: _load(public_path(keys, server), want_secret=False)[0]
                            for server in sorted(set(self.servers.values()))}
        self.served = [key for key, server in self.servers.items() if server == name]
        self.auth: Any = None  # a ThreadAuthenticator, for a server
        if self.served:
            clients = clients_of(topo)
            providers = {}
            names: dict[bytes, str] = {}
            for key in self.served:
                admitted = {_load(public_path(keys, client), want_secret=False)[0]: client for client in clients[key]}
                providers[domain(key)] = _KeyList(domain(key), admitted, self.log)
                names.update(admitted)
            # Started before any server socket exists: a CURVE handshake that found no ZAP
            # handler would be admitted without a check.
            self.auth = _naming_authenticator(ctx, dict(names), logging.getLogger("zmq.auth"))
            for zap_domain, provider in providers.items():
                self.auth.configure_curve_callback(zap_domain, provider)

    def opts(self, key: str) -> CurveOpts:
        """Options for this process's socket on ``key``: the server side if it binds it, else a client."""
        if key not in self.servers:
            raise KeyError(f"{key} is not a CURVE socket")
        if key in self.served:
            return CurveOpts(self.public, self.secret, None, domain(key))
        return CurveOpts(self.public, self.secret, self.server_keys[self.servers[key]])

    def close(self) -> None:
        """Stop the authenticator (after the server sockets are closed, before the context ends)."""
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


def for_process(topo: Topology, name: str, ctx: zmq.Context) -> ProcessSecurity | None:
    """This process's CURVE setup, or None when the topology leaves CURVE off."""
    if not topo.security.curve:
        return None
    return ProcessSecurity(topo, name, ctx)
