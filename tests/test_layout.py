"""The package's shape: small modules, no import cycles, and the documented entry points working."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zmqtrade"
MAX_LINES = 420
"""About 400: a module that grows past it holds more than one job."""
PROCESSES = ("gateway", "orderbook", "strategy", "ordermanager")


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """zmqtrade modules ``name`` imports anywhere in it (a function-local import is still a
    dependency), each with the packages its import runs first."""
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            parts = t.split(".")
            for i in range(2, len(parts) + 1):  # importing a.b.c runs a.b's __init__ first...
                pkg = ".".join(parts[:i])
                if pkg in known and (i == len(parts) or not name.startswith(pkg + ".")):  # ...unless within a.b
                    out.add(pkg)
    out.discard(name)
    return out


def test_no_module_is_a_room_of_many_jobs():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_no_module_imports_itself_round_a_circle():
    known = modules()
    graph = {name: imports_of(path, name, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan: each strongly connected component of more than one is a cycle
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == [], cycles


@pytest.mark.parametrize("module", [f"zmqtrade.{p}" for p in PROCESSES] + ["zmqtrade", "zmqtrade.report.html"])
def test_the_documented_commands_still_start(module):
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_the_documented_imports_still_work():
    from zmqtrade import topology, wire
    from zmqtrade.book import Book
    from zmqtrade.ledger import Ledger, from_journal
    from zmqtrade.strategies import BUY, SELL, OrderRequest, Strategy

    assert all((Book, Ledger, from_journal, BUY, SELL, OrderRequest, Strategy, topology.load, topology.Topology,
                wire.Tick, wire.Holding, wire.encode_order, wire.FILLED))


def test_every_benchmark_of_the_full_run_has_a_main():
    """`python -m perf.results` runs these for half an hour: a name bound to the wrong object
    (a helper shadowing a module) must fail here, not at the end of a run."""
    sys.path.insert(0, str(PACKAGE.parent))
    from perf import results

    assert [key for _, fn, key in results.BENCHMARKS if not callable(fn)] == []
    assert len({key for _, _, key in results.BENCHMARKS}) == len(results.BENCHMARKS)
