"""Command line.

    zmqtrade run FILE [FILE ...] [--set K=V ...] [--sweep K=V1,V2 ...] [--repeat N]   (launch.py)
    zmqtrade run FILE --host NAME [--lead HOST]       (one host's share of a multi-host stack)
    zmqtrade check FILE [--set K=V ...]
    zmqtrade compare RUN_DIR [RUN_DIR ...]
    zmqtrade report RUN_DIR                                          (report.html again)
    zmqtrade init DIR [--force]              (a starter project: topology, strategy, test)
    zmqtrade keys DIR [NAME ...] [--topology FILE] [--force]         (CURVE key pairs)

One file and no sweep is one run. Several files and/or sweeps run every combination in turn,
each into its own run directory, and end with one comparison table. Every point is
validated before the first one starts. Exit status: 0 clean (Ctrl-C included), 1 a process
failed (in any point), 2 a bad topology, override or usage.
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Sequence

from zmqtrade import overrides, topology
from zmqtrade.service import LOG_DATEFMT
from zmqtrade.topology import values as topo_values


def _run_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Start, supervise and stop a zmqtrade stack, then report.")
    p.add_argument("topology", nargs="+", help="topology file(s) (YAML); several are run in turn and compared")
    p.add_argument("--check", action="store_true", help="only validate and print the resolved stack(s)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. gateway.rate=20000 or strategies.s1.params.short=3 (repeatable)")
    p.add_argument("--sweep", dest="sweeps", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="run once per value (several sweeps: every combination) and compare (repeatable)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run every point N times and compare medians and ranges (a difference inside the runs' "
                        "own spread is marked as noise)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to stream (overrides duration_s; 0 = until Ctrl-C)")
    p.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                   help="where logs, journal and report go (default runs/<time>-<topology>); "
                        "for a sweep, the folder that gets one run directory per point")
    p.add_argument("--host", default=None, metavar="NAME",
                   help="start only this host's processes of a multi-host topology (one launcher per host)")
    p.add_argument("--lead", default=None, metavar="HOST",
                   help="the host whose launcher coordinates and writes the combined report (default: the "
                        "gateway's); give the same on every host")
    p.add_argument("-v", "--verbose", action="store_true", help="show every order line on the console")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no merged view of the processes' logs (the launcher's own lines and the report still print)")
    return p


def _fail(problems: list[str], what: str) -> NoReturn:
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{what}; nothing was started", file=sys.stderr)
    raise SystemExit(2)


def load_or_exit(path: str, sets: dict[str, Any] | None = None, host: str | None = None) -> topology.Topology:
    try:
        return topology.load(path, sets, host)
    except topology.TopologyError as exc:
        _fail([f"{exc.source}: {p}" for p in exc.problems], f"{exc.source}: {len(exc.problems)} problem(s)")


class Point(NamedTuple):
    """One run to make: its file, its sweep point, its validated topology, every override it got."""
    path: str
    point: dict[str, Any]
    topo: topology.Topology
    overrides: dict[str, Any]


def plan(args: argparse.Namespace) -> list[Point]:
    """Every run to make, all checked before any starts."""
    try:
        sets = dict(overrides.parse_assignment(s) for s in args.sets)
        if args.lead is not None:
            sets["lead"] = args.lead
        sweeps = [overrides.parse_sweep(s) for s in args.sweeps]
    except overrides.OverrideError as exc:
        _fail([f"--set/--sweep {exc}"], "bad override")
    runs = []
    for path in args.topology:
        for point in overrides.points(sweeps):
            merged = {**sets, **point}
            runs.append(Point(path, point, load_or_exit(path, merged or None, args.host), merged))
    return runs


def run(argv: Sequence[str], prog: str = "zmqtrade run") -> int:
    args = _run_parser(prog).parse_args(argv)
    if args.duration is not None and not 0 <= args.duration < float("inf"):
        print(f"{prog}: --duration must be a finite number of seconds >= 0, got {args.duration}", file=sys.stderr)
        return 2
    if args.repeat < 1:
        print(f"{prog}: --repeat must be 1 or more, got {args.repeat}", file=sys.stderr)
        return 2
    runs = plan(args)
    problem = placement_problem(runs, args.host)
    if problem and not (args.check and args.host is None):
        print(f"{prog}: {problem}", file=sys.stderr)
        return 2
    shown: set[str] = set()
    for path, _, topo, _ in runs:  # before anything starts, so they are seen first
        for warning in topology.warnings(topo):
            line = f"{path}: warning: {warning}"
            if line not in shown:
                shown.add(line)
                print(line, file=sys.stderr, flush=True)
    if args.check:
        for path, point, topo, _ in runs:
            print(topology.describe(topo) + (f"\n  (sweep point {overrides.label(point)})" if point else ""))
        print("ok")
        return 0
    from zmqtrade.launch.rundir import check_run_dir, default_run_dir

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, datefmt=LOG_DATEFMT,
                        format="launcher | %(asctime)s %(message)s")
    if args.run_dir is not None:
        problem = check_run_dir(args.run_dir)
        if problem:
            print(f"{prog}: {problem}", file=sys.stderr)
            return 2
    if len(runs) == 1 and args.repeat == 1:
        topo = runs[0][2]
        cls, host = launcher_for(topo, args.host)
        try:
            run_dir = args.run_dir or default_run_dir(topo, host)
        except OSError as exc:
            print(f"{prog}: cannot make a run directory under ./runs ({exc.strerror}); give a --run-dir "
                  f"you can write to", file=sys.stderr)
            return 2
        return cls(topo, run_dir, args.duration, verbose=args.verbose, console=not args.quiet, host=host,
                   overrides=runs[0].overrides).run()
    return sweep(runs, args)


def placement_problem(runs: list[Point], host: str | None) -> str | None:
    """Why these runs cannot start on this machine as asked (hosts and --host), or None."""
    for path, _, topo, _ in runs:
        used = topo.hosts_used()
        if len(used) > 1 and len(runs) > 1:
            return f"{path} spreads over hosts ({', '.join(used)}); sweeps and several files run on one host only"
        if host is None and len(used) > 1:
            return (f"{path} places processes on hosts {', '.join(used)}: run one launcher per host, "
                    f"python launch.py {path} --host NAME (the lead, {topo.lead_host()}, writes the combined report)")
        if host is not None and host not in used:
            return (f"--host {host}: {path} runs nothing on {host!r} and does not lead from it; "
                    f"its hosts are {', '.join(used)}")
    return None


def launcher_for(topo: topology.Topology, host: str | None) -> tuple[type, str | None]:
    """The launcher class for this host's share: the whole stack, the lead's or a peer's."""
    from zmqtrade.launch.launcher import Launcher

    if len(topo.hosts_used()) == 1:
        return Launcher, None
    from zmqtrade.launch.lead import LeadLauncher
    from zmqtrade.launch.peer import PeerLauncher

    return (LeadLauncher if host == topo.lead_host() else PeerLauncher), host


