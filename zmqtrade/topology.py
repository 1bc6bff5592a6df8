"""The topology: one YAML file that describes a whole stack, validated before anything starts.

A file is parsed with ``yaml.safe_load`` and converted into frozen dataclasses by a small
schema-driven converter, so every problem in a file is found in one pass and reported as one
line naming the file, the key path and the fix. Graph checks (one binder per endpoint, unique
ports, published symbols) run after the per-key checks.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import ipaddress
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping

import yaml

COMPONENTS = ("gateway", "orderbook", "ordermanager")
PRICE_PATH = ("gateway", "orderbook")
"""The processes a tick crosses before the book; ``placement: auto`` keeps them on one CPU."""
"""Process names taken by the fixed components; strategies may not reuse them."""
BIND_KEYS = ("gateway.prices", "gateway.news", "orderbook.doorbell", "ordermanager.endpoint", "control")
"""Every endpoint a process binds, by topology key (connecters find them here)."""
BINDERS = {"gateway.prices": "gateway", "gateway.news": "gateway", "orderbook.doorbell": "orderbook",
           "ordermanager.endpoint": "ordermanager"}
"""Which process binds each data endpoint (``control`` is each host's launcher's)."""
LOCAL = "local"
"""The host a process runs on when the topology names none: the machine that starts it."""
HOST_PLACEHOLDER = "{host}"
"""In a tcp endpoint, the address of the binder's host (``hosts``), so one file serves all hosts."""

_ENDPOINT_RE = re.compile(r"^(tcp://(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:.]+\]|\{host\}):(?P<port>\*|\d{1,5})"
                          r"|ipc://(?P<path>.+))$")
_ADDRESS_RE = re.compile(r"^([A-Za-z0-9.\-]+|\[?[0-9a-fA-F:.]+\]?)$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9._\-]{1,16}$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,31}$")
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
IPC_PATH_MAX = 107
"""Bytes of a Unix socket path (sun_path is 108, with its terminating NUL)."""


