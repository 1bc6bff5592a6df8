"""The topology's schema: one frozen dataclass per section, with each key's default, check and
help, and the derived views of a whole stack (processes, hosts, endpoints)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from zmqtrade.topology import values as v
from zmqtrade.topology.convert import to_plain

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
ORDERBOOK_PREFIX = "orderbook-"
"""Orderbook process names with ``orderbook.hosts``: ``orderbook-<host>``."""
"""The host a process runs on when the topology names none: the machine that starts it."""
HOST_PLACEHOLDER = "{host}"
"""In a tcp endpoint, the address of the binder's host (``hosts``), so one file serves all hosts."""

class TopologyError(Exception):
    """A topology that must not be started; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True)
class Restart:
    """What the launcher does when a process dies (or stops heartbeating) before the run ends.

    ``on-failure`` restarts it after ``backoff_s``, doubling per restart up to ``max_backoff_s``;
    more than ``max_restarts`` restarts within ``window_s`` seconds fails the run instead.
    """

    policy: Literal["never", "on-failure"] = "on-failure"
    backoff_s: float = field(default=0.2, metadata=v.key("backoff_s", check=v.non_negative))
    max_backoff_s: float = field(default=5.0, metadata=v.key("max_backoff_s", check=v.non_negative))
    max_restarts: int = field(default=5, metadata=v.key("max_restarts", check=v.count))
    window_s: float = field(default=60.0, metadata=v.key("window_s", check=v.positive))


@dataclass(frozen=True)
class Supervision:
    """Liveness: every process heartbeats on the control socket every ``heartbeat_s``; one
    silent for ``liveness_s`` (hung, SIGSTOPped) is reported and handled by its restart policy."""

    heartbeat_s: float = field(default=0.2, metadata=v.key("heartbeat_s", check=v.positive))
    liveness_s: float = field(default=2.0, metadata=v.key("liveness_s", check=v.positive))
    ready_timeout_s: float = field(default=30.0, metadata=v.key("ready_timeout_s", check=v.positive))
    """A starting process must be ready this long after it starts, or after its last report that
    its start advanced (an order manager replaying a journal reports every 0.5 s)."""
    unanswered_s: float = field(default=10.0, metadata=v.key("unanswered_s", check=v.positive))
    """A strategy with orders in flight and no answer for this long, while the order manager is
    up, is cut off: reported at once, and the run fails."""
    restart: Restart = Restart()


@dataclass(frozen=True)
class Fault:
    """A fault the launcher injects during a run, for reliability experiments and tests."""

    process: str = field(metadata=v.key("process", check=v.name, help="the process to hit"))
    at_s: float = field(metadata=v.key("at_s", check=v.non_negative, help="seconds after streaming starts"))
    action: Literal["kill", "pause"] = field(metadata=v.key("action", help="kill (SIGKILL) or pause (SIGSTOP)"))
    for_s: float = field(default=1.0, metadata=v.key("for_s", check=v.positive))
    """How long a pause lasts before SIGCONT."""


@dataclass(frozen=True)
class Security:
    """Opt-in CURVE: encryption, and servers that accept only the client keys listed."""

    curve: bool = False
    keys: str | None = None
    """Directory made by ``zmqtrade keys`` (relative paths start at the topology's folder)."""
    allow: tuple[str, ...] = field(default=(), metadata=v.key("allow", check=v.name))
    """Names of further client key pairs in ``keys`` that the servers accept (outside tools)."""


@dataclass(frozen=True)
class Host:
    """A machine of the stack. ``address`` is what the other hosts connect to; ``bind`` is the
    interface the host's binders listen on, when that differs (``*``, behind NAT, a DNS name)."""

    address: str = field(metadata=v.key("address", check=v.address, help="the address other hosts reach it at"))
    bind: str | None = field(default=None, metadata=v.key("bind", check=v.bind_interface))


LOCAL_HOST = Host("127.0.0.1")


@dataclass(frozen=True)
class Feed:
    """Where price ticks come from: a seeded random walk (GBM) or a CSV replay."""

    kind: Literal["random_walk", "csv"] = "random_walk"
    seed: int = 1
    volatility: float = field(default=0.0005, metadata=v.key("volatility", check=v.non_negative))
    start_price: float = field(default=100.0, metadata=v.key("start_price", check=v.positive))
    spread_bps: float = field(default=2.0, metadata=v.key("spread_bps", check=v.non_negative))
    path: str | None = None
    pace: Literal["rate", "timestamps"] = "rate"
    speed: float = field(default=1.0, metadata=v.key("speed", check=v.positive))
    loop: bool = True


@dataclass(frozen=True)
class Gateway:
    prices: str = field(metadata=v.key("prices", check=v.endpoint, help="the endpoint the price PUB binds"))
    news: str = field(metadata=v.key("news", check=v.endpoint, help="the endpoint the news PUB binds"))
    rate: float = field(default=1000.0, metadata=v.key("rate", check=v.positive))
    news_rate: float = field(default=10.0, metadata=v.key("news_rate", check=v.positive))
    feed: Feed = Feed()
    hwm: int = field(default=100_000, metadata=v.key("hwm", check=v.hwm))
    lossless: bool = False
    batch: int = field(default=256, metadata=v.key("batch", check=v.batch_size))
    batch_window_us: float = field(default=150.0, metadata=v.key("batch_window_us", check=v.non_negative))
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=v.key("cpus", check=v.cpu))
    """The CPUs the process (and its ZeroMQ I/O thread) may run on; None: the ``placement`` rule."""


