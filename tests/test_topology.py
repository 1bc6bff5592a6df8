"""Topology validation: every problem is one ``key.path: message`` line naming the fix."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import BASE, ROOT, merge
from zmqtrade import topology
from zmqtrade.topology import TopologyError, load, parse


CSV = "timestamp,symbol,price\n1700000000,AAPL,100.5\n1700000001,MSFT,200.25\n"
"""A small valid replay file for the csv feed."""


def problems_of(path: Path) -> list[str]:
    """Load ``path`` expecting it to be refused; check the str form and return the problems."""
    with pytest.raises(TopologyError) as info:
        load(path)
    exc = info.value
    assert exc.source == str(path)
    assert exc.problems, "a TopologyError must carry at least one problem"
    assert str(exc).splitlines() == [f"{path}: {p}" for p in exc.problems]
    return exc.problems


def assert_one_problem(problems: list[str], key_path: str, fragment: str) -> None:
    assert len(problems) == 1, problems
    key, _, message = problems[0].partition(": ")
    assert key == key_path, problems
    assert fragment in message, problems


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A deep copy of ``data`` with the nested key ``keys`` removed."""
    out = copy.deepcopy(data)
    node = out
    for k in keys[:-1]:
        node = node[k]
    del node[keys[-1]]
    return out