class TopologyError(Exception):
    """A topology that must not be started; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


# --------------------------------------------------------------------------- checks
def _positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a finite number > 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "must be a finite number >= 0"


def _batch(v: int) -> str | None:
    from zmqtrade.wire import MAX_BATCH

    return None if 1 <= v <= MAX_BATCH else f"must be 1..{MAX_BATCH} ticks per message (1 turns batching off)"


def _count(v: int) -> str | None:
    return None if v >= 0 else "must be an integer >= 0"


def _hwm(v: int) -> str | None:
    return None if 0 <= v <= INT32_MAX else f"must be 0..{INT32_MAX} messages (a ZeroMQ socket option is a C int)"


def _cpu(v: int) -> str | None:
    return None if 0 <= v < 4096 else "CPU numbers are 0 and up, as os.sched_getaffinity lists them"


def _pm_qos(v: int) -> str | None:
    return None if 0 <= v <= 2_000_000_000 else "must be 0..2000000000 microseconds (0: no deep sleep)"


def _endpoint(v: str) -> str | None:
    m = _ENDPOINT_RE.match(v)
    if not m:
        return (f"{v!r} is not an endpoint; write tcp://HOST:PORT (PORT may be * for one the OS "
                f"picks) or ipc://PATH")
    port = m.group("port")
    if port and port != "*" and not 0 < int(port) < 65536:
        return f"port {port} is out of range; use 1-65535 or *"
    path = m.group("path")
    if path and len(os.fsencode(path)) > IPC_PATH_MAX:
        return (f"the ipc path is {len(os.fsencode(path))} bytes; the kernel takes at most {IPC_PATH_MAX} "
                f"(a Unix socket address): use a shorter path, or tcp://127.0.0.1:*")
    return None


def _symbol(v: str) -> str | None:
    return None if _SYMBOL_RE.match(v) else "symbols are 1-16 characters of A-Z, a-z, 0-9, '.', '_' or '-'"


def _name(v: str) -> str | None:
    return None if _NAME_RE.match(v) else "names start with a letter and use letters, digits, '_' or '-' (32 at most)"


def _address(v: str) -> str | None:
    return None if _ADDRESS_RE.match(v) else "must be an IP address or a DNS name (e.g. 10.0.0.2 or box-b.lan)"


def _bind_interface(v: str) -> str | None:
    return None if v == "*" or _ADDRESS_RE.match(v) else "must be *, an IP address of this host, or an interface name"


def _key(name: str, *, check: Any = None, help: str = "", yaml_key: str | None = None) -> dict[str, Any]:
    return {"check": check, "help": help, "yaml_key": yaml_key or name}


# --------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Restart:
    """What the launcher does when a process dies (or stops heartbeating) before the run ends.

    ``on-failure`` restarts it after ``backoff_s``, doubling per restart up to ``max_backoff_s``;
    more than ``max_restarts`` restarts within ``window_s`` seconds fails the run instead.
    """

    policy: Literal["never", "on-failure"] = "on-failure"
    backoff_s: float = field(default=0.2, metadata=_key("backoff_s", check=_non_negative))
    max_backoff_s: float = field(default=5.0, metadata=_key("max_backoff_s", check=_non_negative))
    max_restarts: int = field(default=5, metadata=_key("max_restarts", check=_count))
    window_s: float = field(default=60.0, metadata=_key("window_s", check=_positive))


@dataclass(frozen=True)
class Supervision:
    """Liveness: every process heartbeats on the control socket every ``heartbeat_s``; one
    silent for ``liveness_s`` (hung, SIGSTOPped) is reported and handled by its restart policy."""

    heartbeat_s: float = field(default=0.2, metadata=_key("heartbeat_s", check=_positive))
    liveness_s: float = field(default=2.0, metadata=_key("liveness_s", check=_positive))
    ready_timeout_s: float = field(default=30.0, metadata=_key("ready_timeout_s", check=_positive))
    """A starting process must be ready this long after it starts, or after its last report that
    its start advanced (an order manager replaying a journal reports every 0.5 s)."""
    unanswered_s: float = field(default=10.0, metadata=_key("unanswered_s", check=_positive))
    """A strategy with orders in flight and no answer for this long, while the order manager is
    up, is cut off: reported at once, and the run fails."""
    restart: Restart = Restart()


@dataclass(frozen=True)
class Fault:
    """A fault the launcher injects during a run, for reliability experiments and tests."""

    process: str = field(metadata=_key("process", check=_name, help="the process to hit"))
    at_s: float = field(metadata=_key("at_s", check=_non_negative, help="seconds after streaming starts"))
    action: Literal["kill", "pause"] = field(metadata=_key("action", help="kill (SIGKILL) or pause (SIGSTOP)"))
    for_s: float = field(default=1.0, metadata=_key("for_s", check=_positive))
    """How long a pause lasts before SIGCONT."""


@dataclass(frozen=True)
class Security:
    """Opt-in CURVE: encryption, and servers that accept only the client keys listed."""

    curve: bool = False
    keys: str | None = None
    """Directory made by ``zmqtrade keys`` (relative paths start at the topology's folder)."""
    allow: tuple[str, ...] = field(default=(), metadata=_key("allow", check=_name))
    """Names of further client key pairs in ``keys`` that the servers accept (outside tools)."""


@dataclass(frozen=True)
class Host:
    """A machine of the stack. ``address`` is what the other hosts connect to; ``bind`` is the
    interface the host's binders listen on, when that differs (``*``, behind NAT, a DNS name)."""

    address: str = field(metadata=_key("address", check=_address, help="the address other hosts reach it at"))
    bind: str | None = field(default=None, metadata=_key("bind", check=_bind_interface))


LOCAL_HOST = Host("127.0.0.1")


@dataclass(frozen=True)
class Feed:
    """Where price ticks come from: a seeded random walk (GBM) or a CSV replay."""

    kind: Literal["random_walk", "csv"] = "random_walk"
    seed: int = 1
    volatility: float = field(default=0.0005, metadata=_key("volatility", check=_non_negative))
    start_price: float = field(default=100.0, metadata=_key("start_price", check=_positive))
    spread_bps: float = field(default=2.0, metadata=_key("spread_bps", check=_non_negative))
    path: str | None = None
    pace: Literal["rate", "timestamps"] = "rate"
    speed: float = field(default=1.0, metadata=_key("speed", check=_positive))
    loop: bool = True


@dataclass(frozen=True)
class Gateway:
    prices: str = field(metadata=_key("prices", check=_endpoint, help="the endpoint the price PUB binds"))
    news: str = field(metadata=_key("news", check=_endpoint, help="the endpoint the news PUB binds"))
    rate: float = field(default=1000.0, metadata=_key("rate", check=_positive))
    news_rate: float = field(default=10.0, metadata=_key("news_rate", check=_positive))
    feed: Feed = Feed()
    hwm: int = field(default=100_000, metadata=_key("hwm", check=_hwm))
    lossless: bool = False
    batch: int = field(default=256, metadata=_key("batch", check=_batch))
    batch_window_us: float = field(default=250.0, metadata=_key("batch_window_us", check=_non_negative))
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=_key("cpus", check=_cpu))
    """The CPUs the process (and its ZeroMQ I/O thread) may run on; None: the ``placement`` rule."""


@dataclass(frozen=True)
class OrderBook:
    doorbell: str = field(metadata=_key("doorbell", check=_endpoint, help="the endpoint the doorbell PUB binds"))
    hwm: int = field(default=100_000, metadata=_key("hwm", check=_hwm))
    conflate: bool = True
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=_key("cpus", check=_cpu))


@dataclass(frozen=True)
class Risk:
    max_order_qty: int = field(default=1_000, metadata=_key("max_order_qty", check=_positive))
    max_position: int = field(default=10_000, metadata=_key("max_position", check=_positive))
    max_orders_per_s: float = field(default=50_000.0, metadata=_key("max_orders_per_s", check=_positive))


@dataclass(frozen=True)
class Fees:
    """What a fill costs, charged by the order manager's ledger (:mod:`zmqtrade.ledger`)."""

    per_share: float = field(default=0.0, metadata=_key("per_share", check=_non_negative))
    notional_bps: float = field(default=0.0, metadata=_key("notional_bps", check=_non_negative))
    """Basis points of the fill's notional (qty x price): 1 is 0.01 %."""

    def of(self, qty: int, price: float) -> float:
        """The fee of one fill."""
        return qty * self.per_share + qty * price * self.notional_bps * 1e-4


RESEND_SPAN = 16
"""A strategy's re-send wait doubles up to this many times ``order_timeout_s`` (strategy.py)."""


