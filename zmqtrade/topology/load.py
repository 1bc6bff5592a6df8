"""Entry points: a file (or plain data) to a validated :class:`Topology`, and its views for people."""
from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path
from typing import Any, Mapping

import yaml

from zmqtrade import overrides as ov
from zmqtrade.topology import values as v
from zmqtrade.topology.checks import graph_checks
from zmqtrade.topology.convert import Converter, name_from, show
from zmqtrade.topology.hosts import place
from zmqtrade.topology.schema import Topology, TopologyError


def parse(data: Any, source: str = "<topology>", base_dir: Path | None = None, host: str | None = None,
          check_files: bool = True) -> Topology:
    """Validate plain data (as ``yaml.safe_load`` returns it) into a :class:`Topology`.

    ``host``: validate for that host's launcher: its own secret keys only, and the CSV feed only
    if the gateway runs there. ``check_files`` False leaves key files and the CSV to the process
    that reads them (a child of a launcher that checked them already)."""
    conv = Converter()
    base_dir = base_dir or Path.cwd()
    if not isinstance(data, dict):
        raise TopologyError(source, [f"<top>: expected a mapping of keys, got {show(data)}"])
    if isinstance(data.get("hosts"), dict):  # NAME: ADDRESS is short for NAME: {address: ADDRESS}
        data = {**data, "hosts": {k: {"address": v} if isinstance(v, str) else v for k, v in data["hosts"].items()}}
    topo = conv.dataclass(Topology, data, "")
    if topo is not None:
        strategies = {n: dataclasses.replace(s, name=n) for n, s in topo.strategies.items()}
        feed = topo.gateway.feed
        if feed.kind == "csv" and feed.path:
            feed = dataclasses.replace(feed, path=str((base_dir / feed.path).resolve()))
        security = topo.security
        if security.keys:
            security = dataclasses.replace(security, keys=str((base_dir / security.keys).resolve()))
        topo = place(topo, conv)
        topo = dataclasses.replace(
            topo,
            security=security,
            name=topo.name or name_from(Path(source).stem),
            strategies=types.MappingProxyType(strategies),
            gateway=dataclasses.replace(topo.gateway, feed=feed),
            source=source,
        )
        graph_checks(topo, conv, base_dir, host, check_files)
    if conv.errors or topo is None:
        raise TopologyError(source, conv.errors or ["<top>: could not be read"])
    return topo


def load(path: str | Path, overrides: Mapping[str, Any] | None = None, host: str | None = None,
         check_files: bool = True) -> Topology:
    """Read a topology file, apply ``--set`` overrides to its data, and validate the result
    (``host``, ``check_files``: see :func:`parse`)."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(source, [f"<file>: cannot be read ({exc.strerror}); check the path"]) from None
    except UnicodeDecodeError as exc:
        raise TopologyError(source, [f"<file>: not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from None
    try:
        # a run's topology.json is read as JSON: YAML 1.1 reads a JSON float such as 1e-05 as a string
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TopologyError(source, [f"<json>: {exc.msg} at line {exc.lineno}, column {exc.colno}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError(source, [f"<yaml>: {problem} at {where}; fix the YAML syntax there"]) from None
    if overrides:
        shown = f"{source} with --set {ov.describe(overrides.items())}"
        try:
            data = ov.apply(data, overrides)
        except ov.OverrideError as exc:
            raise TopologyError(shown, [f"<override>: {exc}"]) from None
        try:
            return parse(data, source, path.parent.resolve(), host, check_files)
        except TopologyError as exc:
            raise TopologyError(shown, exc.problems) from None
    return parse(data, source, path.parent.resolve(), host, check_files)


def substitute_run_dir(topo: Topology, run_dir: Path) -> Topology:
    """Expand ``{run_dir}`` in ipc endpoints so each run gets its own socket files."""
    resolved = {p: ep.replace("{run_dir}", str(run_dir)) for p, ep in topo.binds().items() if "{run_dir}" in ep}
    return topo.replace_endpoints(resolved) if resolved else topo


def ipc_paths(topo: Topology) -> list[Path]:
    """Socket files the stack's binders create, for cleanup after a crash."""
    out = []
    for ep in topo.binds().values():
        m = v.ENDPOINT_RE.match(ep)
        if m and m.group("path") and not m.group("path").startswith("@"):
            out.append(Path(m.group("path")))
    return out


def describe(topo: Topology) -> str:
    """A human view of the resolved stack, printed by ``--check``."""
    g, ob, om = topo.gateway, topo.orderbook, topo.ordermanager
    lines = [
        f"topology {topo.name} ({topo.source})",
        f"  duration      {topo.duration_s:g} s" + (" (until Ctrl-C)" if topo.duration_s == 0 else ""),
        f"  symbols       {', '.join(topo.symbols)}",
        f"  control       bind {topo.control}",
        f"  gateway       bind prices {g.prices}  news {g.news}",
        f"                {g.rate:g} ticks/s, {g.news_rate:g} news/s, feed {g.feed.kind}"
        + (f" seed {g.feed.seed}" if g.feed.kind == "random_walk" else f" {g.feed.path}")
        + f", batches up to {g.batch} (window {g.batch_window_us:g} us), hwm {g.hwm}" + (", lossless" if g.lossless else ""),
        f"  orderbook     connect {g.prices}  bind doorbell {ob.doorbell}"
        + ("" if ob.conflate else ", a doorbell slot per tick")
        + (f"; one on each of {', '.join(ob.hosts)} ({', '.join(topo.orderbooks())})" if ob.hosts else ""),
        f"  ordermanager  bind {om.endpoint}  risk: max qty {om.risk.max_order_qty}, "
        f"max position {om.risk.max_position}, max {om.risk.max_orders_per_s:g} orders/s"
        + (f"; fees {om.fees.per_share:g}/share + {om.fees.notional_bps:g} bps" if om.fees.per_share or om.fees.notional_bps
           else ""),
    ]
    for name, s in topo.strategies.items():
        if s.external:
            lines.append(f"  {name:<13} external: a client of its own on {', '.join(s.symbols)} (not started here)")
            continue
        params = ", ".join(f"{k}={v}" for k, v in s.params.items()) or "defaults"
        lines.append(f"  {name:<13} {s.cls} on {', '.join(s.symbols)} qty {s.qty} ({params})"
                     + ("" if s.conflate else ", acts on every doorbell"))
    if len(topo.hosts_used()) > 1:
        for i, h in enumerate(topo.hosts_used()):
            host = topo.host(h)
            lines.append(("  hosts         " if i == 0 else " " * 16) + f"{h} at {host.address}"
                         + (f" (binds {host.bind})" if host.bind else "")
                         + f": {', '.join(topo.processes_on(h)) or 'no processes'}"
                         + (f"; the lead, at {topo.lead_endpoint}" if h == topo.lead_host() else ""))
    if topo.tuning.cpu_dma_latency_us is not None:
        lines.append(f"  tuning        hold cpu_dma_latency at {topo.tuning.cpu_dma_latency_us} us")
    if topo.security.curve:
        allow = f", also admits {', '.join(topo.security.allow)}" if topo.security.allow else ""
        lines.append(f"  security      CURVE on, keys in {topo.security.keys}{allow}")
    return "\n".join(lines)
