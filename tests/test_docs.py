"""The documentation states each key and counter once and the tutorials work as written.

Each topology key the schema accepts has its row in the keys reference; each counter a process
keeps is in the counters reference; the README stays a front page that links into docs/; and
the strategy of the tutorials, with their topology and their test, is run exactly as the pages
give it."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import typing
from pathlib import Path

import yaml

from zmqtrade import topology

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def schema_keys(cls: type = topology.Topology, path: str = "") -> dict[str, str]:
    """Every key path a topology file may hold -> its last key, by the converter's rules."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("source", "name") and "yaml_key" not in f.metadata:
            continue  # filled in by the loader, not a key of the file
        key = f.metadata.get("yaml_key", f.name)
        here = f"{path}.{key}" if path else key
        out[here] = key
        tp = hints[f.name]
        for inner in (tp, *typing.get_args(tp)):
            for t in (inner, *typing.get_args(inner)):
                if dataclasses.is_dataclass(t):
                    out.update(schema_keys(t, here + (".<name>" if typing.get_origin(tp) in (dict, typing.Mapping)
                                                      or "Mapping" in str(tp) else "")))
    return out


def test_every_topology_key_has_its_row_in_the_keys_reference():
    page = (DOCS / "reference" / "topology.md").read_text()
    rows = set(re.findall(r"^\| `([\w.<>-]+)` \|", page, flags=re.M))
    missing = sorted(path for path, key in schema_keys().items() if key not in rows)
    assert missing == []


def counters_in_code() -> set[str]:
    names: set[str] = set()
    for p in (ROOT / "zmqtrade").rglob("*.py"):
        t = p.read_text()
        for m in re.finditer(r"counters\.update\(([^)]*)\)", t, flags=re.S):
            names |= set(re.findall(r"(\w+)=", m.group(1)))
        names |= set(re.findall(r"counters\[\s*\"(\w+)\"\s*\]", t))
        names |= set(re.findall(r"counters\.(?:get|setdefault)\(\s*\"(\w+)\"", t))
        if "c = self.counters" in t:
            names |= set(re.findall(r"\bc\[\s*\"(\w+)\"\s*\]", t))
        for args in re.findall(r"SeqCheck\(self\.counters, ([^)]*)\)", t):
            names |= set(re.findall(r"\"(\w+)\"", args))
    return names


def test_every_counter_a_process_keeps_is_in_the_counters_reference():
    page = (DOCS / "reference" / "counters.md").read_text()
    names = counters_in_code()
    assert len(names) > 40  # the scan itself still finds them
    assert sorted(n for n in names if f"`{n}`" not in page) == []


def test_the_readme_is_a_front_page_linking_into_the_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert len(links) >= 10
    assert [link for link in links if not (ROOT / link).exists()] == []


def code_block(page: Path, after: str, lang: str) -> str:
    """The first ``lang`` code block of ``page`` after the text ``after``."""
    text = page.read_text()
    start = text.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.S).search(text, start)
    assert m, f"no {lang} block after {after!r} in {page}"
    return m.group(1)


def test_the_tutorials_strategy_and_its_test_run_as_the_pages_give_them(pytester):
    """writing-a-strategy.md's momentum strategy and topology entry, testing-a-strategy.md's test."""
    writing = DOCS / "tutorials" / "writing-a-strategy.md"
    testing = DOCS / "tutorials" / "testing-a-strategy.md"
    (pytester.path / "mystrats").mkdir()
    (pytester.path / "mystrats" / "__init__.py").write_text("")
    (pytester.path / "mystrats" / "momentum.py").write_text(code_block(writing, "`mystrats/momentum.py`:", "python"))
    topo = yaml.safe_load((ROOT / "topology.yaml").read_text())
    topo["strategies"] = yaml.safe_load(code_block(writing, "Reference it from", "yaml"))["strategies"]
    (pytester.path / "topology.yaml").write_text(yaml.safe_dump(topo))
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_momentum.py").write_text(code_block(testing, "Add `myproject/tests", "python"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests", timeout=300)
    result.assert_outcomes(passed=1)
    assert subprocess.run([sys.executable, "-m", "zmqtrade", "check", str(pytester.path / "topology.yaml")],
                          capture_output=True, text=True).returncode == 0
