"""Checks of the stack as a whole, after every key passed its own: one binder per endpoint, unique
ports, published symbols, strategy classes and parameters, CURVE keys; and the warnings."""
from __future__ import annotations

from pathlib import Path

from zmqtrade.csvfile import FeedError, load_csv
from zmqtrade.strategies import StrategyLoadError, load_strategy_class
from zmqtrade.topology import values as v
from zmqtrade.topology.convert import Converter
from zmqtrade.topology.hosts import available_cpus, cross_host, key_names, launcher_key, placement_checks
from zmqtrade.topology.schema import COMPONENTS, ORDERBOOK_PREFIX, RESEND_SPAN, StrategySpec, Topology


def graph_checks(topo: Topology, conv: Converter, base_dir: Path, host: str | None, check_files: bool) -> None:
    seen_ep: dict[str, str] = {}
    seen_port: dict[tuple[str, str], str] = {}  # (machine, port): ports are per machine, control on each
    machines = {h: topo.host(h).address for h in topo.hosts_used()}
    lead = [("lead_endpoint", topo.lead_endpoint)] if len(machines) > 1 else []
    for path, ep in [*topo.binds().items(), *lead]:
        if ep in seen_ep and not ep.endswith(":*"):
            conv.fail(path, f"{ep} is bound by {seen_ep[ep]} too; two binders cannot share an endpoint, give each its own")
            continue
        seen_ep[ep] = path
        m = v.ENDPOINT_RE.match(ep)
        if not (m and m.group("port") and m.group("port") != "*"):
            continue
        port = str(int(m.group("port")))  # 05555 is 5555
        if path == "control":
            on = set(machines.values())
        elif path == "lead_endpoint":
            on = {machines[topo.lead_host()]}
        else:
            on = {topo.host(h).address for h in topo.binder_hosts(path)}
        for machine in sorted(on):
            if (machine, port) in seen_port:
                conv.fail(path, f"port {port} is already used by {seen_port[machine, port]}"
                          + (f" on {machine}" if len(machines) > 1 else "")
                          + "; pick a free port (or * for one the OS picks)")
                break
        for machine in on:
            seen_port[machine, port] = path
    placement_checks(topo, conv)
    published = set(topo.symbols)
    if len(published) != len(topo.symbols):
        conv.fail("symbols", "lists a symbol twice; list each once")
    for name, spec in topo.strategies.items():
        if name in COMPONENTS or name.startswith(ORDERBOOK_PREFIX):
            conv.fail(f"strategies.{name}", f"{name!r} is a component's name; call the strategy something else"
                      + (" (orderbook-<host> names the orderbooks of orderbook.hosts)" if name not in COMPONENTS else ""))
        elif v.name(name):
            conv.fail(f"strategies.{name}", v.name(name) or "")
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
    here = available_cpus()
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
            try:
                load_csv(base_dir / feed.path, topo.symbols)
            except FeedError as exc:
                conv.fail("gateway.feed.path", f"{exc}; fix the file or point at another")
    if check_files:
        _check_security(topo, conv, host)


def _check_security(topo: Topology, conv: Converter, host: str | None = None) -> None:
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


def warnings(topo: Topology) -> list[str]:
    """Risks worth a line on stderr before a run, not a refusal: plaintext TCP beyond this host,
    and secret keys others can read."""
    out: list[str] = []
    crossing = cross_host(topo)
    for path, ep in topo.binds().items():
        m = v.ENDPOINT_RE.match(ep)
        if not m or not m.group("host") or v.is_loopback(m.group("host")):
            continue
        if path in crossing and not topo.security.curve:
            out.append(f"{path}: {ep} crosses hosts ({crossing[path]}) in plaintext: whoever is on the network "
                       "reads (or feeds) it; turn on security.curve (docs: how-to/curve.md)")
        elif path == "control":
            out.append(f"control: {ep} is not loopback, and the control socket is never encrypted: whoever "
                       "reaches it can stop the stack or pose as a process; bind it on 127.0.0.1")
        elif not topo.security.curve:
            out.append(f"{path}: {ep} is not loopback and security.curve is off: whoever reaches it reads (or "
                       "feeds) this socket in plaintext; bind 127.0.0.1 or turn on security.curve")
    if len(topo.hosts_used()) > 1 and not topo.security.curve \
            and not v.is_loopback(v.ENDPOINT_RE.match(topo.lead_endpoint).group("host") or ""):
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


def _check_strategy_class(spec: StrategySpec, path: str, conv: Converter, base_dir: Path) -> None:
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