@dataclass(frozen=True)
class OrderManager:
    endpoint: str = field(metadata=_key("endpoint", check=_endpoint, help="the endpoint the order ROUTER binds"))
    risk: Risk = Risk()
    fees: Fees = Fees()
    replies_kept_s: float = field(default=10.0, metadata=_key("replies_kept_s", check=_positive))
    """How long an answer is kept to replay to a re-send: at least a strategy's longest re-send
    interval (16 x ``order_timeout_s``), checked."""
    replies_kept: int = field(default=131_072, metadata=_key("replies_kept", check=_positive))
    """Answers kept at most (the filter's memory bound, ~300 bytes each): past it the oldest go
    early (``replies_forgotten_early``)."""
    fsync: Literal["order", "batch", "off"] = "off"
    """When the journal is flushed to disk: never (the default: each record is in the kernel
    before its ack, so an acked order survives a killed process, any process, but not a power
    cut), once per group commit, or before each order's ack (both before any of their acks)."""
    checkpoint_every_s: float = field(default=1.0, metadata=_key("checkpoint_every_s", check=_non_negative))
    """How often the state a restart rebuilds is checkpointed while fills come (0: never, and a
    restart replays the whole journal)."""
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=_key("cpus", check=_cpu))


@dataclass(frozen=True)
class StrategySpec:
    symbols: tuple[str, ...] = field(metadata=_key("symbols", check=_symbol, help="the symbols it trades"))
    cls: str = field(default="", metadata=_key("cls", yaml_key="class",
                                               help="a built-in name (ma_news, rsi, every_quote) or module:Class"))
    external: bool = False
    """A client the launcher does not start (any language, any machine): the order manager
    accepts orders in its name (under CURVE, from its listed key) and the stack waits for it
    nowhere. It uses the ZeroMQ doorbell, never the pipe."""
    qty: int = field(default=10, metadata=_key("qty", check=_positive))
    params: Mapping[str, Any] = field(default_factory=dict)
    conflate: bool = True
    doorbell: Literal["pipe", "zmq"] = "pipe"
    """How the orderbook wakes it: a named pipe (one wake-up, same host), or the ZeroMQ doorbell stream."""
    order_timeout_s: float = field(default=0.5, metadata=_key("order_timeout_s", check=_positive))
    """An order unanswered this long is sent again, same client order id, until answered."""
    book_max_age_s: float = field(default=1.0, metadata=_key("book_max_age_s", check=_positive))
    """No trading on a book whose writer is dead or has not heartbeaten for this long."""
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=_key("cpus", check=_cpu))
    name: str = ""


@dataclass(frozen=True)
class Tuning:
    """Host settings the launcher holds for the length of a run (and releases after)."""

    cpu_dma_latency_us: int | None = field(default=None, metadata=_key("cpu_dma_latency_us", check=_pm_qos))
    io_threads: Literal["normal", "batch"] = "normal"
    """How each process's libzmq I/O thread is scheduled: ``normal``, or ``batch`` (SCHED_BATCH:
    woken, it does not preempt the thread that woke it). Batch made the lean chain faster when
    unpinned; with ``placement: auto`` it measured the same as normal (:mod:`zmqtrade.placement`)."""


@dataclass(frozen=True)
class Report:
    sample_interval_s: float = field(default=0.5, metadata=_key("sample_interval_s", check=_positive))