def sweep(runs: list[Point], args: argparse.Namespace) -> int:
    """Run each point in turn into ``<base>/<nn>-<topology>-<point>``, then print one comparison."""
    from zmqtrade.launch.launcher import Launcher
    from zmqtrade.report import compare

    base = args.run_dir or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-sweep"
    dirs, names, groups, worst = [], [], [], 0
    repeats = args.repeat
    interrupted = False
    for i, (path, point, topo, sets) in enumerate(runs, start=1):
        name = f"{topo.name}" + (f" {overrides.describe(point.items())}" if point else "")
        group: list[Path] = []
        for k in range(1, repeats + 1):  # a point's repeats in a row, as the points themselves are
            run_dir = base / (f"{i:02d}-{topo.name}-{overrides.label(point)}" + (f"-r{k}" if repeats > 1 else ""))
            print(f"\n=== sweep point {i}/{len(runs)}" + (f" run {k}/{repeats}" if repeats > 1 else "")
                  + f": {name} -> {run_dir}", flush=True)
            launcher = Launcher(topo, run_dir, args.duration, verbose=args.verbose, console=not args.quiet,
                                overrides=sets)
            code = launcher.run()
            worst = max(worst, code)
            dirs.append(run_dir)
            names.append(name + (f" r{k}" if repeats > 1 else ""))
            group.append(run_dir)
            if launcher.interrupts:
                interrupted = True
                break
        groups.append((name, group))
        if interrupted:
            print(f"\n=== sweep interrupted at point {i}/{len(runs)}", flush=True)
            break
    done = [(d, n) for d, n in zip(dirs, names) if (d / "report.json").exists()]  # a point may have ended without
    if not done:
        print("\n=== no point left a report: nothing to compare", flush=True)
        return max(worst, 1)
    text = compare.compare([d for d, _ in done], [n for _, n in done])
    if repeats > 1:
        kept = [(n, [d for d in g if (d / "report.json").exists()]) for n, g in groups]
        text = compare.repeated([(n, g) for n, g in kept if g]) + "\n\nevery run:\n" + text
    (base / "comparison.txt").write_text(text + "\n")
    compare.compare_html([d for d, _ in done], base / "comparison.html", [n for _, n in done])
    print(f"\n{text}\n\ncomparison: {base / 'comparison.txt'}", flush=True)
    return worst


def compare_cmd(argv: Sequence[str]) -> int:
    from zmqtrade.report import compare

    p = argparse.ArgumentParser(prog="zmqtrade compare", description=compare.__doc__.split("\n")[0])
    p.add_argument("run_dirs", nargs="+", help="run directories (each holds a report.json)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a page with the runs' latency CDFs overlaid")
    args = p.parse_args(argv)
    try:
        print(compare.compare(args.run_dirs))
        if args.html:
            print(compare.compare_html(args.run_dirs, args.html))
    except compare.CompareError as exc:
        print(f"zmqtrade compare: {exc}", file=sys.stderr)
        return 2
    return 0