# --------------------------------------------------------------------------- one error class per case
SINGLE_ERRORS = [
    # unknown keys, with a suggestion when one is close
    ("unknown-key", {"gateway": {"rat": 5}}, "gateway.rat", "unknown key; did you mean 'rate'?"),
    ("unknown-key-strategy", {"strategies": {"trend": {"sybmols": ["AAPL"]}}},
     "strategies.trend.sybmols", "did you mean 'symbols'?"),
    ("unknown-key-risk", {"ordermanager": {"risk": {"max_order_qtty": 5}}},
     "ordermanager.risk.max_order_qtty", "did you mean 'max_order_qty'?"),
    ("unknown-top-level-key", {"zzz": 1}, "zzz",
     "unknown key; known keys: control, duration_s, faults, gateway, hosts, lead, lead_endpoint, name, orderbook, ordermanager, placement, report, "
     "security, strategies, supervision, symbols, tuning"),
    # wrong types
    ("str-for-number", {"gateway": {"rate": "fast"}}, "gateway.rate", "expected a number, got str 'fast'"),
    ("str-for-list", {"symbols": "AAPL"}, "symbols", "expected a non-empty list, got str 'AAPL'"),
    ("empty-list", {"symbols": []}, "symbols", "expected a non-empty list"),
    ("int-in-str-list", {"symbols": ["AAPL", "MSFT", "GOOG", "AMZN", 5]}, "symbols[4]",
     "expected a string, got int 5"),
    ("bool-for-int", {"gateway": {"hwm": True}}, "gateway.hwm", "expected an integer, got bool True"),
    ("bool-for-int-strategy-qty", {"strategies": {"trend": {"qty": True}}}, "strategies.trend.qty",
     "expected an integer, got bool True"),
    ("bool-for-number", {"gateway": {"rate": True}}, "gateway.rate", "expected a number, got bool True"),
    ("float-for-int", {"gateway": {"hwm": 1.5}}, "gateway.hwm", "expected an integer, got float 1.5"),
    ("int-for-bool", {"gateway": {"lossless": 1}}, "gateway.lossless", "expected true or false, got int 1"),
    ("str-for-section", {"gateway": "fast"}, "gateway", "expected a mapping, got str 'fast'"),
    ("list-for-section", {"report": [1]}, "report", "expected a mapping, got list [1]"),
    ("str-for-strategies", {"strategies": "trend"}, "strategies", "expected a mapping, got str 'trend'"),
    ("list-for-params", {"strategies": {"trend": {"params": [3, 8]}}}, "strategies.trend.params",
     "expected a mapping, got list"),
    ("bad-literal", {"gateway": {"feed": {"kind": "parquet"}}}, "gateway.feed.kind",
     "got 'parquet'; use one of 'random_walk', 'csv'"),
    ("bad-literal-pace", {"gateway": {"feed": {"pace": "fast"}}}, "gateway.feed.pace",
     "use one of 'rate', 'timestamps'"),
    # value checks
    ("zero-rate", {"gateway": {"rate": 0}}, "gateway.rate", "must be a finite number > 0"),
    ("negative-rate", {"gateway": {"news_rate": -1.5}}, "gateway.news_rate", "must be a finite number > 0"),
    ("inf-rate", {"gateway": {"rate": float("inf")}}, "gateway.rate", "must be a finite number > 0"),
    ("nan-duration", {"duration_s": float("nan")}, "duration_s", "must be a finite number >= 0"),
    ("negative-duration", {"duration_s": -1}, "duration_s", "must be a finite number >= 0"),
    ("zero-qty", {"strategies": {"trend": {"qty": 0}}}, "strategies.trend.qty", "must be a finite number > 0"),
    ("zero-risk", {"ordermanager": {"risk": {"max_position": 0}}}, "ordermanager.risk.max_position",
     "must be a finite number > 0"),
    ("bad-name", {"name": "has space"}, "name", "names start with a letter"),
    ("hwm-above-c-int", {"gateway": {"hwm": 2**31}}, "gateway.hwm", "must be 0..2147483647 messages"),
    ("qty-above-64-bits", {"strategies": {"trend": {"qty": 2**64}}}, "strategies.trend.qty",
     "does not fit in 64 bits"),
    ("fault-not-a-mapping", {"faults": [5]}, "faults[0]", "expected a mapping, got int 5"),
    ("answers-kept-shorter-than-a-resend", {"ordermanager": {"replies_kept_s": 5},
                                            "strategies": {"trend": {"order_timeout_s": 1}}},
     "ordermanager.replies_kept_s", "shorter than strategy trend's longest re-send interval (16 x order_timeout_s "
     "= 16 s)"),
    ("ipc-path-too-long", {"gateway": {"prices": "ipc:///tmp/" + "p" * 120 + ".ipc"}}, "gateway.prices",
     "the kernel takes at most 107"),
    ("bad-symbol", {"symbols": ["AAPL", "MSFT", "GOOG", "AMZN", "NO SPACES"]}, "symbols[4]",
     "symbols are 1-16 characters"),
    ("duplicate-symbol", {"symbols": ["AAPL", "MSFT", "GOOG", "AMZN", "AAPL"]}, "symbols",
     "lists a symbol twice; list each once"),
    # placement and the doorbell
    ("bad-placement", {"placement": "spread"}, "placement", "got 'spread'; use one of 'auto', 'none'"),
    ("negative-cpu", {"gateway": {"cpus": [-1]}}, "gateway.cpus[0]", "CPU numbers are 0 and up"),
    ("absent-cpu", {"strategies": {"trend": {"cpus": [4095]}}}, "strategies.trend.cpus",
     "CPU 4095 is not available here"),
    ("bad-doorbell", {"strategies": {"trend": {"doorbell": "udp"}}}, "strategies.trend.doorbell",
     "use one of 'pipe', 'zmq'"),
    ("bad-io-threads", {"tuning": {"io_threads": "fifo"}}, "tuning.io_threads", "use one of 'normal', 'batch'"),
    # endpoints
    ("endpoint-no-scheme", {"gateway": {"prices": "localhost:5555"}}, "gateway.prices",
     "'localhost:5555' is not an endpoint; write tcp://HOST:PORT"),
    ("endpoint-no-port", {"gateway": {"news": "tcp://127.0.0.1"}}, "gateway.news", "is not an endpoint"),
    ("endpoint-udp", {"orderbook": {"doorbell": "udp://127.0.0.1:5"}}, "orderbook.doorbell", "is not an endpoint"),
    ("endpoint-six-digit-port", {"gateway": {"prices": "tcp://127.0.0.1:123456"}}, "gateway.prices",
     "is not an endpoint"),
    ("endpoint-not-str", {"ordermanager": {"endpoint": 5555}}, "ordermanager.endpoint",
     "expected a string, got int 5555"),
    ("port-too-high", {"gateway": {"prices": "tcp://127.0.0.1:70000"}}, "gateway.prices",
     "port 70000 is out of range; use 1-65535 or *"),
    ("port-zero", {"ordermanager": {"endpoint": "tcp://127.0.0.1:0"}}, "ordermanager.endpoint",
     "port 0 is out of range; use 1-65535 or *"),
    ("control-port-out-of-range", {"control": "tcp://127.0.0.1:65536"}, "control", "port 65536 is out of range"),
    # graph checks: ports and binders
    ("duplicate-port-other-host", {"gateway": {"prices": "tcp://127.0.0.1:5555", "news": "tcp://0.0.0.0:5555"}},
     "gateway.news", "port 5555 is already used by gateway.prices; pick a free port"),
    ("duplicate-port-control", {"ordermanager": {"endpoint": "tcp://127.0.0.1:6001"},
                                "control": "tcp://localhost:6001"},
     "control", "port 6001 is already used by ordermanager.endpoint"),
    ("duplicate-port-leading-zero", {"gateway": {"prices": "tcp://127.0.0.1:5555", "news": "tcp://127.0.0.2:05555"}},
     "gateway.news", "port 5555 is already used by gateway.prices"),
    ("same-endpoint-two-binders", {"gateway": {"prices": "tcp://127.0.0.1:5555"},
                                   "orderbook": {"doorbell": "tcp://127.0.0.1:5555"}},
     "orderbook.doorbell", "tcp://127.0.0.1:5555 is bound by gateway.prices too; two binders cannot share"),
    ("same-ipc-endpoint-two-binders", {"gateway": {"prices": "ipc:///nonexistent/zmqtrade/p.ipc",
                                                   "news": "ipc:///nonexistent/zmqtrade/p.ipc"}},
     "gateway.news", "is bound by gateway.prices too"),
    # strategies
    ("symbol-not-published", {"strategies": {"trend": {"symbols": ["AAPL", "IBM"]}}},
     "strategies.trend.symbols[1]", "'IBM' is not published by the gateway; add it to symbols or remove it here"),
    ("unknown-builtin", {"strategies": {"trend": {"class": "nope"}}}, "strategies.trend.class",
     "'nope' is neither a built-in (ma_news, rsi, every_quote) nor module:Class"),
    ("unimportable-module", {"strategies": {"trend": {"class": "nosuchmodule:X"}}}, "strategies.trend.class",
     "cannot import 'nosuchmodule'"),
    ("not-a-strategy-class", {"strategies": {"trend": {"class": "zmqtrade.wire:Tick"}}}, "strategies.trend.class",
     "zmqtrade.wire has no Strategy subclass named 'Tick'"),
    ("missing-class-in-module", {"strategies": {"trend": {"class": "zmqtrade.strategies.rsi:Nope"}}},
     "strategies.trend.class", "has no Strategy subclass named 'Nope'"),
    ("unknown-param", {"strategies": {"trend": {"params": {"shrt": 3}}}}, "strategies.trend.params.shrt",
     "unknown parameter for MovingAverageNews (known: bearish, bullish, long, short)"),
    ("param-wrong-type", {"strategies": {"trend": {"params": {"short": "3"}}}}, "strategies.trend.params.short",
     "expected int, got str '3'"),
    ("param-bool-for-int", {"strategies": {"trend": {"params": {"long": True}}}}, "strategies.trend.params.long",
     "expected int, got bool True"),
    ("param-bool-for-float", {"strategies": {"trend": {"params": {"bullish": False}}}},
     "strategies.trend.params.bullish", "expected float, got bool False"),
    ("param-out-of-range", {"strategies": {"meanrev": {"params": {"period": 1}}}}, "strategies.meanrev.params.period",
     "1 is outside 2..inf"),
    ("param-above-range", {"strategies": {"trend": {"params": {"bullish": 101}}}}, "strategies.trend.params.bullish",
     "101 is outside 0..100"),
    ("ma-news-short-not-below-long", {"strategies": {"trend": {"params": {"short": 8, "long": 8}}}},
     "strategies.trend.params", "short (8) must be below long (8)"),
    ("ma-news-bearish-above-bullish", {"strategies": {"trend": {"params": {"bullish": 40, "bearish": 60}}}},
     "strategies.trend.params", "bearish (60) must not be above bullish (40)"),
    ("rsi-oversold-above-overbought", {"strategies": {"meanrev": {"params": {"oversold": 80}}}},
     "strategies.meanrev.params", "oversold (80) must be below overbought (70.0)"),
    ("strategy-named-like-component", {"strategies": {"gateway": {"class": "rsi", "symbols": ["AAPL"]}}},
     "strategies.gateway", "'gateway' is a component's name; call the strategy something else"),
    ("strategy-named-like-ordermanager", {"strategies": {"ordermanager": {"class": "rsi", "symbols": ["AAPL"]}}},
     "strategies.ordermanager", "is a component's name"),
    ("strategy-bad-name", {"strategies": {"9lives": {"class": "rsi", "symbols": ["AAPL"]}}},
     "strategies.9lives", "names start with a letter"),
    # csv feed
    ("csv-without-path", {"gateway": {"feed": {"kind": "csv"}}}, "gateway.feed.path",
     "missing; a csv feed needs path: FILE"),
    ("csv-path-missing-file", {"gateway": {"feed": {"kind": "csv", "path": "no-such-ticks.csv"}}},
     "gateway.feed.path", "is not a file (relative paths start at the topology's folder)"),
]