@dataclass(frozen=True)
class Topology:
    symbols: tuple[str, ...] = field(metadata=_key("symbols", check=_symbol, help="the symbols the gateway publishes"))
    gateway: Gateway = field(metadata=_key("gateway", help="the gateway section"))
    orderbook: OrderBook = field(metadata=_key("orderbook", help="the orderbook section"))
    ordermanager: OrderManager = field(metadata=_key("ordermanager", help="the ordermanager section"))
    strategies: Mapping[str, StrategySpec] = field(default_factory=dict)
    name: str = field(default="", metadata=_key("name", check=_name))
    duration_s: float = field(default=10.0, metadata=_key("duration_s", check=_non_negative))
    control: str = field(default="tcp://127.0.0.1:*", metadata=_key("control", check=_endpoint))
    report: Report = Report()
    tuning: Tuning = Tuning()
    placement: Literal["auto", "none"] = "auto"
    """Where processes without ``cpus`` run: ``auto`` keeps the price path (gateway, orderbook)
    on one CPU and the order path (strategies, order manager) on the others, so each path's
    wake-ups stay on one core; ``none`` leaves it to the kernel (:meth:`cpus_of`)."""
    supervision: Supervision = Supervision()
    faults: tuple[Fault, ...] = ()
    security: Security = Security()
    hosts: Mapping[str, Host] = field(default_factory=dict)
    """Machines by name (``host: NAME`` in a process's section places it); ``local`` is implicit."""
    lead: str | None = None
    """The host whose launcher coordinates the others and writes the combined report (default:
    the gateway's)."""
    lead_endpoint: str = field(default="tcp://{host}:5549", metadata=_key("lead_endpoint", check=_endpoint))
    """Where the lead launcher listens for the other hosts' launchers (a fixed port: they must find it)."""
    source: str = ""

    # ------------------------------------------------------------------ derived views
    def process_names(self) -> list[str]:
        """The processes the launcher starts (an ``external`` strategy is not one)."""
        return [*COMPONENTS, *self.strategy_processes()]

    def strategy_processes(self) -> list[str]:
        return [n for n, s in self.strategies.items() if not s.external]

    def kind_of(self, name: str) -> str:
        return name if name in COMPONENTS else "strategy"

    def path_of(self, name: str) -> str:
        """The key path of a process's section: ``gateway`` or ``strategies.<name>``."""
        return name if name in COMPONENTS else f"strategies.{name}"

    def section(self, name: str) -> Any:
        """A process's own section (a component's, or its strategy spec)."""
        return getattr(self, name) if name in COMPONENTS else self.strategies[name]

    def restart_policy(self, name: str) -> Restart:
        return self.section(name).restart or self.supervision.restart

    def cpus_of(self, name: str, available: Iterable[int]) -> frozenset[int] | None:
        """The CPUs process ``name`` is pinned to, of the ``available`` ones of its host (what the
        process may use when it starts), or None to leave it unpinned. Its own ``cpus`` first; else,
        under ``placement: auto`` with two CPUs or more, the price path gets the first and the order
        path the rest: a hop inside a path then wakes a thread on the same core, which on the
        2-vCPU machine this was measured on halved the lean chain's p50 at 10k ticks/s."""
        own = self.section(name).cpus
        if own:
            return frozenset(own)
        cpus = sorted(available)
        if self.placement != "auto" or len(cpus) < 2:
            return None
        return frozenset(cpus[:1]) if name in PRICE_PATH else frozenset(cpus[1:])

    # ------------------------------------------------------------------ placement
    def host_of(self, name: str) -> str:
        return self.section(name).host

    def host(self, name: str) -> Host:
        """The machine called ``name`` (``local`` is this machine unless ``hosts`` says otherwise)."""
        return self.hosts.get(name) or LOCAL_HOST

    def hosts_used(self) -> list[str]:
        """The hosts that run a process, and the lead's, the lead's first."""
        return list(dict.fromkeys([self.lead_host(), *(self.host_of(n) for n in self.process_names())]))

    def lead_host(self) -> str:
        return self.lead or self.gateway.host

    def processes_on(self, host: str) -> list[str]:
        return [n for n in self.process_names() if self.host_of(n) == host]

    def connecters(self) -> dict[str, tuple[str, ...]]:
        """Who connects to each data endpoint (an order manager away from the book reads prices itself)."""
        strategies = tuple(self.strategies)
        own_book = ("ordermanager",) if self.ordermanager.host != self.orderbook.host else ()
        return {"gateway.prices": ("orderbook", *own_book), "gateway.news": strategies,
                "orderbook.doorbell": strategies, "ordermanager.endpoint": strategies}

    def _endpoint(self, key: str) -> tuple[str, Host]:
        """A bound endpoint (a ``binds()`` key or ``lead_endpoint``) and its binder's host."""
        if key == "lead_endpoint":
            return self.lead_endpoint, self.host(self.lead_host())
        return self.binds()[key], self.host(self.host_of(BINDERS[key]))

    def _at_bind_interface(self, key: str) -> Host | None:
        """The binder's host, if the endpoint at ``key`` is at that host's address and the host
        binds another interface (``bind``); None when the endpoint binds as written."""
        ep, host = self._endpoint(key)
        m = _ENDPOINT_RE.match(ep)
        at_address = m is not None and (m.group("host") or "").strip("[]") == host.address.strip("[]")
        return host if host.bind and at_address else None

    def bind_endpoint(self, key: str) -> str:
        """The endpoint as its binder binds it: at the host's address, its ``bind`` interface."""
        host = self._at_bind_interface(key)
        ep = self._endpoint(key)[0]
        return f"tcp://{host.bind}:{ep.rsplit(':', 1)[1]}" if host else ep

    def connect_endpoint(self, key: str, bound: str) -> str:
        """What a connecter uses for an endpoint its binder reports as ``bound`` (LAST_ENDPOINT):
        the port the OS picked, at the address the other hosts know (not ``0.0.0.0``)."""
        host = self._at_bind_interface(key)
        return f"tcp://{host.address}:{bound.rsplit(':', 1)[1]}" if host else bound

    def binds(self) -> dict[str, str]:
        """Every endpoint a process binds, keyed by its topology path (BIND_KEYS)."""
        def get(key: str) -> str:
            obj: Any = self
            for part in key.split("."):
                obj = getattr(obj, part)
            return obj
        return {key: get(key) for key in BIND_KEYS}

    def replace_endpoints(self, resolved: Mapping[str, str]) -> "Topology":
        """A copy with bound endpoints replaced (ports picked by the OS filled in)."""
        sections = {"gateway": self.gateway, "orderbook": self.orderbook, "ordermanager": self.ordermanager}
        top: dict[str, Any] = {}
        for path, ep in resolved.items():
            if path == "control":
                top["control"] = ep
                continue
            section, key = path.split(".", 1)
            sections[section] = dataclasses.replace(sections[section], **{key: ep})
            top[section] = sections[section]
        return dataclasses.replace(self, **top)

    def to_dict(self) -> dict[str, Any]:
        """The plain form, loadable again by :func:`load` (YAML is a superset of JSON)."""
        return _to_plain(self)


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            if f.name == "source" or (f.name == "name" and type(obj) is StrategySpec):
                continue  # derived when loading (the file's path; the strategy's mapping key)
            value = getattr(obj, f.name)
            if value == () or (value is None and f.default is None):
                continue  # an empty list or an unset option: its default (the schema needs lists non-empty)
            out[f.metadata.get("yaml_key", f.name)] = _to_plain(value)
        return out
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- conversion
def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "a list"
    if origin is collections.abc.Mapping:
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


