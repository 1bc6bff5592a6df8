"""Command line: ``zmqtrade run FILE`` (what ``python launch.py FILE`` does) and ``zmqtrade check FILE``.

Exit status: 0 a clean run (Ctrl-C included), 1 a process failed, 2 a bad topology or usage.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from zmqtrade import topology
from zmqtrade.service import LOG_DATEFMT

COMMANDS = ("run", "check")


def _run_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Start, supervise and stop a zmqtrade stack, then report.")
    p.add_argument("topology", help="the topology file (YAML)")
    p.add_argument("--check", action="store_true", help="only validate the file and print the resolved stack")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to stream (overrides duration_s; 0 = until Ctrl-C)")
    p.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                   help="where logs, journal and report go (default runs/<time>-<topology>)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every order line on the console")
    p.add_argument("-q", "--quiet", action="store_true", help="no merged view of the processes' logs (the launcher's own lines and the report still print)")
    return p


def load_or_exit(path: str) -> topology.Topology:
    try:
        return topology.load(path)
    except topology.TopologyError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        print(f"{exc.source}: {len(exc.problems)} problem(s); nothing was started", file=sys.stderr)
        raise SystemExit(2) from None


def run(argv: Sequence[str], prog: str = "zmqtrade run") -> int:
    args = _run_parser(prog).parse_args(argv)
    if args.duration is not None and args.duration < 0:
        print(f"{prog}: --duration must be >= 0", file=sys.stderr)
        return 2
    topo = load_or_exit(args.topology)
    if args.check:
        print(topology.describe(topo))
        print("ok")
        return 0
    from zmqtrade.launcher import Launcher, default_run_dir

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, datefmt=LOG_DATEFMT,
                        format="launcher | %(asctime)s %(message)s")
    run_dir = args.run_dir or default_run_dir(topo)
    return Launcher(topo, run_dir, args.duration, verbose=args.verbose, console=not args.quiet).run()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        return run([*argv[1:], "--check"], prog="zmqtrade check")
    if argv and argv[0] == "run":
        argv = argv[1:]
    return run(argv)