def _case_id(case: Any) -> str:
    return case.id if hasattr(case, "marks") else case[0]


@pytest.mark.parametrize(("case", "changes", "key_path", "fragment"), SINGLE_ERRORS,
                         ids=[_case_id(c) for c in SINGLE_ERRORS])
def test_single_error(write_topology, case, changes, key_path, fragment):
    assert_one_problem(problems_of(write_topology(changes)), key_path, fragment)


def test_csv_path_is_a_directory(write_topology, tmp_path):
    (tmp_path / "ticks").mkdir()
    problems = problems_of(write_topology({"gateway": {"feed": {"kind": "csv", "path": "ticks"}}}))
    assert_one_problem(problems, "gateway.feed.path", "is not a file")


@pytest.mark.parametrize(("keys", "key_path", "fragment"), [
    (("gateway", "prices"), "gateway.prices", "missing; add it (the endpoint the price PUB binds)"),
    (("gateway", "news"), "gateway.news", "missing; add it (the endpoint the news PUB binds)"),
    (("orderbook", "doorbell"), "orderbook.doorbell", "missing; add it (the endpoint the doorbell PUB binds)"),
    (("ordermanager", "endpoint"), "ordermanager.endpoint", "missing; add it (the endpoint the order ROUTER binds)"),
    (("symbols",), "symbols", "missing; add it (the symbols the gateway publishes)"),
    (("orderbook",), "orderbook", "missing; add it (the orderbook section)"),
])
def test_missing_required_key(write_topology, keys, key_path, fragment):
    path = write_topology(raw=yaml.safe_dump(without(BASE, *keys)))
    assert_one_problem(problems_of(path), key_path, fragment)


