"""CURVE (``security:``): key files, who may connect, what the wire shows, and the checks.

Real processes and real sockets throughout. Refusals are observed, not waited out: a client's
socket monitor reports how its handshake ended (HANDSHAKE_FAILED_AUTH is the server's ZAP
handler saying no), and only then does a test check, with a short deadline, that nothing came.
"""
from __future__ import annotations

import json
import selectors
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from conftest import BASE, ROOT, merge
from zmqtrade import cli, journal, sockets, topology, wire
from zmqtrade.topology import TopologyError, load

CURVE = {"security": {"curve": True, "keys": "keys", "allow": ["monitor"]}}
PROCESSES = ["gateway", "orderbook", "ordermanager", *BASE["strategies"]]
HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
REFUSED_PLAIN = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
"""How a client without CURVE fails against a CURVE server (a mechanism mismatch)."""


def make_keys(keys: Path, *args: str) -> None:
    assert cli.main(["keys", str(keys), *args]) == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


class Client:
    """A test-made client socket with its handshake outcome observable (monitor before connect)."""

    def __init__(self, ctx: zmq.Context, kind: int, endpoint: str, keys: Path | None = None,
                 name: str | None = None, server: str | None = None, identity: bytes | None = None) -> None:
        self.sock = ctx.socket(kind)
        self.sock.linger = 0
        if name is not None:
            assert keys is not None and server is not None
            public, secret = zmq.auth.load_certificate(keys / f"{name}.key_secret")
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
            self.sock.curve_serverkey = zmq.auth.load_certificate(keys / f"{server}.key")[0]
        if kind == zmq.SUB:
            self.sock.subscribe(b"")
        if identity is not None:
            self.sock.routing_id = identity
        self.monitor = self.sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self.sock.connect(endpoint)

    def handshake(self, timeout: float = 10.0) -> int:
        """How the first handshake ended (a monitor event, so no guessing with a delay)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.monitor.poll(int(left * 1000) + 1):
                event = recv_monitor_message(self.monitor)["event"]
                if event & HANDSHAKE_EVENTS:
                    return event
        raise AssertionError(f"no handshake outcome within {timeout} s")

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close()
        self.sock.close()


def order(cid: int, strategy: str = "trend", symbol: str = "AAPL") -> bytes:
    return wire.encode_order(wire.Order(cid, strategy, symbol, "BUY", 10, 100.0, 1, 2, 3, 4))


def reply_to(sock: zmq.Socket, timeout_ms: int = 10_000) -> wire.Reply:
    assert sock.poll(timeout_ms), f"no reply within {timeout_ms} ms"
    kind, fields = wire.unpack(sock.recv())
    assert kind is wire.Kind.REPLY
    return wire.as_reply(fields)


# --------------------------------------------------------------------------- zmqtrade keys
def test_keys_command_writes_private_pairs_and_refuses_to_overwrite(write_topology, tmp_path, capsys):
    topo = write_topology(CURVE)  # curve on and no keys yet: the command must read it all the same
    keys = tmp_path / "keys"
    # umask 0: the modes must come from the command, not from a careful caller
    made = subprocess.run([sys.executable, "-m", "zmqtrade", "keys", str(keys), "--topology", str(topo), "monitor"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, umask=0)
    assert made.returncode == 0, made.stderr
    names = [*PROCESSES, "monitor"]
    assert mode(keys) == 0o700
    assert sorted(p.name for p in keys.iterdir()) == sorted(f"{n}{ext}" for n in names for ext in (".key", ".key_secret"))
    for name in names:
        assert f"{keys / name}.key_secret" in made.stdout
        assert mode(keys / f"{name}.key") == 0o644 and mode(keys / f"{name}.key_secret") == 0o600
        public, no_secret = zmq.auth.load_certificate(keys / f"{name}.key")
        again, secret = zmq.auth.load_certificate(keys / f"{name}.key_secret")
        assert no_secret is None and secret and public == again
        assert zmq.curve_public(secret) == public
    assert len({zmq.auth.load_certificate(keys / f"{n}.key")[0] for n in names}) == len(names)
    load(topo)  # now valid

    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    capsys.readouterr()
    assert cli.main(["keys", str(keys), "spare", "trend"]) == 1
    err = capsys.readouterr().err
    assert "trend.key" in err and "already exist" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before  # not even 'spare' was written

    assert cli.main(["keys", str(keys), "trend", "--force"]) == 0
    after = {p.name: p.read_bytes() for p in keys.iterdir()}
    assert after["trend.key"] != before["trend.key"] and after["trend.key_secret"] != before["trend.key_secret"]
    assert {k: v for k, v in after.items() if not k.startswith("trend.")} == \
           {k: v for k, v in before.items() if not k.startswith("trend.")}
    assert mode(keys / "trend.key_secret") == 0o600


def test_keys_command_refuses_bad_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["keys", str(tmp_path / "keys"), "../escape"])
    assert info.value.code == 2
    assert "names start with a letter" in capsys.readouterr().err
    assert not (tmp_path / "keys").exists()


# --------------------------------------------------------------------------- validation
def problems_of(path: Path) -> list[str]:
    with pytest.raises(TopologyError) as info:
        load(path)
    return info.value.problems


def test_curve_without_keys_names_the_key_and_the_fix(write_topology, tmp_path):
    topo = write_topology({"security": {"curve": True}})
    assert problems_of(topo) == [f"security.keys: missing; curve needs keys: DIR, a directory with a key pair per "
                                 f"process (run python -m zmqtrade keys DIR --topology {topo}, then set keys: DIR)"]
    topo = write_topology(CURVE)
    keys = tmp_path / "keys"
    assert problems_of(topo) == [f"security.keys: {keys} is not a directory; "
                                 f"run python -m zmqtrade keys {keys} --topology {topo}"]
    keys.mkdir()
    assert problems_of(topo) == [
        f"security.keys: {keys} has no key pair for {', '.join(PROCESSES)}; "
        f"run python -m zmqtrade keys {keys} --topology {topo}",
        f"security.allow[0]: {keys}/monitor.key missing; run python -m zmqtrade keys {keys} monitor "
        "(or drop 'monitor' from allow)"]


def test_missing_or_broken_key_files_are_named(write_topology, tmp_path):
    topo = write_topology(merge_allow(["monitor", "ghost"]))
    keys = tmp_path / "keys"
    make_keys(keys, "--topology", str(topo), "monitor")
    for f in ("trend.key", "trend.key_secret", "meanrev.key_secret"):
        (keys / f).unlink()
    (keys / "gateway.key_secret").write_bytes((keys / "gateway.key").read_bytes())  # a public key only
    problems = problems_of(topo)
    assert problems == [
        f"security.keys: {keys} has no usable key pair for gateway, trend, meanrev "
        "(gateway.key_secret holds no secret key; meanrev.key_secret missing); "
        f"run python -m zmqtrade keys {keys} gateway trend meanrev --force",
        f"security.allow[1]: {keys}/ghost.key missing; run python -m zmqtrade keys {keys} ghost "
        "(or drop 'ghost' from allow)",
    ]
    result = subprocess.run([sys.executable, str(ROOT / "launch.py"), str(topo), "--check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert f"{topo}: security.keys: {keys} has no usable key pair" in result.stderr


def merge_allow(allow: list[str]) -> dict[str, Any]:
    return {"security": {**CURVE["security"], "allow": allow}}


def test_allow_takes_names_and_curve_off_checks_no_keys(write_topology):
    assert "security.allow[0]: names start with a letter and use letters, digits, '_' or '-' (32 at most)" \
        in problems_of(write_topology(merge_allow(["../etc/passwd"])))
    topo = load(write_topology({"security": {"keys": "nowhere", "allow": ["monitor"]}}))
    assert not topo.security.curve and topo.security.keys.endswith("/nowhere")


# --------------------------------------------------------------------------- warnings
def test_warns_of_plaintext_tcp_beyond_loopback(write_topology, tmp_path):
    def warnings(changes: dict[str, Any]) -> list[str]:
        return topology.warnings(load(write_topology(changes)))

    assert warnings({}) == []
    assert warnings({"gateway": {"prices": "tcp://127.0.0.2:*", "news": "tcp://localhost:*"},
                     "orderbook": {"doorbell": "tcp://[::1]:*"}}) == []
    assert warnings({"gateway": {"news": "tcp://0.0.0.0:*"}, "orderbook": {"doorbell": "tcp://10.1.2.3:*"}}) == [
        "gateway.news: tcp://0.0.0.0:* is not loopback and security.curve is off: whoever reaches it reads (or "
        "feeds) this socket in plaintext; bind 127.0.0.1 or turn on security.curve",
        "orderbook.doorbell: tcp://10.1.2.3:* is not loopback and security.curve is off: whoever reaches it "
        "reads (or feeds) this socket in plaintext; bind 127.0.0.1 or turn on security.curve"]
    make_keys(tmp_path / "keys", *PROCESSES, "monitor")
    # with CURVE on the data sockets may face the network; the control socket never should
    assert warnings({**CURVE, "gateway": {"news": "tcp://0.0.0.0:*"}, "control": "tcp://0.0.0.0:*"}) == [
        "control: tcp://0.0.0.0:* is not loopback, and the control socket is never encrypted: whoever reaches "
        "it can stop the stack or pose as a process; bind it on 127.0.0.1"]
    (tmp_path / "keys" / "trend.key_secret").chmod(0o644)
    assert warnings(CURVE) == [f"security.keys: {tmp_path / 'keys' / 'trend.key_secret'} is open to other "
                               "users (mode 0644); chmod 600 it"]


def test_launcher_prints_the_warning_before_starting_anything(write_topology, tmp_path):
    topo = write_topology({"gateway": {"news": "tcp://0.0.0.0:*"}})
    warning = f"{topo}: warning: gateway.news: tcp://0.0.0.0:* is not loopback and security.curve is off"
    check = subprocess.run([sys.executable, str(ROOT / "launch.py"), str(topo), "--check"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "ok"
    assert check.stderr.startswith(warning), check.stderr
    # the run path: the warning comes first, then a refused run directory stops it, so nothing binds
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    run = subprocess.run([sys.executable, str(ROOT / "launch.py"), str(topo), "--run-dir", str(tmp_path / "taken")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith(warning) and "already holds files" in run.stderr.splitlines()[-1]


# --------------------------------------------------------------------------- the whole stack
def test_stack_runs_end_to_end_with_curve(launch, write_topology, tmp_path):
    topo = write_topology(CURVE)
    make_keys(tmp_path / "keys", "--topology", str(topo), "monitor")
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "2", "-q")
    assert run.finish() == 0, run.output + run.stderr
    assert "warning" not in run.stderr
    c = json.loads((run_dir / "report.json").read_text())["counters"]
    assert c["ticks_published"] > 0 and c["ticks_applied"] == c["ticks_published"] and c["tick_gaps"] == 0
    assert c["news_received"] == 2 * c["news_published"] > 0
    assert c["orders_acked"] > 0 and c["orders_filled"] == c["orders_acked"]
    assert c["malformed_messages"] == 0
    assert len(list(journal.read(run_dir / journal.FILENAME))) == c["orders_acked"]
    assert json.loads((run_dir / "topology.json").read_text())["security"]["curve"] is True
    for log in run_dir.glob("*.log"):
        assert "refused a CURVE client" not in log.read_text(), log


# --------------------------------------------------------------------------- who may connect
def test_only_listed_keys_read_prices_or_place_orders(write_topology, component, book, ctx, tmp_path):
    topo = write_topology(merge(CURVE, {"strategies": {"outside": {"external": True, "symbols": ["AAPL"]}}}))
    keys = tmp_path / "keys"
    make_keys(keys, "--topology", str(topo), "monitor")
    make_keys(keys, "intruder")  # a real pair in the same folder, listed nowhere
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    gw = component("gateway", topo, book.name)
    om = component("ordermanager", topo, book.name)
    prices = gw.expect("ready")["endpoints"]["gateway.prices"]
    orders = om.expect("ready")["endpoints"]["ordermanager.endpoint"]
    assert prices.startswith("tcp://127.0.0.1:") and orders.startswith("tcp://127.0.0.1:")
    om.start()

    # the price feed: gateway.prices admits the orderbook and security.allow, nobody else
    listed = Client(ctx, zmq.SUB, prices, keys, "monitor", "gateway")
    refused = {"intruder": Client(ctx, zmq.SUB, prices, keys, "intruder", "gateway"),
               "trend": Client(ctx, zmq.SUB, prices, keys, "trend", "gateway"),  # admitted to news, not here
               "plain": Client(ctx, zmq.SUB, prices)}
    assert listed.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert refused["intruder"].handshake() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    assert refused["trend"].handshake() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    assert refused["plain"].handshake() in REFUSED_PLAIN
    sockets.await_welcome(listed.sock, time.monotonic() + 10)
    gw.start()
    got = 0
    deadline = time.monotonic() + 10
    while got < 50 and time.monotonic() < deadline:
        if listed.sock.poll(100):
            kind, fields = wire.unpack(listed.sock.recv())
            got += kind in (wire.Kind.TICK, wire.Kind.TICKS)
    assert got >= 50
    for name, client in refused.items():  # the stream flowed meanwhile; not even a WELCOME came
        assert not client.sock.poll(200), name

    # orders: the order manager admits the strategies and security.allow
    intruder = Client(ctx, zmq.DEALER, orders, keys, "intruder", "ordermanager", identity=b"trend")
    intruder.sock.send(order(1), zmq.NOBLOCK)  # queued for a connection that will never be admitted
    assert intruder.handshake() == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    monitor = Client(ctx, zmq.DEALER, orders, keys, "monitor", "ordermanager", identity=b"meanrev")
    monitor.sock.send(order(1, strategy="meanrev"))  # admitted, but a key trades only as its own name
    assert monitor.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
    posing = reply_to(monitor.sock)
    assert posing.status == "rejected" and "strategy 'meanrev' is not this client's own" in posing.detail
    meanrev = Client(ctx, zmq.DEALER, orders, keys, "meanrev", "ordermanager", identity=b"meanrev2")
    meanrev.sock.send(order(2, strategy="meanrev"))
    assert meanrev.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
    filled = reply_to(meanrev.sock)
    assert (filled.clordid, filled.status, filled.detail) == (2, "filled", 100.5)
    assert not intruder.sock.poll(200)
    # an external strategy: its key pair made with the topology's, admitted as itself only
    outside = Client(ctx, zmq.DEALER, orders, keys, "outside", "ordermanager")
    outside.sock.send(wire.encode_positions_ask("meanrev", 1))
    assert outside.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert outside.sock.poll(10_000)
    refused_ask = wire.as_positions(wire.unpack(outside.sock.recv())[1])
    assert refused_ask.status == "rejected" and "not this client's own" in refused_ask.detail
    outside.sock.send(wire.encode_positions_ask("outside", 1))
    assert outside.sock.poll(10_000)
    answer = wire.as_positions(wire.unpack(outside.sock.recv())[1])
    assert (answer.status, answer.holdings) == ("ok", ())
    outside.sock.send(order(answer.ts_ns, strategy="outside"))
    assert reply_to(outside.sock).status == "filled"
    for client in (listed, *refused.values(), intruder, monitor, meanrev, outside):
        client.close()
    c = om.stop()["counters"]
    assert (c["orders_received"], c["orders_filled"], c["orders_impersonating"]) == (3, 2, 1)
    gw.stop()
    assert "refused a CURVE client on zmqtrade/ordermanager.endpoint" in om.log.read_text()
    assert gw.log.read_text().count("refused a CURVE client on zmqtrade/gateway.prices") == 2  # once per key


# --------------------------------------------------------------------------- the wire
class Tap(threading.Thread):
    """A plain TCP forwarder on loopback that keeps a copy of every byte it passes, both ways."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(name="tap", daemon=True)
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.captured = bytearray()
        self._stop_evt = threading.Event()

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        try:
            while not self._stop_evt.is_set():
                for key, _ in sel.select(0.05):  # the timeout only bounds how late a stop is seen
                    if key.data is None:
                        down, _ = self.listener.accept()
                        up = socket.create_connection(self.upstream)
                        sel.register(down, selectors.EVENT_READ, up)
                        sel.register(up, selectors.EVENT_READ, down)
                        continue
                    src, dst = key.fileobj, key.data
                    data = src.recv(65536)
                    if not data:
                        for s in (src, dst):
                            sel.unregister(s)
                            s.close()
                        continue
                    self.captured += data
                    dst.sendall(data)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()

    def __enter__(self) -> "Tap":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop_evt.set()
        self.join(10)


