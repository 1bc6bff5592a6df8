"""Plain data (as ``yaml.safe_load`` returns it) into the schema's dataclasses, every problem of
a file collected in one pass as one line naming the key path and the fix."""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import re
import types
import typing
from typing import Any, Literal, Mapping

from zmqtrade.topology.values import INT64_MAX, INT64_MIN


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


class Converter:
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
                self.fail(path, f"expected a non-empty list, got {show(value)}")
                return None
            item_tp = typing.get_args(tp)[0]
            items = [self.convert(item_tp, v, f"{path}[{i}]", check) for i, v in enumerate(value)]
            return tuple(v for v in items if v is not None)  # a failed item is left out, as in a mapping
        if origin is collections.abc.Mapping:
            if not isinstance(value, dict):
                self.fail(path, f"expected a mapping, got {show(value)}")
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
            self.fail(path, f"expected {_type_name(tp)}, got {show(value)}")
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
            self.fail(path, f"expected a mapping, got {show(value)}")
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


def name_from(stem: str) -> str:
    """A valid topology name from a file name (it ends up in segment and directory names)."""
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", stem)[:32]
    return name if name[:1].isalpha() else f"t{name}"[:32]


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def to_plain(obj: Any) -> Any:
    """A schema object back in plain data (the inverse of :class:`Converter`), loadable again."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            if f.name in ("source", "name") and "yaml_key" not in f.metadata:
                continue  # derived when loading (the file's path; a strategy's mapping key)
            value = getattr(obj, f.name)
            if value == () or (value is None and f.default is None):
                continue  # an empty list or an unset option: its default (the schema needs lists non-empty)
            out[f.metadata.get("yaml_key", f.name)] = to_plain(value)
        return out
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    return obj