@pytest.mark.parametrize(("data", "key_path", "fragment"), [
    (merge(BASE, {"strategies": {"trend": {"symbols": "AAPL"}}}), "strategies.trend.symbols",
     "expected a non-empty list, got str 'AAPL'"),
    (without(BASE, "strategies", "trend", "class"), "strategies.trend.class", "missing; name a built-in"),
    (merge(BASE, {"strategies": {"trend": {"class": 5}}}), "strategies.trend.class", "expected a string"),
    (merge(BASE, {"strategies": {"extra": None}}), "strategies.extra", "expected a mapping"),
], ids=["symbols-str", "class-missing", "class-int", "spec-null"])
def test_bad_required_strategy_key_is_reported(write_topology, data, key_path, fragment):
    path = write_topology(raw=yaml.safe_dump(data))
    problems = problems_of(path)
    assert any(p.startswith(f"{key_path}: ") and fragment in p for p in problems), problems


def test_several_problems_reported_in_one_pass(write_topology):
    path = write_topology({
        "zzz": 1,
        "gateway": {"rate": "fast", "hwm": True},
        "control": "tcp://127.0.0.1:99999",
        "strategies": {"trend": {"symbols": ["IBM"], "params": {"shrt": 1}},
                       "meanrev": {"class": "nosuchmodule:X"}},
    })
    problems = problems_of(path)
    keys = [p.partition(": ")[0] for p in problems]
    assert sorted(keys) == sorted([
        "zzz", "gateway.rate", "gateway.hwm", "control",
        "strategies.trend.symbols[0]", "strategies.trend.params.shrt", "strategies.meanrev.class",
    ])
    assert len(str(TopologyError(str(path), problems)).splitlines()) == 7