@pytest.mark.parametrize("curve", [False, True], ids=["plain", "curve"])
def test_orders_on_the_wire_are_readable_only_without_curve(write_topology, component, book, ctx, tmp_path, curve):
    keys = tmp_path / "keys"
    topo = write_topology(CURVE if curve else {})
    if curve:
        make_keys(keys, "--topology", str(topo), "monitor")
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    om = component("ordermanager", topo, book.name)
    endpoint = om.expect("ready")["endpoints"]["ordermanager.endpoint"]
    om.start()
    with Tap(int(endpoint.rsplit(":", 1)[1])) as tap:
        client = Client(ctx, zmq.DEALER, f"tcp://127.0.0.1:{tap.port}", keys if curve else None,
                        "trend" if curve else None, "ordermanager", identity=b"trend")
        client.sock.send(order(1, strategy="trend", symbol="AAPL"))
        assert client.handshake() == zmq.EVENT_HANDSHAKE_SUCCEEDED
        filled = reply_to(client.sock)  # through the tap: the bytes below carried a whole exchange
        assert (filled.status, filled.detail) == ("filled", 100.5)
        client.close()
    assert om.stop()["counters"]["orders_filled"] == 1
    seen = bytes(tap.captured)
    assert len(seen) > 100
    assert (b"CURVE" if curve else b"NULL") in seen  # the ZMTP greeting names the mechanism in clear
    for marker in (b"AAPL", b"trend"):  # the symbol (body) and the strategy (body and routing id)
        assert (marker in seen) is not curve, (marker, curve)
