"""A stack over two hosts: placement rules, and real runs across two network namespaces.

The namespace tests run one launcher per "host" (``ip netns exec``), the gateway and order
manager on a, the orderbook and strategies on b, over a veth pair: orders flow and are acked,
and the lead's combined report holds both hosts' processes. Then the link is cut under load:
the feeds reconnect and count their gaps, unanswered orders are re-sent, no acked order is lost
or filled twice, and the run still ends cleanly. Namespaces, veths, processes and segments are
all gone afterwards.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
import zmq
import zmq.auth

import netns
from conftest import ROOT
from zmqtrade import journal, topology
from zmqtrade.launch import control, peering

EXAMPLE = ROOT / "topologies" / "two_hosts.yaml"
HOSTS = {"hosts": {"a": "10.0.0.1", "b": "10.0.0.2"}}
PLACED = {
    **HOSTS,
    "gateway": {"host": "a", "prices": "tcp://{host}:5555", "news": "tcp://{host}:5556"},
    "ordermanager": {"host": "a", "endpoint": "tcp://{host}:5558"},
    "orderbook": {"host": "b", "doorbell": "ipc://{run_dir}/bell.ipc"},
    "strategies": {"trend": {"host": "b"}, "meanrev": {"host": "b"}},
}


def problems(write_topology, changes: dict[str, Any]) -> list[str]:
    try:
        topology.load(write_topology(changes))
    except topology.TopologyError as exc:
        return exc.problems
    return []


# --------------------------------------------------------------------------- placement
def test_host_placeholder_resolves_to_the_binders_host(write_topology):
    topo = topology.load(write_topology(PLACED))
    assert topo.gateway.prices == "tcp://10.0.0.1:5555"
    assert topo.ordermanager.endpoint == "tcp://10.0.0.1:5558"
    assert topo.lead_endpoint == "tcp://10.0.0.1:5549"  # the gateway's host leads by default
    assert topo.hosts_used() == ["a", "b"]
    assert topo.processes_on("b") == ["orderbook", "trend", "meanrev"]
    assert topo.connecters()["gateway.prices"] == ("orderbook", "ordermanager")  # the OM keeps its own prices


def test_bind_interface_differs_from_the_address_others_use(write_topology):
    topo = topology.load(write_topology({**PLACED, "hosts": {"a": {"address": "box-a.lan", "bind": "*"},
                                                             "b": "10.0.0.2"}}))
    assert topo.gateway.prices == "tcp://box-a.lan:5555"
    assert topo.bind_endpoint("gateway.prices") == "tcp://*:5555"
    assert topo.connect_endpoint("gateway.prices", "tcp://0.0.0.0:5555") == "tcp://box-a.lan:5555"
    assert topo.bind_endpoint("lead_endpoint") == "tcp://*:5549"
    # an endpoint written with another address binds as written
    topo = topology.load(write_topology({**PLACED, "hosts": {"a": {"address": "box-a.lan", "bind": "*"}, "b": "10.0.0.2"},
                                         "ordermanager": {"host": "a", "endpoint": "tcp://10.9.9.9:5558"}}))
    assert topo.bind_endpoint("ordermanager.endpoint") == "tcp://10.9.9.9:5558"


@pytest.mark.parametrize("changes, key, fragment", [
    ({"strategies": {"trend": {"host": "a"}}}, "strategies.trend.host", "has no orderbook"),
    ({"gateway": {"news": "ipc://{run_dir}/news.ipc"}}, "gateway.news", "cannot cross hosts"),
    ({"ordermanager": {"endpoint": "tcp://127.0.0.1:5558"}}, "ordermanager.endpoint", "loopback"),
    ({"orderbook": {"host": "c"}}, "orderbook.host", "no host 'c'"),
    ({"hosts": {"a": "box-a.lan", "b": "10.0.0.2"}}, "hosts.a.bind", "add bind"),
    ({"lead_endpoint": "tcp://{host}:*"}, "lead_endpoint", "fixed one"),
    ({"lead": "z"}, "lead", "no host 'z'"),
    ({"control": "tcp://{host}:5550"}, "control", "each launcher's own"),
    ({"gateway": {"prices": "tcp://0.0.0.0:5555"}}, "gateway.prices", "names no address"),
    ({"orderbook": {"hosts": ["b", "b"], "host": "local"}}, "orderbook.hosts", "lists a host twice"),
    ({"orderbook": {"hosts": ["b", "a"]}}, "orderbook.host", "not both"),
    ({"orderbook": {"hosts": ["b", "z"], "host": "local"}}, "orderbook.hosts", "no host 'z'"),
    ({"orderbook": {"hosts": ["a", "b"], "host": "local", "doorbell": "tcp://{host}:5557"}}, "orderbook.doorbell",
     "ring at their own host's orderbook"),
    ({"orderbook": {"hosts": ["b"], "host": "local"}, "strategies": {"trend": {"host": "a"}}}, "strategies.trend.host",
     "orderbook.hosts: [b, a]"),
])
def test_placement_errors_name_the_key_and_the_fix(write_topology, changes, key, fragment):
    merged = json.loads(json.dumps(PLACED))
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict) and section != "hosts":
            for k, v in value.items():
                merged[section][k] = {**merged[section][k], **v} if isinstance(v, dict) else v
        else:
            merged[section] = value
    found = problems(write_topology, merged)
    assert [p for p in found if p.startswith(f"{key}:") and fragment in p], found


def test_ports_are_per_host_but_two_hosts_on_one_address_share_them(write_topology):
    # a and b are different machines: the same port on each is fine
    assert not problems(write_topology, {**PLACED, "orderbook": {"host": "b", "doorbell": "tcp://{host}:5555"}})
    # the same machine under two names: one port, one binder
    same = {**PLACED, "hosts": {"a": "127.0.0.1", "b": "127.0.0.1"},
            "orderbook": {"host": "b", "doorbell": "tcp://{host}:5555"}}
    assert any(p.startswith("orderbook.doorbell: tcp://127.0.0.1:5555 is bound by gateway.prices too")
               for p in problems(write_topology, same))


def test_faults_are_injected_by_the_launcher_of_their_host(write_topology, tmp_path):
    from zmqtrade.launch.launcher import Launcher

    topo = topology.load(write_topology({**PLACED, "faults": [{"process": "trend", "at_s": 1, "action": "kill"},
                                                              {"process": "gateway", "at_s": 2, "action": "kill"}]}))
    assert [f.process for f in Launcher(topo, tmp_path / "a", host="a")._faults] == ["gateway"]
    assert [f.process for f in Launcher(topo, tmp_path / "b", host="b")._faults] == ["trend"]


def test_a_csv_feed_is_checked_on_the_gateways_host_only(write_topology, tmp_path):
    changes = {**PLACED, "gateway": {**PLACED["gateway"], "feed": {"kind": "csv", "path": "absent.csv"}}}
    path = write_topology(changes)
    assert topology.load(path, host="b")  # b does not read it
    with pytest.raises(topology.TopologyError) as err:
        topology.load(path, host="a")
    assert any(p.startswith("gateway.feed.path:") and "absent.csv' is not a file" in p for p in err.value.problems)


def test_plaintext_across_hosts_is_warned_about(write_topology):
    topo = topology.load(write_topology(PLACED))
    warned = "\n".join(topology.warnings(topo))
    assert "gateway.prices: tcp://10.0.0.1:5555 crosses hosts (a -> b) in plaintext" in warned
    assert "lead_endpoint" in warned
    assert "orderbook.doorbell" not in warned  # ipc on b alone


def test_a_multi_host_topology_needs_host_and_a_known_one(launch, tmp_path):
    run = launch(str(EXAMPLE))
    assert run.finish(30) == 2
    assert "run one launcher per host" in run.stderr and "--host NAME" in run.stderr
    run = launch(str(EXAMPLE), "--host", "c")
    assert run.finish(30) == 2
    assert "runs nothing on 'c'" in run.stderr
    assert not list(tmp_path.glob("runs/*")), "nothing may start"


def test_the_example_checks_out(launch):
    run = launch(str(EXAMPLE), "--check")
    assert run.finish(30) == 0, run.stderr
    assert "b at 192.168.1.11: orderbook, trend, meanrev" in run.output


# --------------------------------------------------------------------------- two namespaces
@pytest.fixture
def hosts() -> Iterator[netns.Hosts]:
    with netns.made(netns.make, netns.remove, lambda h: (h.ns_a, h.ns_b)) as h:
        yield h


def start_pair(launch, hosts: netns.Hosts, tmp_path: Path, topo: Path, *extra: str, env: dict | None = None,
               html: bool = False):
    """Host b's launcher, then a's (the lead); report.html drawn only where the test reads it."""
    common = ["--set", f"hosts.a={hosts.addr_a}", "--set", f"hosts.b={hosts.addr_b}", "-q",
              "--set", f"report.html={str(html).lower()}", *extra]
    b = launch(str(topo), "--host", "b", "--run-dir", str(tmp_path / "b"), *common,
               prefix=hosts.exec_in(hosts.ns_b), env=env)
    a = launch(str(topo), "--host", "a", "--run-dir", str(tmp_path / "a"), *common,
               prefix=hosts.exec_in(hosts.ns_a), env=env)
    return a, b


def test_two_hosts_trade_and_the_lead_reports_both(launch, hosts, tmp_path):
    a, b = start_pair(launch, hosts, tmp_path, EXAMPLE, "--duration", "3", "--set", "gateway.rate=2000",
                      html=True)
    assert a.finish(120) == 0, a.output + a.stderr
    assert b.finish(60) == 0, b.output + b.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    placed = {name: p.get("host") for name, p in report["processes"].items()}
    assert placed == {"launcher@a": "a", "gateway": "a", "ordermanager": "a",
                      "launcher@b": "b", "orderbook": "b", "trend": "b", "meanrev": "b"}
    c = report["counters"]
    assert c["ticks_applied"] > 0 and c["tick_gaps"] == 0
    assert c["orders_acked"] > 0
    assert c["orders_acked"] + c["orders_rejected"] == c["orders_sent"]
    records = list(journal.read(tmp_path / "a" / journal.FILENAME))
    assert len(records) == c["journal_records"] == c["orders_acked"]
    assert report["latency_us"]["tick_to_ack"]["count"] > 0
    assert report["processes"]["orderbook"]["cpu_percent"]["mean"] > 0  # b's psutil figures arrived
    b_host = report["hosts"]["b"]
    assert b_host["report"] is True and b_host["run_dir"] == str(tmp_path / "b")
    # one kernel, one CLOCK_MONOTONIC: the measured offset must come out near zero
    assert abs(b_host["clock_offset_ns"]) <= b_host["clock_uncertainty_ns"] + 1_000_000
    page = (tmp_path / "a" / "report.html").read_text()
    assert "<h2>Hosts</h2>" in page and "<td>launcher@b</td><td>b</td>" in page
    assert "role" in a.output and "peer" in a.output  # the printed summary's hosts table
    assert json.loads((tmp_path / "b" / "report.json").read_text())["counters"]["orders_acked"] == c["orders_acked"]
    assert "host b joined" in a.output
    assert "no bye from the lead" not in b.output + b.stderr  # it ended when the lead said so
    # b's own ipc doorbell is in b's run directory, not a's (the lead sends only what a binds)
    b_topo = json.loads((tmp_path / "b" / "topology.json").read_text())
    assert b_topo["orderbook"]["doorbell"] == f"ipc://{tmp_path / 'b'}/doorbell.ipc"
    assert b_topo["gateway"]["prices"] == f"tcp://{hosts.addr_a}:5555"


PINGPONG = """
from zmqtrade.strategies import OrderRequest, Strategy