# --------------------------------------------------------------------------- files and YAML
def test_invalid_yaml_reports_line(write_topology):
    raw = "name: t\nsymbols: [AAPL]\ngateway:\n\tprices: tcp://127.0.0.1:*\n"
    problems = problems_of(write_topology(raw=raw))
    assert len(problems) == 1, problems
    assert problems[0].startswith("<yaml>: ")
    assert "line 4, column 1" in problems[0]
    assert "fix the YAML syntax there" in problems[0]


def test_unclosed_flow_list_reports_yaml_problem(write_topology):
    problems = problems_of(write_topology(raw="name: t\nsymbols: [AAPL, MSFT\nduration_s: 3\n"))
    assert len(problems) == 1 and problems[0].startswith("<yaml>: ") and " at line " in problems[0], problems


@pytest.mark.parametrize(("raw", "fragment"), [
    ("", "<top>: expected a mapping of keys, got NoneType None"),
    ("- a\n- b\n", "<top>: expected a mapping of keys, got list"),
    ("just a string\n", "<top>: expected a mapping of keys, got str"),
], ids=["empty", "list", "scalar"])
def test_top_level_not_a_mapping(write_topology, raw, fragment):
    problems = problems_of(write_topology(raw=raw))
    assert len(problems) == 1 and problems[0].startswith(fragment), problems


def test_unreadable_file(tmp_path):
    problems = problems_of(tmp_path / "absent.yaml")
    assert problems == ["<file>: cannot be read (No such file or directory); check the path"]


def test_topology_error_str_prefixes_each_line():
    exc = TopologyError("f.yaml", ["a.b: one", "c: two"])
    assert str(exc) == "f.yaml: a.b: one\nf.yaml: c: two"
    assert exc.problems == ["a.b: one", "c: two"] and exc.source == "f.yaml"


def test_parse_reports_its_source():
    with pytest.raises(TopologyError) as info:
        parse(merge(BASE, {"gateway": {"rat": 1}}), "inline.yaml")
    assert info.value.source == "inline.yaml"
    assert str(info.value) == "inline.yaml: gateway.rat: unknown key; did you mean 'rate'?"


# --------------------------------------------------------------------------- valid topologies
def test_shipped_topology_loads():
    path = ROOT / "topology.yaml"
    topo = load(path)
    assert topo.name == "default"
    assert topo.source == str(path)
    assert topo.symbols == ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA")
    assert topo.control == "tcp://127.0.0.1:5550"
    assert topo.gateway.prices == "tcp://127.0.0.1:5555"
    assert topo.gateway.feed.kind == "random_walk" and topo.gateway.feed.seed == 42
    assert topo.ordermanager.risk.max_position == 5000
    assert list(topo.strategies) == ["trend", "meanrev"]
    assert topo.strategies["trend"].cls == "ma_news"
    assert topo.strategies["trend"].name == "trend"
    assert dict(topo.strategies["meanrev"].params) == {"period": 14, "oversold": 30, "overbought": 70}
    assert topo.process_names() == ["gateway", "orderbook", "ordermanager", "trend", "meanrev"]