@dataclass(frozen=True)
class OrderBook:
    doorbell: str = field(metadata=v.key("doorbell", check=v.endpoint, help="the endpoint the doorbell PUB binds"))
    hwm: int = field(default=100_000, metadata=v.key("hwm", check=v.hwm))
    conflate: bool = True
    restart: Restart | None = None
    host: str = LOCAL
    hosts: tuple[str, ...] | None = field(default=None, metadata=v.key("hosts", check=v.name))
    """An orderbook on each of these hosts (instead of ``host``), each writing its host's book, so
    strategies on several hosts each read a book of their own host. They are named
    ``orderbook-<host>``."""
    cpus: tuple[int, ...] | None = field(default=None, metadata=v.key("cpus", check=v.cpu))


@dataclass(frozen=True)
class Risk:
    max_order_qty: int = field(default=1_000, metadata=v.key("max_order_qty", check=v.positive))
    max_position: int = field(default=10_000, metadata=v.key("max_position", check=v.positive))
    max_orders_per_s: float = field(default=50_000.0, metadata=v.key("max_orders_per_s", check=v.positive))


@dataclass(frozen=True)
class Fees:
    """What a fill costs, charged by the order manager's ledger (:mod:`zmqtrade.ledger`)."""

    per_share: float = field(default=0.0, metadata=v.key("per_share", check=v.non_negative))
    notional_bps: float = field(default=0.0, metadata=v.key("notional_bps", check=v.non_negative))
    """Basis points of the fill's notional (qty x price): 1 is 0.01 %."""

    def of(self, qty: int, price: float) -> float:
        """The fee of one fill."""
        return qty * self.per_share + qty * price * self.notional_bps * 1e-4


RESEND_SPAN = 16
"""A strategy's re-send wait doubles up to this many times ``order_timeout_s`` (strategy.py)."""


@dataclass(frozen=True)
class OrderManager:
    endpoint: str = field(metadata=v.key("endpoint", check=v.endpoint, help="the endpoint the order ROUTER binds"))
    risk: Risk = Risk()
    fees: Fees = Fees()
    replies_kept_s: float = field(default=10.0, metadata=v.key("replies_kept_s", check=v.positive))
    """How long an answer is kept to replay to a re-send: at least a strategy's longest re-send
    interval (16 x ``order_timeout_s``), checked."""
    replies_kept: int = field(default=131_072, metadata=v.key("replies_kept", check=v.positive))
    """Answers kept at most (the filter's memory bound, ~200 bytes each): past it the oldest go
    early (``replies_forgotten_early``)."""
    fsync: Literal["order", "batch", "off"] = "off"
    """When the journal is flushed to disk: never (the default: each record is in the kernel
    before its ack, so an acked order survives a killed process, any process, but not a power
    cut), once per group commit, or before each order's ack (both before any of their acks)."""
    checkpoint_every_s: float = field(default=1.0, metadata=v.key("checkpoint_every_s", check=v.non_negative))
    """How often the state a restart rebuilds is checkpointed while fills come (0: never, and a
    restart replays the whole journal)."""
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=v.key("cpus", check=v.cpu))