class PingPong(Strategy):
    '''Keeps one order in flight at all times (the next goes out on each reply), plus one per
    quote: whenever the link is cut, some order is waiting for its answer.'''

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last = None
        self.n = 0

    def order(self):
        self.n += 1
        side = "BUY" if self.n % 2 else "SELL"
        return OrderRequest(self.last.symbol, side, 1, self.last.ask if side == "BUY" else self.last.bid)

    def on_quote(self, quote):
        first = self.last is None
        self.last = quote
        return [self.order(), self.order()] if first else [self.order()]

    def on_reply(self, reply, order):
        self.submit(self.order())
"""


def cut_link_topology(tmp_path: Path) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["duration_s"] = 0  # until the test stops it
    data["gateway"]["rate"] = 1000
    data["ordermanager"]["risk"] = {"max_order_qty": 10, "max_position": 1000, "max_orders_per_s": 100000}
    data["strategies"] = {"pp": {"host": "b", "class": "pingpong:PingPong", "symbols": ["AAPL", "MSFT"],
                                 "qty": 1, "order_timeout_s": 0.3}}
    data["report"] = {"sample_interval_s": 0.25}
    (tmp_path / "pingpong.py").write_text(PINGPONG)
    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def journal_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_until(what: str, ok, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.05)  # polling a file the launchers write, against a deadline


def test_a_cut_link_heals_without_losing_or_doubling_an_acked_order(launch, hosts, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    a, b = start_pair(launch, hosts, tmp_path, cut_link_topology(tmp_path), env=env)
    a.wait_for("stack ready", 60)
    jpath = tmp_path / "a" / journal.FILENAME
    wait_until("orders flowing", lambda: journal_lines(jpath) >= 300, 30)
    hosts.link(up=False)
    time.sleep(1.0)  # the outage itself, 4 s in all: longer than the 2 s heartbeat timeout, so links drop
    cut_at = journal_lines(jpath)  # a's backlog from before the cut is journaled by now
    time.sleep(3.0)
    during = journal_lines(jpath) - cut_at
    hosts.link(up=True)
    back_at = journal_lines(jpath)
    wait_until("orders flowing again after the link came back", lambda: journal_lines(jpath) >= back_at + 300, 30)
    a.proc.send_signal(signal.SIGINT)  # by pid: ip netns exec became the launcher
    assert a.finish(90) == 0, a.output + a.stderr
    assert b.finish(60) == 0, b.output + b.stderr

    assert during <= 5, f"{during} orders were journaled while the link was down"
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    records = list(journal.read(jpath))
    keys = Counter((r["strategy"], r["clordid"]) for r in records)
    assert not [k for k, n in keys.items() if n > 1], "an order was filled twice"
    pp = report["processes"]["pp"]
    acked = {i for lo, hi in pp["acked_ids"] for i in range(lo, hi + 1)}
    journaled = {r["clordid"] for r in records if r["strategy"] == "pp"}
    assert acked == journaled, (sorted(acked - journaled)[:5], sorted(journaled - acked)[:5])
    c = pp["counters"]
    assert c["orders_resent"] > 0, "the order in flight at the cut was never re-sent"
    assert c["orders_unanswered"] == 0
    assert c["orders_acked"] + c["orders_rejected"] == c["orders_sent"]
    book = report["processes"]["orderbook"]["counters"]
    assert report["counters"]["tick_gaps"] > 0, "ticks lost with the dropped connection must be counted"
    assert book["resubscribed"] >= 1, "the orderbook's feed did not reconnect"
    assert report["hosts"]["b"]["report"] is True
    seen = [e["event"] for e in report["events"] if e["process"] == "launcher@b"]
    assert any(e.startswith("silent for") for e in seen) and any(e.startswith("back after") for e in seen), seen


# --------------------------------------------------------------------------- CURVE across hosts
def free_port() -> int:
    """A port the OS just handed out and took back, for the lead's (which must be fixed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_machine_two_hosts(tmp_path: Path, curve: bool = True) -> tuple[Path, Path]:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["hosts"] = {"a": "127.0.0.1", "b": "127.0.0.1"}  # one machine under two names
    data["gateway"].update(prices="tcp://{host}:*", news="tcp://{host}:*", rate=500)
    data["ordermanager"]["endpoint"] = "tcp://{host}:*"
    data["lead_endpoint"] = f"tcp://{{host}}:{free_port()}"
    data["duration_s"] = 2
    keys = tmp_path / "keys"
    path = tmp_path / "two.yaml"
    if not curve:
        path.write_text(yaml.safe_dump(data))
        return path, keys
    data["security"] = {"curve": True, "keys": "keys"}
    path.write_text(yaml.safe_dump(data))
    made = subprocess.run([sys.executable, "-m", "zmqtrade", "keys", str(keys), "--topology", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    return path, keys


def test_each_host_needs_only_its_own_secret_keys(tmp_path, launch):
    path, keys = one_machine_two_hosts(tmp_path)
    assert (keys / "launcher-a.key_secret").is_file() and (keys / "launcher-b.key_secret").is_file()
    for name in ("gateway", "ordermanager", "launcher-a"):  # a's secrets are not on b
        (keys / f"{name}.key_secret").unlink()
    b = launch(str(path), "--host", "b", "--check")
    assert b.finish(30) == 0, b.stderr
    a = launch(str(path), "--host", "a", "--check")
    assert a.finish(30) == 2
    assert "no usable key pair for gateway, ordermanager, launcher-a" in a.stderr, a.stderr
    (keys / "trend.key").unlink()  # a public key every host needs
    b = launch(str(path), "--host", "b", "--check")
    assert b.finish(30) == 2
    assert "lacks the public key of" not in b.stderr and "trend" in b.stderr  # b holds trend's pair: broken
    a = launch(str(path), "--host", "a", "--check")
    assert a.finish(30) == 2
    assert "lacks the public key of trend" in a.stderr and "copy trend.key here" in a.stderr


def test_launchers_talk_under_curve_and_refuse_an_unlisted_key(tmp_path, launch):
    path, keys = one_machine_two_hosts(tmp_path)
    topo = topology.load(path)
    assert not [w for w in topology.warnings(topo) if "lead_endpoint" in w]  # encrypted: nothing to warn of
    a = launch(str(path), "--host", "a", "--run-dir", str(tmp_path / "a"), "-q")
    a.wait_for("waiting for b", 60)
    # an outsider with a key of its own, calling itself b: the lead's ZAP handler refuses it
    ctx = zmq.Context()
    try:
        public, secret = zmq.curve_keypair()
        lead_public, _ = zmq.auth.load_certificate(keys / "launcher-a.key")
        rogue = ctx.socket(zmq.DEALER)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.setsockopt(zmq.ROUTING_ID, b"b")
        rogue.curve_publickey, rogue.curve_secretkey, rogue.curve_serverkey = public, secret, lead_public
        rogue.connect(topo.lead_endpoint)
        rogue.send(control.pack(peering.HELLO, {"host": "b", "digest": peering.digest(topo)}))
        assert not rogue.poll(2000), "the lead answered a launcher whose key it does not list"
        rogue.close()
    finally:
        ctx.term()
    b = launch(str(path), "--host", "b", "--run-dir", str(tmp_path / "b"), "-q")
    assert a.finish(90) == 0, a.output + a.stderr
    assert b.finish(60) == 0, b.output + b.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["hosts"]["b"]["report"] is True
    assert report["counters"]["ticks_applied"] > 0
    assert report["processes"]["orderbook"]["host"] == "b"


def test_three_hosts_under_curve_each_book_subscribes_with_a_key_of_its_own(tmp_path, launch):
    """Several orderbooks under CURVE, end to end (one machine under three names): orderbook-b
    and orderbook-c each subscribe to the gateway with their own key pair, each strategy reads
    its own host's book, and nothing is refused."""
    data = yaml.safe_load((ROOT / "topologies" / "three_hosts.yaml").read_text())
    data["hosts"] = {h: "127.0.0.1" for h in ("a", "b", "c")}
    data["gateway"].update(prices="tcp://{host}:*", news="tcp://{host}:*", rate=1000)
    data["ordermanager"]["endpoint"] = "tcp://{host}:*"
    data["lead_endpoint"] = f"tcp://{{host}}:{free_port()}"
    data["duration_s"] = 2
    data["security"] = {"curve": True, "keys": "keys"}
    data["report"] = {"html": False}
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(data))
    made = subprocess.run([sys.executable, "-m", "zmqtrade", "keys", str(tmp_path / "keys"), "--topology", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert {"orderbook-b.key", "orderbook-c.key"} <= {k.name for k in (tmp_path / "keys").iterdir()}
    lead = launch(str(path), "--host", "a", "--run-dir", str(tmp_path / "a"), "-q")
    lead.wait_for("waiting for", 60)
    peers = [launch(str(path), "--host", h, "--run-dir", str(tmp_path / h), "-q") for h in ("b", "c")]
    assert lead.finish(120) == 0, lead.output + lead.stderr
    for peer in peers:
        assert peer.finish(60) == 0, peer.output + peer.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    procs = report["processes"]
    assert (procs["orderbook-b"]["host"], procs["orderbook-c"]["host"]) == ("b", "c")
    for book in ("orderbook-b", "orderbook-c"):
        c = procs[book]["counters"]
        assert c["ticks_applied"] > 0 and c["tick_gaps"] == 0, (book, c)
    assert procs["trend"]["counters"]["quotes_read"] > 0 and procs["meanrev"]["counters"]["quotes_read"] > 0
    c = report["counters"]
    assert c["orders_acked"] > 0 and c["orders_acked"] + c["orders_rejected"] == c["orders_sent"]
    assert c["malformed_messages"] == 0
    for log in tmp_path.glob("[abc]/*.log"):
        assert "refused a CURVE client" not in log.read_text(), log


def test_a_refused_peer_exits_1_and_the_lead_stops_cleanly_on_ctrl_c(tmp_path, launch):
    path, _ = one_machine_two_hosts(tmp_path, curve=False)
    a = launch(str(path), "--host", "a", "--run-dir", str(tmp_path / "a"), "-q")
    a.wait_for("waiting for b", 60)
    b = launch(str(path), "--host", "b", "--run-dir", str(tmp_path / "b"), "-q", "--set", "gateway.rate=999")
    assert b.finish(60) == 1, b.output + b.stderr
    assert "refused by the lead: its topology differs" in b.output
    a.proc.send_signal(signal.SIGINT)
    assert a.finish(60) == 0, a.output + a.stderr


# --------------------------------------------------------------------------- three namespaces
THREE = ROOT / "topologies" / "three_hosts.yaml"


@pytest.fixture
def star() -> Iterator[netns.Star]:
    with netns.made(netns.make_star, netns.remove_star, lambda s: s.ns.values()) as s:
        yield s


def start_three(launch, star: netns.Star, tmp_path: Path, topo: Path, *extra: str, env: dict | None = None):
    common = [arg for h in star.addr for arg in ("--set", f"hosts.{h}={star.addr[h]}")] + \
        ["-q", "--set", "report.html=false", *extra]  # the tests read report.json
    peers = [launch(str(topo), "--host", h, "--run-dir", str(tmp_path / h), *common, prefix=star.exec_in(h), env=env)
             for h in ("b", "c")]
    lead = launch(str(topo), "--host", "a", "--run-dir", str(tmp_path / "a"), *common, prefix=star.exec_in("a"),
                  env=env)
    return lead, peers


def test_three_hosts_each_strategy_host_reads_a_book_of_its_own(launch, star, tmp_path):
    lead, peers = start_three(launch, star, tmp_path, THREE, "--duration", "3", "--set", "gateway.rate=2000")
    assert lead.finish(120) == 0, lead.output + lead.stderr
    for p in peers:
        assert p.finish(60) == 0, p.output + p.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    placed = {name: p.get("host") for name, p in report["processes"].items()}
    assert placed == {"launcher@a": "a", "gateway": "a", "ordermanager": "a", "launcher@b": "b", "orderbook-b": "b",
                      "trend": "b", "launcher@c": "c", "orderbook-c": "c", "meanrev": "c"}
    for book in ("orderbook-b", "orderbook-c"):  # each applied the whole feed to its own host's book
        c = report["processes"][book]["counters"]
        assert c["ticks_applied"] > 0 and c["tick_gaps"] == 0, (book, c)
    assert report["processes"]["trend"]["counters"]["quotes_read"] > 0
    assert report["processes"]["meanrev"]["counters"]["quotes_read"] > 0
    by_host = report["latency_by_host"]
    assert set(by_host) == {"b", "c"} and by_host["b"]["orderbooks"] == ["orderbook-b"]
    assert by_host["c"]["strategies"] == ["meanrev"] and by_host["b"]["latency_us"]["tick_to_book"]["count"] > 0
    c = report["counters"]
    assert c["orders_acked"] > 0 and c["orders_acked"] + c["orders_rejected"] == c["orders_sent"]
    assert len(list(journal.read(tmp_path / "a" / journal.FILENAME))) == c["journal_records"] == c["orders_acked"]
    for h in ("b", "c"):  # each host's doorbell is its own, in its own run directory
        topo = json.loads((tmp_path / h / "topology.json").read_text())
        assert topo["orderbook"]["doorbell"] == f"ipc://{tmp_path / h}/doorbell.ipc"
    assert "book on host" in lead.output


def test_a_cut_link_to_one_strategy_host_heals_and_the_other_trades_throughout(launch, star, tmp_path):
    data = yaml.safe_load(THREE.read_text())
    data["duration_s"] = 0
    data["ordermanager"]["risk"] = {"max_order_qty": 10, "max_position": 1000, "max_orders_per_s": 100000}
    # Two PingPongs answer-chain 30-60k orders/s, as fast as the machine runs them: the duplicate filter
    # must hold replies_kept_s of answers, or the bound, not the age, forgets them (then counted). 6 s
    # outlasts the outage and a re-send after it; a bound of 1,000,000 holds 6 s of up to 166k orders/s
    # (500,000 held 10 s: enough at 30k orders/s, short on a fast hour at 55k).
    data["ordermanager"]["replies_kept_s"] = 6.0
    data["ordermanager"]["replies_kept"] = 1_000_000
    data["strategies"] = {name: {"host": h, "class": "pingpong:PingPong", "symbols": syms, "qty": 1,
                                 "order_timeout_s": 0.3}
                          for name, h, syms in (("ppb", "b", ["AAPL", "MSFT"]), ("ppc", "c", ["GOOG", "AMZN"]))}
    data["report"] = {"sample_interval_s": 0.25}
    (tmp_path / "pingpong.py").write_text(PINGPONG)
    topo = tmp_path / "cut3.yaml"
    topo.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    lead, peers = start_three(launch, star, tmp_path, topo, env=env)
    lead.wait_for("stack ready", 60)
    jpath = tmp_path / "a" / journal.FILENAME
    seen = {"ppb": 0, "ppc": 0, "offset": 0}

    def fills(strategy: str) -> int:
        """Fills journaled so far for ``strategy``, reading only what was appended since last time."""
        if jpath.exists():
            with open(jpath, "rb") as fh:
                fh.seek(seen["offset"])
                data = fh.read()
            whole = data[:data.rfind(b"\n") + 1]
            seen["offset"] += len(whole)
            for name in ("ppb", "ppc"):
                seen[name] += whole.count(b'"strategy":"%s"' % name.encode())
        return seen[strategy]

    wait_until("both hosts trading", lambda: fills("ppb") >= 200 and fills("ppc") >= 200, 30)
    star.link("c", up=False)
    time.sleep(1.0)  # the outage, 4 s in all: past the 2 s heartbeat timeout, so c's links drop
    b_at, c_at = fills("ppb"), fills("ppc")
    time.sleep(3.0)
    b_during, c_during = fills("ppb") - b_at, fills("ppc") - c_at
    star.link("c", up=True)
    c_back = fills("ppc")
    wait_until("c trading again after its link came back", lambda: fills("ppc") >= c_back + 200, 30)
    lead.proc.send_signal(signal.SIGINT)  # by pid: ip netns exec became the launcher
    assert lead.finish(90) == 0, lead.output + lead.stderr
    for p in peers:
        assert p.finish(60) == 0, p.output + p.stderr

    assert b_during >= 200, f"host b made only {b_during} fills while c was cut off"
    assert c_during <= 5, f"{c_during} of c's orders were journaled while its link was down"
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    records = list(journal.read(jpath))
    keys = Counter((r["strategy"], r["clordid"]) for r in records)
    assert not [k for k, n in keys.items() if n > 1], "an order was filled twice"
    for name in ("ppb", "ppc"):
        p = report["processes"][name]
        acked = {i for lo, hi in p["acked_ids"] for i in range(lo, hi + 1)}
        journaled = {r["clordid"] for r in records if r["strategy"] == name}
        assert acked == journaled, (name, sorted(acked - journaled)[:5], sorted(journaled - acked)[:5])
        assert p["counters"]["orders_unanswered"] == 0
    assert report["processes"]["ppc"]["counters"]["orders_resent"] > 0
    assert report["processes"]["ordermanager"]["counters"]["replies_forgotten_early"] == 0
    assert report["processes"]["orderbook-c"]["counters"]["resubscribed"] >= 1
    events = [e["event"] for e in report["events"] if e["process"] == "launcher@c"]
    assert any(e.startswith("silent for") for e in events) and any(e.startswith("back after") for e in events), events


def test_each_host_book_is_a_process_of_its_own_with_its_own_keys(write_topology):
    from zmqtrade import security

    data = yaml.safe_load(THREE.read_text())
    topo = topology.load(write_topology({**data, "hosts": {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}}))
    assert topo.orderbooks() == ["orderbook-b", "orderbook-c"] and topo.book_hosts() == ["b", "c"]
    assert [topo.host_of(n) for n in topo.process_names()] == ["a", "b", "c", "a", "b", "c"]
    assert topo.connecters()["gateway.prices"] == ("orderbook-b", "orderbook-c", "ordermanager")  # a: its own copy
    assert "orderbook.doorbell" not in topology.cross_host(topo)  # each host rings at its own
    assert security.servers(topo, "c")["orderbook.doorbell"] == "orderbook-c"
    assert {"orderbook-b", "orderbook-c"} <= set(topology.key_names(topo))
    from zmqtrade.launch.launcher import start_levels, stop_stages
    from zmqtrade.launch.multihost import endpoints_for

    assert start_levels(topo)[1] == ["orderbook-b", "orderbook-c", "ordermanager"]
    assert stop_stages(topo)[1] == ["orderbook-b", "orderbook-c"]
    assert "orderbook.doorbell" not in endpoints_for(topo, "b")  # never sent to another host
