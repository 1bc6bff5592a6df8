"""The run manifest: what ran, where and with what, written into report.json.

A run directory's name says little and a figure without its settings says less: two runs of a
sweep differ in one key, a run on a loaded machine differs from one on an idle one. The
manifest holds the topology (name, file and its hash), every override given, the settings that
matter when runs are compared, the versions of everything on the message path and the machine
with its load when the run began, so ``compare`` can label runs by what differs between them.
"""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from zmqtrade.topology import Topology

PACKAGE_DIR = Path(__file__).resolve().parent


def build(topo: Topology, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "topology": topo.name,
        "source": topo.source,
        "source_sha256": _sha256(topo.source),
        "overrides": {k: _plain(v) for k, v in (overrides or {}).items()},
        "settings": settings(topo),
        "versions": versions(),
        "machine": machine(),
    }


def settings(topo: Topology) -> dict[str, Any]:
    """The resolved settings a comparison turns on, flat (``key: value``) so runs diff by key."""
    gw, ob, om = topo.gateway, topo.orderbook, topo.ordermanager
    out: dict[str, Any] = {
        "transport": transport(topo),
        "hosts": len(topo.hosts_used()),
        "gateway.rate": gw.rate,
        "gateway.news_rate": gw.news_rate,
        "gateway.feed": gw.feed.kind,
        "gateway.batch": gw.batch,
        "gateway.batch_window_us": gw.batch_window_us,
        "gateway.lossless": gw.lossless,
        "orderbook.conflate": ob.conflate,
        "orderbooks": len(topo.orderbooks()),
        "ordermanager.fsync": om.fsync,
        "ordermanager.fees": f"{om.fees.per_share:g}/share + {om.fees.notional_bps:g} bps",
        "security.curve": topo.security.curve,
        "placement": topo.placement,
        "strategies": len(topo.strategies),
    }
    for name, s in topo.strategies.items():
        out[f"strategies.{name}"] = (f"external {','.join(s.symbols)}" if s.external else
                                     f"{s.cls} {','.join(s.symbols)} qty {s.qty}" + ("" if s.conflate else " per-tick"))
        for key, value in sorted(s.params.items()):
            out[f"strategies.{name}.params.{key}"] = _plain(value)
    return out


def transport(topo: Topology) -> str:
    """tcp, ipc, or both, from the endpoints the stack binds."""
    kinds = sorted({ep.split("://", 1)[0] for key, ep in topo.binds().items() if key != "control"})
    return "+".join(kinds)


def versions() -> dict[str, str]:
    import msgpack
    import msgspec
    import numpy
    import zmq

    out = {"zmqtrade": _version(), "python": platform.python_version(), "pyzmq": zmq.__version__,
           "libzmq": zmq.zmq_version(), "msgpack": ".".join(map(str, msgpack.version)),
           "msgspec": msgspec.__version__, "numpy": numpy.__version__}
    commit = git_commit()
    if commit:
        out["git"] = commit
    return out


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("zmqtrade")
    except Exception:  # run from a checkout that was never installed
        return "unknown"


def git_commit() -> str | None:
    """The checkout's commit (with ``+dirty`` for uncommitted changes), when zmqtrade runs from one."""
    if not (PACKAGE_DIR.parent / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(PACKAGE_DIR.parent), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(PACKAGE_DIR.parent), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1, load5, load15 = os.getloadavg()
    return {"hostname": platform.node(), "kernel": platform.release(), "cpu_model": model,
            "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "load_at_start": [round(load1, 2), round(load5, 2), round(load15, 2)]}


def differing(manifests: list[dict[str, Any]]) -> list[str]:
    """For each run, what sets it apart from the others: its overrides and settings that differ."""
    flat = [{**m.get("settings", {}), **{f"--set {k}": v for k, v in m.get("overrides", {}).items()},
             "topology": m.get("topology")} for m in manifests]
    keys = sorted({k for f in flat for k in f})
    varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1 and not k.startswith("--set ")]
    return [" ".join(f"{k}={_shown(f.get(k))}" for k in varying) for f in flat]


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _plain(value: Any) -> Any:
    """A value as JSON holds it (tuples as lists, anything odd as its text)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