@dataclass(frozen=True)
class StrategySpec:
    symbols: tuple[str, ...] = field(metadata=v.key("symbols", check=v.symbol, help="the symbols it trades"))
    cls: str = field(default="", metadata=v.key("cls", yaml_key="class",
                                               help="a built-in name (ma_news, rsi, every_quote) or module:Class"))
    external: bool = False
    """A client the launcher does not start (any language, any machine): the order manager
    accepts orders in its name (under CURVE, from its listed key) and the stack waits for it
    nowhere. It uses the ZeroMQ doorbell, never the pipe."""
    qty: int = field(default=10, metadata=v.key("qty", check=v.positive))
    params: Mapping[str, Any] = field(default_factory=dict)
    conflate: bool = True
    doorbell: Literal["pipe", "zmq"] = "pipe"
    """How the orderbook wakes it: a named pipe (one wake-up, same host), or the ZeroMQ doorbell stream."""
    order_timeout_s: float = field(default=0.5, metadata=v.key("order_timeout_s", check=v.positive))
    """An order unanswered this long is sent again, same client order id, until answered."""
    book_max_age_s: float = field(default=1.0, metadata=v.key("book_max_age_s", check=v.positive))
    """No trading on a book whose writer is dead or has not heartbeaten for this long."""
    keep_warm_ms: float = field(default=5.0, metadata=v.key("keep_warm_ms", check=v.non_negative))
    """PING the order manager when nothing went out on the order socket for this long (0: never),
    so a rarely ordering strategy's next order does not find its path cold."""
    restart: Restart | None = None
    host: str = LOCAL
    cpus: tuple[int, ...] | None = field(default=None, metadata=v.key("cpus", check=v.cpu))
    name: str = ""


@dataclass(frozen=True)
class Tuning:
    """Host settings the launcher holds for the length of a run (and releases after)."""

    cpu_dma_latency_us: int | None = field(default=None, metadata=v.key("cpu_dma_latency_us", check=v.pm_qos))
    io_threads: Literal["normal", "batch"] = "normal"
    """How each process's libzmq I/O thread is scheduled: ``normal``, or ``batch`` (SCHED_BATCH:
    woken, it does not preempt the thread that woke it). Batch made the lean chain faster when
    unpinned; with ``placement: auto`` it measured the same as normal (:mod:`zmqtrade.placement`)."""


@dataclass(frozen=True)
class Report:
    sample_interval_s: float = field(default=0.5, metadata=v.key("sample_interval_s", check=v.positive))
    html: bool = True
    """Draw report.html at the end of the run. ``false`` saves a second or two a run where nobody
    opens the page (CI, test suites, long sweeps); ``zmqtrade report RUN_DIR`` draws it later."""