def test_wildcard_ports_may_repeat(write_topology):
    topo = load(write_topology())
    binds = topo.binds()
    assert set(binds) == {"gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint", "control"}
    assert set(binds.values()) == {"tcp://127.0.0.1:*"}


def test_defaults_are_filled(write_topology):
    data = {
        "symbols": ["AAPL"],
        "gateway": {"prices": "tcp://127.0.0.1:*", "news": "tcp://127.0.0.1:*"},
        "orderbook": {"doorbell": "tcp://127.0.0.1:*"},
        "ordermanager": {"endpoint": "tcp://127.0.0.1:*"},
        "strategies": {"s1": {"class": "rsi", "symbols": ["AAPL"]}},
    }
    topo = load(write_topology(raw=yaml.safe_dump(data), name="minimal.yaml"))
    assert topo.name == "minimal"  # from the file name
    assert topo.duration_s == 10.0 and topo.control == "tcp://127.0.0.1:*"
    risk = topo.ordermanager.risk
    assert (risk.max_order_qty, risk.max_position, risk.max_orders_per_s) == (1_000, 10_000, 50_000.0)
    g = topo.gateway
    assert (g.rate, g.news_rate, g.hwm, g.lossless) == (1000.0, 10.0, 100_000, False)
    assert g.feed == topology.Feed()
    assert topo.orderbook.hwm == 100_000
    assert topo.report.sample_interval_s == 0.5
    s = topo.strategies["s1"]
    assert (s.qty, dict(s.params), s.name) == (10, {}, "s1")
    assert (s.doorbell, s.cpus, topo.placement, topo.tuning.io_threads) == ("pipe", None, "auto", "normal")
    assert topo.ordermanager.fsync == "off"  # written to the kernel before the ack; flushing is opt-in


def test_cpus_of_keeps_each_path_on_its_own_cpus(write_topology):
    topo = load(write_topology({"ordermanager": {"cpus": [0]}}))
    assert topo.cpus_of("gateway", [0, 1]) == topo.cpus_of("orderbook", [0, 1]) == {0}  # the price path
    assert topo.cpus_of("trend", [0, 1]) == topo.cpus_of("meanrev", [0, 1]) == {1}      # the order path
    assert topo.cpus_of("trend", [2, 5, 7]) == {5, 7} and topo.cpus_of("gateway", [7, 5, 2]) == {2}
    assert topo.cpus_of("ordermanager", [0, 1]) == {0}  # its own cpus come first
    assert topo.cpus_of("trend", [3]) is None           # one CPU: nothing to place
    unplaced = load(write_topology({"placement": "none"}))
    assert unplaced.cpus_of("gateway", [0, 1]) is None


def test_ints_become_floats_where_numbers_are_expected(write_topology):
    topo = load(write_topology())
    assert type(topo.gateway.rate) is float and topo.gateway.rate == 2000.0
    assert type(topo.duration_s) is float
    assert type(topo.gateway.hwm) is int


def test_csv_feed_path_resolved_from_topology_folder(write_topology, tmp_path):
    (tmp_path / "ticks.csv").write_text(CSV)
    topo = load(write_topology({"gateway": {"feed": {"kind": "csv", "path": "ticks.csv"}}}))
    assert topo.gateway.feed.path == str((tmp_path / "ticks.csv").resolve())


def test_parse_resolves_csv_path_from_base_dir(tmp_path):
    (tmp_path / "ticks.csv").write_text(CSV)
    data = merge(BASE, {"gateway": {"feed": {"kind": "csv", "path": "ticks.csv"}}})
    topo = parse(data, "inline.yaml", tmp_path)
    assert topo.gateway.feed.path == str(tmp_path.resolve() / "ticks.csv")
    assert topo.source == "inline.yaml"
    assert topo.name == "t"