class _Converter:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, msg: str) -> None:
        self.errors.append(f"{path or '<top>'}: {msg}")

    def convert(self, tp: Any, value: Any, path: str, check: Any = None) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.convert(args[0], value, path, check)
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        if origin is Literal:
            if value not in typing.get_args(tp):
                self.fail(path, f"got {value!r}; use {_type_name(tp)}")
                return None
            return value
        if origin is tuple:
            if not isinstance(value, list) or not value:
                self.fail(path, f"expected a non-empty list, got {_show(value)}")
                return None
            item_tp = typing.get_args(tp)[0]
            items = [self.convert(item_tp, v, f"{path}[{i}]", check) for i, v in enumerate(value)]
            return tuple(v for v in items if v is not None)  # a failed item is left out, as in a mapping
        if origin is collections.abc.Mapping:
            if not isinstance(value, dict):
                self.fail(path, f"expected a mapping, got {_show(value)}")
                return None
            _, val_tp = typing.get_args(tp)
            if val_tp is Any:
                return types.MappingProxyType(dict(value))
            converted = {str(k): self.convert(val_tp, v, f"{path}.{k}") for k, v in value.items()}
            # an entry that failed is left out (its error is recorded) so later checks see only whole ones
            return types.MappingProxyType({k: v for k, v in converted.items() if v is not None})
        return self.scalar(tp, value, path, check)

    def scalar(self, tp: Any, value: Any, path: str, check: Any) -> Any:
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
        }[tp]
        if not ok:
            self.fail(path, f"expected {_type_name(tp)}, got {_show(value)}")
            return None
        if tp is int and not INT64_MIN <= value <= INT64_MAX:
            self.fail(path, f"{value} does not fit in 64 bits (the wire's integers); use -2^63..2^63-1")
            return None
        if tp is float:
            value = float(value)
        if check is not None:
            problem = check(value)
            if problem:
                self.fail(path, problem)
                return None
        return value

    def dataclass(self, cls: Any, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {_show(value)}")
            return None
        hints = typing.get_type_hints(cls)
        fields = [f for f in dataclasses.fields(cls) if f.name not in ("source", "name") or "yaml_key" in f.metadata]
        by_key = {f.metadata.get("yaml_key", f.name): f for f in fields}
        kwargs: dict[str, Any] = {}
        missing_required = False
        for key in value:
            if key not in by_key:
                close = difflib.get_close_matches(str(key), list(by_key), n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(by_key))}"
                self.fail(_join(path, key), f"unknown key; {hint}")
        for key, f in by_key.items():
            sub = _join(path, key)
            if key not in value:
                if _required(f):
                    helptext = f.metadata.get("help", "")
                    self.fail(sub, f"missing; add it ({helptext})" if helptext else "missing; add it")
                continue
            before = len(self.errors)
            converted = self.convert(hints[f.name], value[key], sub, f.metadata.get("check"))
            if converted is not None or len(self.errors) == before:
                kwargs[f.name] = converted
            elif _required(f):
                missing_required = True
        # A bad optional key falls back to its default (its error is already recorded), so the
        # graph checks still run and one pass reports every problem in the file.
        if missing_required or any(_required(f) and f.name not in kwargs for f in by_key.values()):
            return None
        return cls(**kwargs)


def _name_from(stem: str) -> str:
    """A valid topology name from a file name (it ends up in segment and directory names)."""
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", stem)[:32]
    return name if name[:1].isalpha() else f"t{name}"[:32]


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


# --------------------------------------------------------------------------- placement
def launcher_key(host: str) -> str:
    """The CURVE key pair of a host's launcher, in a multi-host stack with security.curve."""
    return f"launcher-{host}"


def key_names(topo: Topology) -> list[str]:
    """Every key pair the stack's CURVE needs: each process's, each external strategy's (whose
    secret key its client holds) and, across hosts, each launcher's."""
    names = [*COMPONENTS, *topo.strategies]
    if len(topo.hosts_used()) > 1:
        names += [launcher_key(h) for h in topo.hosts_used()]
    return names


def _place(topo: Topology, conv: _Converter) -> Topology:
    """Check every ``host``, then write each binder's host address for ``{host}`` in its endpoints.

    The per-host book, ipc and loopback endpoints that cannot cross hosts, and the lead are
    checked in :func:`_placement_checks`, once the endpoints are final."""
    known = sorted({*topo.hosts, LOCAL})
    for name in topo.process_names():
        host = topo.host_of(name)
        if host not in topo.hosts and host != LOCAL:
            conv.fail(f"{topo.path_of(name)}.host", f"no host {host!r}; add it to hosts (NAME: ADDRESS) or use one of {', '.join(known)}")
    if topo.lead is not None and topo.lead not in topo.hosts and topo.lead != LOCAL:
        conv.fail("lead", f"no host {topo.lead!r}; one of {', '.join(known)}")
    for name, host in topo.hosts.items():
        if _name(name):
            conv.fail(f"hosts.{name}", _name(name) or "")
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
        address = topo.host(topo.host_of(BINDERS[key])).address
        resolved[key] = ep.replace(HOST_PLACEHOLDER, f"[{address}]" if ":" in address else address)
    if HOST_PLACEHOLDER in topo.lead_endpoint:
        address = topo.host(topo.lead_host()).address
        topo = dataclasses.replace(topo, lead_endpoint=topo.lead_endpoint.replace(
            HOST_PLACEHOLDER, f"[{address}]" if ":" in address else address))
    return topo.replace_endpoints(resolved) if resolved else topo