@dataclass(frozen=True)
class Topology:
    symbols: tuple[str, ...] = field(metadata=v.key("symbols", check=v.symbol, help="the symbols the gateway publishes"))
    gateway: Gateway = field(metadata=v.key("gateway", help="the gateway section"))
    orderbook: OrderBook = field(metadata=v.key("orderbook", help="the orderbook section"))
    ordermanager: OrderManager = field(metadata=v.key("ordermanager", help="the ordermanager section"))
    strategies: Mapping[str, StrategySpec] = field(default_factory=dict)
    name: str = field(default="", metadata=v.key("name", check=v.name))
    duration_s: float = field(default=10.0, metadata=v.key("duration_s", check=v.non_negative))
    control: str = field(default="tcp://127.0.0.1:*", metadata=v.key("control", check=v.endpoint))
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
    lead_endpoint: str = field(default="tcp://{host}:5549", metadata=v.key("lead_endpoint", check=v.endpoint))
    """Where the lead launcher listens for the other hosts' launchers (a fixed port: they must find it)."""
    source: str = ""

    # ------------------------------------------------------------------ derived views
    def process_names(self) -> list[str]:
        """The processes the launcher starts (an ``external`` strategy is not one)."""
        return ["gateway", *self.orderbooks(), "ordermanager", *self.strategy_processes()]

    def orderbooks(self) -> list[str]:
        """The orderbook processes: ``orderbook``, or with ``orderbook.hosts`` one per host,
        ``orderbook-<host>``."""
        return [f"{ORDERBOOK_PREFIX}{h}" for h in self.orderbook.hosts] if self.orderbook.hosts else ["orderbook"]

    def book_hosts(self) -> list[str]:
        """The hosts with a book (an orderbook writing it)."""
        return [self.host_of(n) for n in self.orderbooks()]

    def orderbook_on(self, host: str) -> str | None:
        """The orderbook process of ``host``, if it has one."""
        return next((n for n in self.orderbooks() if self.host_of(n) == host), None)

    def strategy_processes(self) -> list[str]:
        return [n for n, s in self.strategies.items() if not s.external]

    def binder_hosts(self, key: str) -> list[str]:
        """The hosts where endpoint ``key`` is bound: its binder's, or for the doorbell of
        several orderbooks, each one's."""
        if key == "orderbook.doorbell":
            return self.book_hosts()
        return [self.host_of(BINDERS[key])]

    def binder_host(self, key: str, near: str | None = None) -> str:
        """The host of the process that binds ``key`` for a connecter on ``near``: with several
        orderbooks, the doorbell a strategy rings at is its own host's."""
        hosts = self.binder_hosts(key)
        return near if near in hosts else hosts[0]

    def host_local(self, key: str) -> bool:
        """Whether every host binds ``key`` for itself (the doorbell of several orderbooks): its
        endpoint is then never sent to another host."""
        return key == "orderbook.doorbell" and bool(self.orderbook.hosts)

    def kind_of(self, name: str) -> str:
        return name if name in COMPONENTS else "orderbook" if name.startswith(ORDERBOOK_PREFIX) else "strategy"

    def path_of(self, name: str) -> str:
        """The key path of a process's section: ``gateway``, ``orderbook`` (every orderbook's) or
        ``strategies.<name>``."""
        kind = self.kind_of(name)
        return kind if kind != "strategy" else f"strategies.{name}"

    def section(self, name: str) -> Any:
        """A process's own section (a component's, or its strategy spec); an orderbook of
        ``orderbook.hosts`` gets the section with its own host."""
        if name.startswith(ORDERBOOK_PREFIX) and name[len(ORDERBOOK_PREFIX):] in (self.orderbook.hosts or ()):
            return dataclasses.replace(self.orderbook, host=name[len(ORDERBOOK_PREFIX):], hosts=None)
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
        return frozenset(cpus[:1]) if self.kind_of(name) in PRICE_PATH else frozenset(cpus[1:])

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
        own_book = ("ordermanager",) if self.ordermanager.host not in self.book_hosts() else ()
        return {"gateway.prices": (*self.orderbooks(), *own_book), "gateway.news": strategies,
                "orderbook.doorbell": strategies, "ordermanager.endpoint": strategies}

    def _endpoint(self, key: str) -> tuple[str, Host]:
        """A bound endpoint (a ``binds()`` key or ``lead_endpoint``) and its binder's host."""
        if key == "lead_endpoint":
            return self.lead_endpoint, self.host(self.lead_host())
        return self.binds()[key], self.host(self.binder_host(key))

    def _at_bind_interface(self, key: str) -> Host | None:
        """The binder's host, if the endpoint at ``key`` is at that host's address and the host
        binds another interface (``bind``); None when the endpoint binds as written."""
        ep, host = self._endpoint(key)
        m = v.ENDPOINT_RE.match(ep)
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
        return to_plain(self)