def keys_cmd(argv: Sequence[str]) -> int:
    """Make CURVE key pairs (``security.keys``): one per NAME and one per process of --topology."""
    from zmqtrade import security

    p = argparse.ArgumentParser(prog="zmqtrade keys", description="Make CURVE key pairs for security.curve: "
                                "NAME.key (public, 0644) and NAME.key_secret (secret, 0600) in DIR (made 0700).")
    p.add_argument("dir", type=Path, help="directory for the keys, as security.keys names it")
    p.add_argument("names", nargs="*", metavar="NAME", help="a pair per name, e.g. a tool listed in security.allow")
    p.add_argument("--topology", metavar="FILE",
                   help="also a pair for every process of this topology (and, across hosts, each launcher)")
    p.add_argument("--force", action="store_true", help="replace existing pairs (their old keys stop working)")
    args = p.parse_intermixed_args(argv)
    names = list(args.names)
    derived: list[str] = []
    if args.topology:
        try:  # with CURVE off: its keys are what we are about to make
            topo = topology.load(args.topology, {"security.curve": False})
        except topology.TopologyError as exc:
            for problem in exc.problems:
                print(f"{args.topology}: {problem}", file=sys.stderr)
            print(f"{args.topology}: {len(exc.problems)} problem(s); no keys were written", file=sys.stderr)
            return 2
        derived = topology.key_names(topo)
        if topo.security.keys and Path(topo.security.keys) != args.dir.resolve():
            print(f"zmqtrade keys: note: {args.topology} reads its keys from {topo.security.keys}, not {args.dir}",
                  file=sys.stderr)
    for name in names:
        problem = topo_values.name(name)
        if problem:
            p.error(f"{name!r}: {problem}")
    names = list(dict.fromkeys([*names, *derived]))
    if not names:
        p.error("give NAMEs, --topology FILE, or both")
    try:
        pairs = security.make_keys(args.dir, names, force=args.force)
    except FileExistsError as exc:
        print(f"zmqtrade keys: {exc} already exist; nothing was written (--force replaces them, and the "
              "old keys stop working)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"zmqtrade keys: {exc}; nothing was written", file=sys.stderr)
        return 1
    for public, secret in pairs:
        print(f"wrote {public} (public) and {secret} (secret, 0600)")
    print(f"{len(pairs)} key pair(s) in {args.dir}; share only the .key files, keep .key_secret private")
    return 0


def report_cmd(argv: Sequence[str]) -> int:
    """Draw a finished run's report.html again from its run directory."""
    from zmqtrade.report import html

    return html.main(argv)


TEMPLATES = {"topology.yaml.tmpl": "topology.yaml", "mystrategy.py.tmpl": "mystrategy.py",
             "test_mystrategy.py.tmpl": "tests/test_mystrategy.py", "pytest.ini.tmpl": "pytest.ini"}
"""The starter project (package data in zmqtrade/templates) and where ``init`` writes each file."""


def init_cmd(argv: Sequence[str]) -> int:
    """Write a starter project: a topology, a strategy of your own and a test of it that passes."""
    from importlib.resources import files

    p = argparse.ArgumentParser(prog="zmqtrade init", description=COMMANDS["init"])
    p.add_argument("dir", type=Path, help="the project folder (made if missing)")
    p.add_argument("--force", action="store_true", help="replace the starter's files if they exist")
    args = p.parse_args(argv)
    targets = {name: args.dir / rel for name, rel in TEMPLATES.items()}
    there = [str(t) for t in targets.values() if t.exists()]
    if there and not args.force:
        print(f"zmqtrade init: {', '.join(there)} already exist; nothing was written (--force replaces them)",
              file=sys.stderr)
        return 2
    try:
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files("zmqtrade.templates").joinpath(name).read_text())
    except OSError as exc:
        print(f"zmqtrade init: cannot write into {args.dir} ({exc.strerror}); give a folder you can write to",
              file=sys.stderr)
        return 2
    print(f"wrote {', '.join(TEMPLATES.values())} in {args.dir}\n"
          f"next: cd {args.dir} && pytest            (the test runs a real stack for 3 s)\n"
          f"      zmqtrade run topology.yaml          (a 10 s run and its report)")
    return 0


COMMANDS = {
    "run": "start, supervise and stop a stack from topology file(s), then report (what launch.py does)",
    "check": "validate topology file(s) with their overrides and print the resolved stack; nothing starts",
    "compare": "compare finished runs side by side, labelled by what differs (--html for a page)",
    "report": "draw a finished run's report.html again from its run directory",
    "keys": "make CURVE key pairs for security.curve",
    "init": "write a starter project: a topology, a strategy of your own and a passing test of it",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    return "\n".join(["usage: zmqtrade COMMAND [options]   (zmqtrade COMMAND --help for its options)", "",
                      "commands:", *[f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()], "",
                      "zmqtrade FILE ... is zmqtrade run FILE ...; python launch.py FILE is the same."])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "keys":
        return keys_cmd(rest)
    if command == "check":
        return run([*rest, "--check"], prog="zmqtrade check")
    if command == "compare":
        return compare_cmd(rest)
    if command == "report":
        return report_cmd(rest)
    if command == "init":
        return init_cmd(rest)
    if command == "run":
        return run(rest)
    return run(argv)