@pytest.mark.parametrize("which", ["base", "shipped", "csv"])
def test_to_dict_round_trips(write_topology, tmp_path, which):
    if which == "shipped":
        topo = load(ROOT / "topology.yaml")
    elif which == "csv":
        (tmp_path / "ticks.csv").write_text(CSV)
        topo = load(write_topology({"gateway": {"feed": {"kind": "csv", "path": "ticks.csv", "loop": False}}}))
    else:
        topo = load(write_topology())
    plain = topo.to_dict()
    assert "source" not in plain
    assert all("class" in s and "name" not in s for s in plain["strategies"].values())
    again = parse(plain, topo.source, tmp_path)
    assert again == topo
    # through real YAML too (safe_dump refuses anything that is not plain data)
    reloaded = load(write_topology(raw=yaml.safe_dump(plain), name="again.yaml"))
    assert dataclasses.replace(reloaded, source=topo.source) == topo
    # the comparison can fail
    changed = copy.deepcopy(plain)
    changed["gateway"]["rate"] = plain["gateway"]["rate"] + 1
    assert parse(changed, topo.source, tmp_path) != topo


def test_replace_endpoints(write_topology):
    topo = load(write_topology())
    new = topo.replace_endpoints({
        "gateway.prices": "tcp://127.0.0.1:40001",
        "gateway.news": "tcp://127.0.0.1:40002",
        "ordermanager.endpoint": "tcp://127.0.0.1:40003",
        "control": "tcp://127.0.0.1:40004",
    })
    assert new.binds() == {
        "gateway.prices": "tcp://127.0.0.1:40001",
        "gateway.news": "tcp://127.0.0.1:40002",
        "orderbook.doorbell": "tcp://127.0.0.1:*",
        "ordermanager.endpoint": "tcp://127.0.0.1:40003",
        "control": "tcp://127.0.0.1:40004",
    }
    assert set(topo.binds().values()) == {"tcp://127.0.0.1:*"}  # the original is untouched
    assert new.gateway.rate == topo.gateway.rate and new.ordermanager.risk == topo.ordermanager.risk
    assert new.strategies == topo.strategies and new.symbols == topo.symbols
    assert topo.replace_endpoints({}) == topo


def test_substitute_run_dir_and_ipc_paths(write_topology, tmp_path):
    eps = {"control": "ipc://{run_dir}/control.ipc",
           "gateway": {"prices": "ipc://{run_dir}/prices.ipc", "news": "ipc://@abstract-news"},
           "orderbook": {"doorbell": "ipc://{run_dir}/doorbell.ipc"}}
    topo = load(write_topology(eps))
    run_dir = tmp_path / "run"
    new = topology.substitute_run_dir(topo, run_dir)
    assert new.control == f"ipc://{run_dir}/control.ipc"
    assert new.gateway.prices == f"ipc://{run_dir}/prices.ipc"
    assert new.gateway.news == "ipc://@abstract-news"
    assert topology.ipc_paths(new) == [run_dir / "prices.ipc", run_dir / "doorbell.ipc", run_dir / "control.ipc"]


def test_describe_mentions_every_process(write_topology):
    topo = load(write_topology({"gateway": {"lossless": True}}))
    text = topology.describe(topo)
    lines = text.splitlines()
    assert lines[0] == f"topology t ({topo.source})"
    for name in topo.process_names():
        assert any(line.split()[0] == name for line in lines[1:]), (name, text)
    assert "ma_news on AAPL, MSFT qty 10 (short=3, long=8, bullish=52, bearish=48)" in text
    assert "rsi on GOOG, AMZN qty 5 (period=6)" in text
    assert "lossless" in text and "seed 7" in text


