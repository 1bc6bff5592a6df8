"""--set / --sweep: parsing, applying to a topology's data, and the errors they give."""
from __future__ import annotations

import pytest

from zmqtrade import overrides, topology
from zmqtrade.overrides import OverrideError

from conftest import ROOT


@pytest.mark.parametrize("text, key, value", [
    ("gateway.rate=20000", "gateway.rate", 20000),
    ("gateway.lossless=true", "gateway.lossless", True),
    ("symbols=[AAPL, MSFT]", "symbols", ["AAPL", "MSFT"]),
    ("strategies.s1.class=mypkg.mine:Mine", "strategies.s1.class", "mypkg.mine:Mine"),
    ("gateway.feed.volatility=1e-4", "gateway.feed.volatility", 1e-4),
    ("name= spaced ", "name", "spaced"),
])
def test_parse_assignment(text, key, value):
    assert overrides.parse_assignment(text) == (key, value)


@pytest.mark.parametrize("text", ["gateway.rate", "=5", "gateway..rate=1", ".rate=1"])
def test_parse_assignment_refuses(text):
    with pytest.raises(OverrideError, match="KEY=VALUE"):
        overrides.parse_assignment(text)


def test_sweeps_and_their_points():
    assert overrides.parse_sweep("gateway.rate=1000,5000") == ("gateway.rate", [1000, 5000])
    assert overrides.parse_sweep("gateway.lossless=true,false") == ("gateway.lossless", [True, False])
    with pytest.raises(OverrideError):
        overrides.parse_sweep("gateway.rate=1000,,5000")
    # commas inside a value's brackets do not split it: a sweep over mappings or lists
    assert overrides.parse_sweep("strategies.s.params={short: 3, long: 8},{short: 5, long: 20}") == \
        ("strategies.s.params", [{"short": 3, "long": 8}, {"short": 5, "long": 20}])
    assert overrides.parse_sweep("symbols=[A, B],[C]") == ("symbols", [["A", "B"], ["C"]])
    assert overrides.describe([("security.curve", True), ("s", "x"), ("p", {"a": 1})]) == \
        'security.curve=true, s=x, p={"a": 1}'  # echoed as written, not as Python writes it
    pts = overrides.points([("a", [1, 2]), ("b", ["x", "y"])])
    assert pts == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert overrides.points([]) == [{}]
    assert overrides.label({"gateway.rate": 5000, "feed": "a/b c"}) == "gateway.rate=5000_feed=a-bc"


def test_apply_creates_sections_and_never_touches_the_original():
    data = {"gateway": {"rate": 1}}
    out = overrides.apply(data, {"gateway.rate": 2, "tuning.cpu_dma_latency_us": 0})
    assert out == {"gateway": {"rate": 2}, "tuning": {"cpu_dma_latency_us": 0}}
    assert data == {"gateway": {"rate": 1}}
    with pytest.raises(OverrideError, match="gateway.rate holds the value 1, not a section"):
        overrides.apply(data, {"gateway.rate.x": 3})


def test_load_with_overrides_validates_like_the_file():
    path = ROOT / "topology.yaml"
    topo = topology.load(path, {"gateway.rate": 20000, "strategies.trend.params.short": 3})
    assert topo.gateway.rate == 20000.0 and topo.strategies["trend"].params["short"] == 3
    with pytest.raises(topology.TopologyError) as exc:
        topology.load(path, {"gateway.rat": 5, "strategies.trend.params.short": "three"})
    text = str(exc.value)
    assert "with --set gateway.rat=5" in text
    assert "gateway.rat: unknown key; did you mean 'rate'?" in text
    assert "strategies.trend.params.short: expected int, got str 'three'" in text
