"""Changing a topology from the command line: ``--set KEY=VALUE`` and ``--sweep KEY=V1,V2``.

An override is applied to the file's plain data before validation, so an override is
checked exactly like the file (a bad path or value is the same clear error) and nothing is
started on a mistake. Values are read as YAML scalars or flow collections: ``20000`` is a
number, ``true`` a bool, ``[AAPL, MSFT]`` a list, anything else a string.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any, Iterable, Mapping, Sequence

import yaml


class OverrideError(ValueError):
    """An override that cannot be applied; the message names it and says why."""


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """A YAML value, except that ``1e-4`` is a number (YAML 1.1 wants ``1.0e-4``)."""
    text = text.strip()
    if _NUMBER.match(text) and not text.lstrip("+-").isdigit():
        return float(text)
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """``gateway.rate=20000`` -> ("gateway.rate", 20000)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise OverrideError(f"{text!r}: write KEY=VALUE with a dotted KEY, e.g. gateway.rate=20000")
    return key, parse_value(value)


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``gateway.rate=1000,5000`` -> ("gateway.rate", [1000, 5000]); commas inside a value's
    brackets or quotes do not split it: ``params={short: 3, long: 8},{short: 5, long: 20}``."""
    key, _ = parse_assignment(text)
    raw = text.partition("=")[2]
    values = [parse_value(v) for v in split_top_level(raw)]
    if not values or any(v == "" for v in values):
        raise OverrideError(f"{text!r}: give one or more comma-separated values after '='")
    return key, values


def split_top_level(text: str) -> list[str]:
    """``text`` split at the commas outside [], {} and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def apply(data: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of ``data`` with each dotted key set; sections on the way are created if absent."""
    out = copy.deepcopy(data)
    if not isinstance(out, dict):
        raise OverrideError("the topology file is not a mapping of keys, so no key can be set in it")
    for key, value in overrides.items():
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise OverrideError(f"{key}: {where} holds the value {shown(child)}, not a section of keys")
            node = child
        node[parts[-1]] = value
    return out


def points(sweeps: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the sweeps' values, in order (one dict of overrides each)."""
    if not sweeps:
        return [{}]
    keys = [k for k, _ in sweeps]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in sweeps))]


def label(overrides: Mapping[str, Any]) -> str:
    """A short, file-name-safe name for a sweep point, e.g. ``gateway.rate=5000``."""
    parts = [f"{k}={v}" for k, v in overrides.items()]
    return "_".join(p.replace("/", "-").replace(" ", "") for p in parts) or "base"


def describe(overrides: Iterable[tuple[str, Any]]) -> str:
    """``KEY=VALUE, ...`` with each value as it is written on the command line (YAML)."""
    return ", ".join(f"{k}={shown(v)}" for k, v in overrides)


def shown(value: Any) -> str:
    """A value as YAML writes it: ``true``, not Python's ``True``; a string as it is."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    try:
        return json.dumps(value)  # JSON is YAML's flow style: [1, 2], {"a": 1}, 1e-05
    except (TypeError, ValueError):
        return str(value)