# --------------------------------------------------------------------------- the CLI
def _launch(path: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), str(path), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_cli_check_good_file(write_topology, tmp_path):
    path = write_topology()
    result = _launch(path, "--check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[-1] == "ok"
    for name in ("gateway", "orderbook", "ordermanager", "trend", "meanrev"):
        assert any(line.split()[:1] == [name] for line in out), result.stdout
    assert result.stderr == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args", [["--check"], []], ids=["check", "run"])
def test_cli_bad_file_exits_2_and_starts_nothing(write_topology, tmp_path, args):
    path = write_topology({"gateway": {"rat": 5}, "strategies": {"trend": {"symbols": ["AAPL", "IBM"]}}})
    result = _launch(path, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: gateway.rat: unknown key; did you mean 'rate'?",
        f"{path}: strategies.trend.symbols[1]: 'IBM' is not published by the gateway; "
        "add it to symbols or remove it here",
        f"{path}: 2 problem(s); nothing was started",
    ]
    assert not (tmp_path / "runs").exists()


def test_a_run_topology_json_reads_back_what_was_checked(write_topology, tmp_path):
    """The launcher hands its children topology.json; YAML 1.1 would read JSON's 1e-05 as a string."""
    import json

    topo = load(write_topology({"gateway": {"feed": {"volatility": 0.00001}},
                                "strategies": {"trend": {"order_timeout_s": 0.00005}}}))
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(topo.to_dict(), indent=2))
    assert "1e-05" in path.read_text()
    again = load(path)
    assert (again.gateway.feed.volatility, again.strategies["trend"].order_timeout_s) == (0.00001, 0.00005)


def test_a_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_one_problem(problems_of(path), "<file>", "not UTF-8 text")


@pytest.mark.parametrize("duration", ["nan", "inf", "-1"])
def test_cli_refuses_a_duration_that_is_not_finite(duration, write_topology):
    path = write_topology({})
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), str(path), "--duration", duration, "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--duration must be a finite number of seconds >= 0" in proc.stderr


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_cli_refuses_a_run_dir_it_cannot_write(where, write_topology, tmp_path):
    import os

    if where == "under-a-file":
        (tmp_path / "plain").write_text("")
        run_dir = tmp_path / "plain" / "run"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes to a read-only directory")
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        run_dir = ro / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), str(write_topology({})), "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot hold a run" in proc.stderr and "Traceback" not in proc.stderr


def test_a_class_changed_with_its_old_params_is_refused_with_the_fix(write_topology):
    problems = problems_of(write_topology({"strategies": {"trend": {"class": "every_quote"}}}))
    assert problems[-1] == ("strategies.trend.params: every_quote does not take 4 of these; a new class needs its "
                            "own params: --set strategies.trend.params={} (or its parameters) beside --set "
                            "strategies.trend.class=every_quote")
    typo = problems_of(write_topology({"strategies": {"trend": {"params": {"shrt": 3}}}}))
    assert typo[0].endswith("did you mean 'short'?") and len(typo) == 1  # a typo is no class change
    name = problems_of(write_topology({"strategies": {"trend": {"class": "ma_new"}}}))
    assert "did you mean 'ma_news'?" in name[0]


def test_an_external_strategy_is_accepted_by_name_but_never_started(write_topology):
    topo = load(write_topology({"strategies": {"outside": {"external": True, "symbols": ["AAPL"]}}}))
    assert "outside" in topo.strategies and "outside" not in topo.process_names()
    assert "outside" in topo.connecters()["ordermanager.endpoint"]  # admitted (under CURVE, by its key)
    assert "outside" in topology.key_names(topo)


@pytest.mark.parametrize(("spec", "key", "fragment"), [
    ({"external": True, "symbols": ["AAPL"], "class": "rsi"}, "strategies.outside.class", "takes no class"),
    ({"external": True, "symbols": ["AAPL"], "params": {"period": 3}}, "strategies.outside.params", "takes no params"),
    ({"symbols": ["AAPL"]}, "strategies.outside.class", "or say external: true"),
])
def test_an_external_strategy_takes_no_code_and_an_internal_one_needs_some(write_topology, spec, key, fragment):
    problems = problems_of(write_topology({"strategies": {"outside": spec}}))
    assert any(p.startswith(f"{key}: ") and fragment in p for p in problems), problems