def _available_cpus() -> set[int]:
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


def _placement_checks(topo: Topology, conv: _Converter) -> None:
    """What cannot work across hosts: a book read from another host, a file socket or a
    loopback address reached from another host, a lead that other hosts cannot find."""
    book_host = topo.host_of("orderbook")
    for name in topo.strategy_processes():
        if topo.host_of(name) != book_host:
            conv.fail(f"strategies.{name}.host", f"{topo.host_of(name)!r} has no orderbook: the book is shared "
                      f"memory on the orderbook's host ({book_host!r}); run {name} there (host: {book_host}) "
                      "or move the orderbook")
    binds = topo.binds()
    for key, binder_host, away in _crossings(topo):
        m = _ENDPOINT_RE.match(binds[key])
        where = f"{BINDERS[key]} on {binder_host!r}, {away[0]} on {topo.host_of(away[0])!r}"
        if m and m.group("path"):
            conv.fail(key, f"{binds[key]} is a file on one host and cannot cross hosts ({where}); "
                      f"use tcp://{HOST_PLACEHOLDER}:PORT")
        elif m and m.group("host") and _unspecified(m.group("host")):
            conv.fail(key, f"{binds[key]} names no address another host can connect to ({where}); use "
                      f"tcp://{HOST_PLACEHOLDER}:PORT, and hosts.{binder_host}.bind: '*' to bind every interface")
        elif m and m.group("host") and is_loopback(m.group("host")) \
                and not all(is_loopback(topo.host(topo.host_of(c)).address) for c in away):
            conv.fail(key, f"{binds[key]} is loopback, reachable only on its own host ({where}); "
                      f"use tcp://{HOST_PLACEHOLDER}:PORT")
    if len(topo.hosts_used()) > 1:
        m = _ENDPOINT_RE.match(topo.lead_endpoint)
        if not m or not m.group("host"):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint}: the launchers of other hosts reach the lead over "
                      f"tcp; use tcp://{HOST_PLACEHOLDER}:PORT")
        elif _unspecified(m.group("host")):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint} names no address the other launchers can connect "
                      f"to; use tcp://{HOST_PLACEHOLDER}:PORT")
        elif m.group("port") == "*":
            conv.fail("lead_endpoint", f"{topo.lead_endpoint}: the other hosts' launchers must know the port "
                      "before the lead starts; give a fixed one")
        elif is_loopback(m.group("host")) and not all(is_loopback(topo.host(h).address) for h in topo.hosts_used()):
            conv.fail("lead_endpoint", f"{topo.lead_endpoint} is loopback; use tcp://{HOST_PLACEHOLDER}:PORT")


def _crossings(topo: Topology) -> Iterator[tuple[str, str, list[str]]]:
    """(data endpoint key, its binder's host, the connecters on other hosts), where there are any."""
    for key, clients in topo.connecters().items():
        binder_host = topo.host_of(BINDERS[key])
        away = [c for c in clients if topo.host_of(c) != binder_host]
        if away:
            yield key, binder_host, away


def cross_host(topo: Topology) -> dict[str, str]:
    """Data endpoints some connecter reaches from another host, with the hosts it joins."""
    return {key: f"{binder_host} -> {', '.join(sorted({topo.host_of(c) for c in away}))}"
            for key, binder_host, away in _crossings(topo)}


