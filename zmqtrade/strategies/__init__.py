"""Strategies: the base class, the built-ins, and loading one by name or ``module:Class``."""
from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path

from zmqtrade.strategies.base import BUY, SELL, OrderRequest, Strategy

BUILTINS = {
    "ma_news": "zmqtrade.strategies.ma_news:MovingAverageNews",
    "rsi": "zmqtrade.strategies.rsi:RsiReversion",
    "every_quote": "zmqtrade.strategies.every_quote:EveryQuote",
}

__all__ = ["BUILTINS", "BUY", "SELL", "OrderRequest", "Strategy", "StrategyLoadError", "load_strategy_class"]


class StrategyLoadError(ValueError):
    """The strategy named in a topology cannot be found or is not a Strategy."""


def load_strategy_class(spec: str, beside: Path | None = None) -> type[Strategy]:
    """A built-in name (see BUILTINS) or ``package.module:ClassName``, imported from sys.path or,
    failing that, from ``beside`` (the topology file's folder: a project keeps its strategy next
    to its topology, and the launcher puts that folder on its children's PYTHONPATH)."""
    if beside is not None and str(beside) not in sys.path:
        sys.path.append(str(beside))
    path = BUILTINS.get(spec, spec)
    if ":" not in path:
        close = difflib.get_close_matches(spec, BUILTINS, n=1)
        raise StrategyLoadError(f"{spec!r} is neither a built-in ({', '.join(BUILTINS)}) nor module:Class"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
    module_name, _, cls_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise StrategyLoadError(f"cannot import {module_name!r} ({exc}); check it is installed or on PYTHONPATH") from None
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyLoadError(f"{module_name} has no Strategy subclass named {cls_name!r}")
    return cls
