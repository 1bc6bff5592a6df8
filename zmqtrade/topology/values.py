"""Checks of single values (endpoints, names, symbols, numbers): each says what is wrong, or None."""
from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Any

from zmqtrade.wire import MAX_BATCH

ENDPOINT_RE = re.compile(r"^(tcp://(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:.]+\]|\{host\}):(?P<port>\*|\d{1,5})"
                          r"|ipc://(?P<path>.+))$")
_ADDRESS_RE = re.compile(r"^([A-Za-z0-9.\-]+|\[?[0-9a-fA-F:.]+\]?)$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9._\-]{1,16}$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,31}$")
INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
IPC_PATH_MAX = 107
"""Bytes of a Unix socket path (sun_path is 108, with its terminating NUL)."""


def positive(v: float) -> str | None:
    return None if v > 0 and math.isfinite(v) else "must be a finite number > 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 and math.isfinite(v) else "must be a finite number >= 0"


def batch_size(v: int) -> str | None:
    return None if 1 <= v <= MAX_BATCH else f"must be 1..{MAX_BATCH} ticks per message (1 turns batching off)"


def count(v: int) -> str | None:
    return None if v >= 0 else "must be an integer >= 0"


def hwm(v: int) -> str | None:
    return None if 0 <= v <= INT32_MAX else f"must be 0..{INT32_MAX} messages (a ZeroMQ socket option is a C int)"


def cpu(v: int) -> str | None:
    return None if 0 <= v < 4096 else "CPU numbers are 0 and up, as os.sched_getaffinity lists them"


def pm_qos(v: int) -> str | None:
    return None if 0 <= v <= 2_000_000_000 else "must be 0..2000000000 microseconds (0: no deep sleep)"


def endpoint(v: str) -> str | None:
    m = ENDPOINT_RE.match(v)
    if not m:
        return (f"{v!r} is not an endpoint; write tcp://HOST:PORT (PORT may be * for one the OS "
                f"picks) or ipc://PATH")
    port = m.group("port")
    if port and port != "*" and not 0 < int(port) < 65536:
        return f"port {port} is out of range; use 1-65535 or *"
    path = m.group("path")
    if path and len(os.fsencode(path)) > IPC_PATH_MAX:
        return (f"the ipc path is {len(os.fsencode(path))} bytes; the kernel takes at most {IPC_PATH_MAX} "
                f"(a Unix socket address): use a shorter path, or tcp://127.0.0.1:*")
    return None


def symbol(v: str) -> str | None:
    return None if _SYMBOL_RE.match(v) else "symbols are 1-16 characters of A-Z, a-z, 0-9, '.', '_' or '-'"


def name(v: str) -> str | None:
    return None if _NAME_RE.match(v) else "names start with a letter and use letters, digits, '_' or '-' (32 at most)"


def address(v: str) -> str | None:
    return None if _ADDRESS_RE.match(v) else "must be an IP address or a DNS name (e.g. 10.0.0.2 or box-b.lan)"


def bind_interface(v: str) -> str | None:
    return None if v == "*" or _ADDRESS_RE.match(v) else "must be *, an IP address of this host, or an interface name"


def key(name: str, *, check: Any = None, help: str = "", yaml_key: str | None = None) -> dict[str, Any]:
    return {"check": check, "help": help, "yaml_key": yaml_key or name}


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or interface: it may well reach other machines