# --------------------------------------------------------------------------- graph checks
def _graph_checks(topo: Topology, conv: _Converter, base_dir: Path, host: str | None, check_files: bool) -> None:
    seen_ep: dict[str, str] = {}
    seen_port: dict[tuple[str, str], str] = {}  # (machine, port): ports are per machine, control on each
    machines = {h: topo.host(h).address for h in topo.hosts_used()}
    lead = [("lead_endpoint", topo.lead_endpoint)] if len(machines) > 1 else []
    for path, ep in [*topo.binds().items(), *lead]:
        if ep in seen_ep and not ep.endswith(":*"):
            conv.fail(path, f"{ep} is bound by {seen_ep[ep]} too; two binders cannot share an endpoint, give each its own")
            continue
        seen_ep[ep] = path
        m = _ENDPOINT_RE.match(ep)
        if not (m and m.group("port") and m.group("port") != "*"):
            continue
        port = str(int(m.group("port")))  # 05555 is 5555
        if path == "control":
            on = set(machines.values())
        elif path == "lead_endpoint":
            on = {machines[topo.lead_host()]}
        else:
            on = {topo.host(topo.host_of(BINDERS[path])).address}
        for machine in sorted(on):
            if (machine, port) in seen_port:
                conv.fail(path, f"port {port} is already used by {seen_port[machine, port]}"
                          + (f" on {machine}" if len(machines) > 1 else "")
                          + "; pick a free port (or * for one the OS picks)")
                break
        for machine in on:
            seen_port[machine, port] = path
    _placement_checks(topo, conv)
    published = set(topo.symbols)
    if len(published) != len(topo.symbols):
        conv.fail("symbols", "lists a symbol twice; list each once")
    for name, spec in topo.strategies.items():
        if name in COMPONENTS:
            conv.fail(f"strategies.{name}", f"{name!r} is a component's name; call the strategy something else")
        elif _name(name):
            conv.fail(f"strategies.{name}", _name(name) or "")
        for i, sym in enumerate(spec.symbols):
            if sym not in published:
                conv.fail(f"strategies.{name}.symbols[{i}]",
                          f"{sym!r} is not published by the gateway; add it to symbols or remove it here")
        if spec.external:
            for key, given in (("class", spec.cls), ("params", spec.params)):
                if given:
                    conv.fail(f"strategies.{name}.{key}", f"an external strategy runs no code of ours, so it takes no "
                              f"{key}; remove it, or external: false to have the launcher start {name}")
        elif not spec.cls:
            conv.fail(f"strategies.{name}.class", "missing; name a built-in (ma_news, rsi, every_quote) or "
                      "module:Class, or say external: true for a client the launcher does not start")
        else:
            _check_strategy_class(spec, f"strategies.{name}", conv, base_dir)
    names = topo.process_names()
    here = _available_cpus()
    for name in names:
        cpus = topo.section(name).cpus
        if cpus and host in (None, topo.host_of(name)):  # another host's CPUs are that host's to check
            missing = sorted({c for c in cpus if c is not None} - here)  # a bad entry is reported already
            if missing:
                conv.fail(f"{topo.path_of(name)}.cpus", f"CPU {', '.join(map(str, missing))} is not available here "
                          f"(this machine lets the stack use {', '.join(map(str, sorted(here)))}); pick from those")
    for i, fault in enumerate(topo.faults):
        if fault.process not in names:
            conv.fail(f"faults[{i}].process", f"no process {fault.process!r}; one of {', '.join(names)}")
    longest = max(topo.strategies.items(), key=lambda kv: kv[1].order_timeout_s, default=None)
    if longest and topo.ordermanager.replies_kept_s < RESEND_SPAN * longest[1].order_timeout_s:
        need = RESEND_SPAN * longest[1].order_timeout_s
        conv.fail("ordermanager.replies_kept_s", f"{topo.ordermanager.replies_kept_s:g} s is shorter than strategy "
                  f"{longest[0]}'s longest re-send interval ({RESEND_SPAN} x order_timeout_s = {need:g} s): a re-send "
                  f"of an order answered before could be refused as too old; make it at least {need:g}")
    sup = topo.supervision
    if sup.liveness_s < 2 * sup.heartbeat_s:
        conv.fail("supervision.liveness_s", f"{sup.liveness_s:g} s would call a live process hung between two "
                  f"heartbeats; make it at least 2 x heartbeat_s ({2 * sup.heartbeat_s:g} s)")
    feed = topo.gateway.feed
    if feed.kind == "csv":
        if not feed.path:
            conv.fail("gateway.feed.path", "missing; a csv feed needs path: FILE (columns timestamp,symbol,price)")
        elif not check_files or host not in (None, topo.host_of("gateway")):
            pass  # read where the gateway runs, by it
        elif not (base_dir / feed.path).is_file():
            conv.fail("gateway.feed.path", f"{feed.path!r} is not a file (relative paths start at the topology's folder)")
        else:
            from zmqtrade.feeds import FeedError, load_csv

            try:
                load_csv(base_dir / feed.path, topo.symbols)
            except FeedError as exc:
                conv.fail("gateway.feed.path", f"{exc}; fix the file or point at another")
    if check_files:
        _check_security(topo, conv, host)


def _check_security(topo: Topology, conv: _Converter, host: str | None = None) -> None:
    """With CURVE on, every key file a process will load must be there before anything starts
    (a process that found none would fail alone, mid-start). ``keys`` is already absolute.

    Checked for one ``host`` of a multi-host stack, only its own processes' (and launcher's)
    secret keys must be there: every other pair needs only its public half on this machine."""
    sec = topo.security
    if not sec.curve:
        return
    make = "python -m zmqtrade keys"
    if not sec.keys:
        conv.fail("security.keys", f"missing; curve needs keys: DIR, a directory with a key pair per process "
                  f"(run {make} DIR --topology {topo.source}, then set keys: DIR)")
        return
    keys = Path(sec.keys)
    if not keys.is_dir():
        conv.fail("security.keys", f"{keys} is not a directory; run {make} {keys} --topology {topo.source}")
        return
    from zmq.auth import load_certificate

    def problem(path: Path, secret: bool) -> str | None:
        if not path.is_file():
            return "missing"
        try:
            _, secret_key = load_certificate(path)
        except (OSError, ValueError) as exc:
            return f"unreadable ({exc})"
        return "holds no secret key" if secret and not secret_key else None

    names = key_names(topo)
    external = {n for n, s in topo.strategies.items() if s.external}  # their clients hold the secret keys
    mine = set(names) - external if host is None else {*topo.processes_on(host), launcher_key(host)}
    elsewhere = [n for n in names if n not in mine and problem(keys / f"{n}.key", False)]
    if elsewhere:
        conv.fail("security.keys", f"{keys} lacks the public key of {', '.join(elsewhere)} (their hosts, or an "
                  f"external strategy's client, hold the pairs); copy {', '.join(n + '.key' for n in elsewhere)} "
                  f"here from where the keys were made")
    absent: list[str] = []   # no file of the pair: a new pair is all it takes
    broken: list[str] = []   # half a pair, or a file that holds no key: to be replaced (--force)
    details: list[str] = []
    for name in [n for n in names if n in mine]:
        whys = [(path.name, problem(path, secret))
                for path, secret in ((keys / f"{name}.key", False), (keys / f"{name}.key_secret", True))]
        if all(why == "missing" for _, why in whys):
            absent.append(name)
        elif any(why for _, why in whys):
            broken.append(name)
            details += [f"{file} {why}" for file, why in whys if why]
    if absent and not broken:
        fix = f"--topology {topo.source}" if len(absent) == len(names) else " ".join(absent)
        conv.fail("security.keys", f"{keys} has no key pair for {', '.join(absent)}; run {make} {keys} {fix}")
    elif broken:
        bad = [n for n in names if n in absent or n in broken]
        conv.fail("security.keys", f"{keys} has no usable key pair for {', '.join(bad)} "
                  f"({'; '.join(details)}); run {make} {keys} {' '.join(bad)} --force")
    for i, name in enumerate(sec.allow):
        why = problem(keys / f"{name}.key", False)
        if why:
            force = " --force" if (keys / f"{name}.key_secret").exists() else ""
            conv.fail(f"security.allow[{i}]", f"{keys / (name + '.key')} {why}; run {make} {keys} {name}{force} "
                      f"(or drop {name!r} from allow)")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or interface: it may well reach other machines


