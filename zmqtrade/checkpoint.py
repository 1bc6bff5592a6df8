"""The order manager's checkpoint: what a journal replay rebuilds, pinned to a journal position.

A restart reads the checkpoint, checks it against the journal and replays only the journal
after it (and, for the duplicate filter, as many records before it as the filter held): restart
time and memory follow the state, not the length of the run. The journal stays the record of
truth. A checkpoint that does not match it (damaged, of another journal, or ahead of a journal
a power cut shortened) is set aside, saying why, and the whole journal is replayed.

Written crash-safe, on a thread of its own so an order never waits for a disk: the journal is
flushed up to the checkpoint's position first, then the checkpoint goes to a file beside it,
is flushed, renamed over the old one, and the directory flushed. A kill at any moment leaves
the old checkpoint or the new one, never a mix. The filter window comes with the state (the
journal keeps boundaries as it goes): nothing here reads the journal back.

The file is JSON (``VERSION`` 2; a version-1 file, from before the ledger, is set aside and the
journal replayed)::

    {"version": 2, "at": [bytes, records, last record], "window": [bytes, records],
     "next_order_id": n, "forgotten": {strategy: ns},
     "ledger": [[strategy, symbol, position, avg_price, realized, fees, turnover, volume, fills], ...]}
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zmqtrade.journal import Position

FILENAME = "checkpoint.json"
VERSION = 2
log = logging.getLogger("zmqtrade.checkpoint")


@dataclass(frozen=True)
class State:
    at: Position
    """The journal position this state is as of: every record before it is in it."""
    window: Position
    """Replaying from here to ``at`` rebuilds the duplicate filter's fills (not the positions)."""
    next_order_id: int
    ledger: list[list[Any]]
    """The ledger's rows (:meth:`zmqtrade.ledger.Ledger.rows`): positions and PnL."""
    forgotten: dict[str, int]
    """The duplicate filter's ages: per strategy, the newest decide time it no longer holds."""

    def to_json(self) -> bytes:
        return json.dumps({
            "version": VERSION, "at": list(self.at), "window": list(self.window[:2]),
            "next_order_id": self.next_order_id,
            "forgotten": self.forgotten, "ledger": self.ledger,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "State":
        """The state a checkpoint file holds; ValueError (naming what) if it is not one."""
        try:
            d = json.loads(data)
            if d.get("version") != VERSION:
                raise ValueError(f"version {d.get('version')!r}, this order manager reads {VERSION}")
            size, records, last = d["at"]
            wsize, wrecords = d["window"]
            state = cls(Position(int(size), int(records), str(last)), Position(int(wsize), int(wrecords)),
                        int(d["next_order_id"]),
                        [_ledger_row(row) for row in d["ledger"]],
                        {str(s): int(t) for s, t in d["forgotten"].items()})
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a checkpoint ({type(exc).__name__}: {exc})") from None
        if not 0 <= state.window.size <= state.at.size or not 0 <= state.window.records <= state.at.records:
            raise ValueError("its filter window is not inside the journal it covers")
        return state


_ROW_TYPES = (str, str, int, float, float, float, float, int, int)


def _ledger_row(row: Any) -> list[Any]:
    """A ledger row, its fields in their types (ValueError if it is not one)."""
    if not isinstance(row, list) or len(row) != len(_ROW_TYPES):
        raise ValueError(f"a ledger row of {len(row) if isinstance(row, list) else type(row).__name__} fields, "
                         f"expected {len(_ROW_TYPES)}")
    return [t(v) for t, v in zip(_ROW_TYPES, row)]


def load(run_dir: Path, journal_path: Path) -> tuple[State | None, str]:
    """The run's checkpoint if it matches the journal, else (None, why not; "" if there is none)."""
    path = run_dir / FILENAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"{path}: {exc.strerror}"
    try:
        state = State.from_json(data)
    except ValueError as exc:
        return None, f"{path}: {exc}"
    why = _mismatch(state, journal_path)
    return (None, f"{path}: {why}") if why else (state, "")


def _mismatch(state: State, journal_path: Path) -> str:
    """Why ``state`` does not describe ``journal_path`` ("" when it does)."""
    at, window = state.at, state.window
    last = at.last_line.encode()
    if (at.size == 0) != (at.records == 0) or (at.size > 0 and (not last.endswith(b"\n") or len(last) > at.size)):
        return "its journal position is not a record boundary"
    try:
        with open(journal_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < at.size:
                return f"it covers {at.size} bytes of the journal, which holds {size} (cut short, or another journal)"
            if at.size:
                fh.seek(at.size - len(last) - 1 if at.size > len(last) else 0)
                before = fh.read(len(last) + 1 if at.size > len(last) else len(last))
                if not before.endswith(last) or (len(before) > len(last) and before[0:1] != b"\n"):
                    return f"the journal's record before byte {at.size} is not the one it was taken after"
            if window.size:
                fh.seek(window.size - 1)
                if fh.read(1) != b"\n":
                    return f"its filter window does not start on a record boundary (byte {window.size})"
    except FileNotFoundError:
        return "" if at.size == 0 else "the journal it was taken from is gone"
    return ""


class Writer:
    """Writes checkpoints of one journal, newest first: a state submitted while one is being
    written replaces any still waiting. ``close`` writes a last one and waits for the disk."""

    def __init__(self, run_dir: Path, journal_fd: int) -> None:
        self.path = run_dir / FILENAME
        self._fd = journal_fd
        self._dir = run_dir
        self._pending: State | None = None
        self._cond = threading.Condition()
        self._closing = False
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._loop, name="checkpoint", daemon=True)
        self._thread.start()

    def submit(self, state: State) -> None:
        """Write ``state``, replacing one still waiting."""
        with self._cond:
            self._pending = state
            self._cond.notify()

    def close(self, final: State | None = None) -> None:
        """Write ``final`` (if given) after anything pending, and stop."""
        with self._cond:
            if final is not None:
                self._pending = final
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                pending, self._pending = self._pending, None
                closing = self._closing
            if pending is not None:
                self._write(pending)
            if closing and pending is None:
                return

    def _write(self, state: State) -> None:
        tmp = self.path.with_name(FILENAME + ".tmp")
        try:
            os.fdatasync(self._fd)  # the records it vouches for are on disk before it is
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                data = state.to_json()
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self.written += 1
        except OSError as exc:  # the journal still holds everything: a restart replays more, that is all
            self.failed += 1
            log.warning("checkpoint not written: %s (a restart replays the journal from the last one)", exc)
