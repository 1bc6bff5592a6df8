"""The topology: one YAML file that describes a whole stack, validated before anything starts.

A file is parsed with ``yaml.safe_load`` and converted into frozen dataclasses by a small
schema-driven converter, so every problem in a file is found in one pass and reported as one
line naming the file, the key path and the fix. Graph checks (one binder per endpoint, unique
ports, published symbols) run after the per-key checks.

The package, bottom up: :mod:`~zmqtrade.topology.values` (checks of single values),
:mod:`~zmqtrade.topology.schema` (the sections as frozen dataclasses, and a whole stack's
derived views), :mod:`~zmqtrade.topology.convert` (plain data into the schema),
:mod:`~zmqtrade.topology.hosts` (placement across hosts), :mod:`~zmqtrade.topology.checks` (the
stack as a whole, and warnings) and :mod:`~zmqtrade.topology.load` (the entry points). What other
modules use is imported here.
"""
from zmqtrade.topology.checks import warnings
from zmqtrade.topology.hosts import cross_host, key_names, launcher_key
from zmqtrade.topology.load import describe, ipc_paths, load, parse, substitute_run_dir
from zmqtrade.topology.schema import (
                                      BIND_KEYS,
                                      BINDERS,
                                      COMPONENTS,
                                      HOST_PLACEHOLDER,
                                      LOCAL,
                                      LOCAL_HOST,
                                      PRICE_PATH,
                                      RESEND_SPAN,
                                      Fault,
                                      Feed,
                                      Fees,
                                      Gateway,
                                      Host,
                                      OrderBook,
                                      OrderManager,
                                      Report,
                                      Restart,
                                      Risk,
                                      Security,
                                      StrategySpec,
                                      Supervision,
                                      Topology,
                                      TopologyError,
                                      Tuning,
)
from zmqtrade.topology.values import is_loopback

__all__ = ["BIND_KEYS", "BINDERS", "COMPONENTS", "HOST_PLACEHOLDER", "LOCAL", "LOCAL_HOST", "PRICE_PATH", "RESEND_SPAN",
           "Fault", "Feed", "Fees", "Gateway", "Host", "OrderBook", "OrderManager", "Report", "Restart", "Risk",
           "Security", "StrategySpec", "Supervision", "Topology", "TopologyError", "Tuning", "cross_host", "describe",
           "ipc_paths", "is_loopback", "key_names", "launcher_key", "load", "parse", "substitute_run_dir",
           "warnings"]