def warnings(topo: Topology) -> list[str]:
    """Risks worth a line on stderr before a run, not a refusal: plaintext TCP beyond this host,
    and secret keys others can read."""
    out: list[str] = []
    crossing = cross_host(topo)
    for path, ep in topo.binds().items():
        m = _ENDPOINT_RE.match(ep)
        if not m or not m.group("host") or is_loopback(m.group("host")):
            continue
        if path in crossing and not topo.security.curve:
            out.append(f"{path}: {ep} crosses hosts ({crossing[path]}) in plaintext: whoever is on the network "
                       "reads (or feeds) it; turn on security.curve (README: Security)")
        elif path == "control":
            out.append(f"control: {ep} is not loopback, and the control socket is never encrypted: whoever "
                       "reaches it can stop the stack or pose as a process; bind it on 127.0.0.1")
        elif not topo.security.curve:
            out.append(f"{path}: {ep} is not loopback and security.curve is off: whoever reaches it reads (or "
                       "feeds) this socket in plaintext; bind 127.0.0.1 or turn on security.curve")
    if len(topo.hosts_used()) > 1 and not topo.security.curve \
            and not is_loopback(_ENDPOINT_RE.match(topo.lead_endpoint).group("host") or ""):
        out.append(f"lead_endpoint: {topo.lead_endpoint}: the launchers coordinate in plaintext, and whoever "
                   "reaches it can stop the stack; turn on security.curve")
    if topo.security.curve and topo.security.keys:
        for name in key_names(topo):
            secret = Path(topo.security.keys) / f"{name}.key_secret"
            try:
                mode = secret.stat().st_mode & 0o777
            except OSError:
                continue
            if mode & 0o077:
                out.append(f"security.keys: {secret} is open to other users (mode {mode:04o}); chmod 600 it")
    return out


def _check_strategy_class(spec: StrategySpec, path: str, conv: _Converter, base_dir: Path) -> None:
    from zmqtrade.strategies import StrategyLoadError, load_strategy_class

    try:
        cls = load_strategy_class(spec.cls, beside=base_dir)
    except StrategyLoadError as exc:
        conv.fail(f"{path}.class", str(exc))
        return
    unknown = 0  # unknown and like none of the class's: not a typo
    for key, problem in cls.problems(spec.params):
        conv.fail(f"{path}.params" + (f".{key}" if key else ""), problem)
        unknown += problem.startswith("unknown parameter") and "did you mean" not in problem
    if unknown and unknown == len(spec.params):  # most often: the class was changed, the old params stayed
        conv.fail(f"{path}.params", f"{spec.cls} does not take {unknown} of these; a new class needs its own "
                  f"params: --set {path}.params={{}} (or its parameters) beside --set {path}.class={spec.cls}")


# --------------------------------------------------------------------------- entry points
def parse(data: Any, source: str = "<topology>", base_dir: Path | None = None, host: str | None = None,
          check_files: bool = True) -> Topology:
    """Validate plain data (as ``yaml.safe_load`` returns it) into a :class:`Topology`.

    ``host``: validate for that host's launcher: its own secret keys only, and the CSV feed only
    if the gateway runs there. ``check_files`` False leaves key files and the CSV to the process
    that reads them (a child of a launcher that checked them already)."""
    conv = _Converter()
    base_dir = base_dir or Path.cwd()
    if not isinstance(data, dict):
        raise TopologyError(source, [f"<top>: expected a mapping of keys, got {_show(data)}"])
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
        topo = _place(topo, conv)
        topo = dataclasses.replace(
            topo,
            security=security,
            name=topo.name or _name_from(Path(source).stem),
            strategies=types.MappingProxyType(strategies),
            gateway=dataclasses.replace(topo.gateway, feed=feed),
            source=source,
        )
        _graph_checks(topo, conv, base_dir, host, check_files)
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
        from zmqtrade import overrides as ov

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
        m = _ENDPOINT_RE.match(ep)
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
        + ("" if ob.conflate else ", a doorbell slot per tick"),
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
