"""A run's directory: a new one per run, and refused before anything starts if it cannot hold one."""
from __future__ import annotations

import errno
import logging
import os
from datetime import datetime
from pathlib import Path

from zmqtrade.topology import Topology

log = logging.getLogger("zmqtrade.launcher")


def default_run_dir(topo: Topology, host: str | None = None) -> Path:
    """A new directory runs/<time>-<topology>[-<host>][-n], made here so two launches never share one."""
    base = Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{topo.name}{f'-{host}' if host else ''}"
    base.parent.mkdir(parents=True, exist_ok=True)
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


PROBE_BYTES = 1 << 20
"""Written (and removed) in a new run directory before anything starts: a disk that cannot take
a megabyte cannot take the run's logs and journal either."""


def check_run_dir(path: Path) -> str | None:
    """Why ``path`` cannot take a new run, or None once it exists, empty and writable: a journal
    and logs there would mix two runs, and a run that cannot write its journal must not start."""
    try:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            return f"{path} already holds files (a run's journal and logs would mix with them); give a new --run-dir"
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".zmqtrade-probe"
        try:
            with open(probe, "wb") as fh:  # real bytes: an empty file is made even on a full disk
                fh.write(bytes(PROBE_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        fix = "free space there or give a --run-dir on another disk" if exc.errno in (errno.ENOSPC, errno.EDQUOT) \
            else "give a --run-dir in a directory you can write to"
        return f"{path} cannot hold a run ({exc.strerror}); {fix}"
    return None
