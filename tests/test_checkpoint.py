"""The order manager's checkpoint: a restart starts from it and replays only the journal's tail;
one that does not match the journal is set aside for a whole replay; a long replay reports its
progress so the launcher waits for it. Real processes, real files, real sockets."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import zmq

from conftest import ipc_endpoints, pids_of
from test_components import ask, order
from zmqtrade import checkpoint, journal, sockets, wire
from zmqtrade.journal import Journal, Position


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def fills(n: int, first_id: int = 1, clordid: int = 1, strategy: str = "trend", ts: int = 1) -> list[bytes]:
    """``n`` journal lines of alternate 1-lot buys and sells (positions stay flat)."""
    return [journal.record(first_id + i, wire.Order(clordid + i, strategy, "AAPL", "BUY" if i % 2 == 0 else "SELL",
                                                    1, 100.0, 0, 0, ts, ts), 100.0, ts) for i in range(n)]


def wait_for_checkpoint(run_dir: Path, records: int, timeout: float = 10.0) -> checkpoint.State:
    """The checkpoint once it covers ``records`` records (it is written on a thread, at its pace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = checkpoint.State.from_json((run_dir / checkpoint.FILENAME).read_bytes())
            if state.at.records >= records:
                return state
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)  # polling a file another process renames into place: no event to wait on
    raise AssertionError(f"no checkpoint of {records} records within {timeout} s")


def om_rig(write_topology, component, book, tmp_path, **om):
    ep = f"ipc://{tmp_path}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "risk": {"max_position": 100}, **om}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    return topo, ep


def started(component, topo, book):
    om = component("ordermanager", topo, book.name)
    om.expect("ready")
    om.start()
    return om


def test_a_clean_stop_leaves_a_checkpoint_the_next_life_starts_from(write_topology, component, book, ctx, tmp_path):
    topo, ep = om_rig(write_topology, component, book, tmp_path)
    om = started(component, topo, book)
    d = sockets.dealer(ctx, ep, "trend")
    assert [ask(d, order(i, qty=30)).status for i in (1, 2, 3)] == ["filled"] * 3
    first = om.stop()["counters"]
    assert first["checkpoints_written"] >= 1
    state = wait_for_checkpoint(tmp_path, 3)
    assert (state.at.records, state.next_order_id) == (3, 4)
    assert [row[:3] for row in state.ledger] == [["trend", "AAPL", 90]]

    again = started(component, topo, book)
    replayed = ask(d, order(1, qty=30))  # the filter came back too (from the window before the checkpoint)
    assert (replayed.status, replayed.order_id) == ("filled", 1)
    over = ask(d, order(4, qty=30))      # positions: 90 + 30 is over the limit
    assert over.status == "rejected" and "position would be 120" in over.detail
    fresh = ask(d, order(5, qty=10))
    assert (fresh.status, fresh.order_id) == ("filled", 4)
    c = again.stop()["counters"]
    d.close()
    assert (c["checkpoint_records"], c["journal_replayed"], c["duplicate_orders"]) == (3, 0, 1)
    assert "checkpoint of 3, then 0 replayed" in again.log.read_text()


def test_a_kill_after_a_checkpoint_replays_only_the_journal_after_it(write_topology, component, book, ctx, tmp_path):
    topo, ep = om_rig(write_topology, component, book, tmp_path, checkpoint_every_s=3600)
    om = started(component, topo, book)
    d = sockets.dealer(ctx, ep, "trend")
    assert ask(d, order(1, qty=20)).filled
    wait_for_checkpoint(tmp_path, 1)  # the first fill is checkpointed at once, the next not for an hour
    assert all(ask(d, order(i, qty=20)).filled for i in (2, 3, 4))
    om.proc.send_signal(signal.SIGKILL)
    om.proc.wait(10)

    again = started(component, topo, book)
    assert ask(d, order(3, qty=20)).order_id == 3  # a re-send of a fill after the checkpoint: the original
    over = ask(d, order(5, qty=30))                # 4 x 20 rebuilt from checkpoint + tail, +30 > 100
    assert over.status == "rejected" and "position would be 110" in over.detail
    assert ask(d, order(6, qty=10)).order_id == 5
    c = again.stop()["counters"]
    d.close()
    assert (c["checkpoint_records"], c["journal_replayed"]) == (1, 3)


@pytest.mark.parametrize("damage", ["journal cut short", "another journal", "not json", "newer version"])
def test_a_checkpoint_that_does_not_match_the_journal_is_set_aside_for_a_whole_replay(
        write_topology, component, book, ctx, tmp_path, damage):
    topo, ep = om_rig(write_topology, component, book, tmp_path)
    om = started(component, topo, book)
    d = sockets.dealer(ctx, ep, "trend")
    assert all(ask(d, order(i, qty=10)).filled for i in (1, 2, 3))
    om.stop()
    wait_for_checkpoint(tmp_path, 3)
    path, ck = tmp_path / journal.FILENAME, tmp_path / checkpoint.FILENAME
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "journal cut short":  # as a power cut with fsync off may leave it
        path.write_bytes(b"".join(lines[:2]))
    elif damage == "another journal":  # same length, another order in its last record
        path.write_bytes(b"".join(lines[:2]) + lines[2].replace(b'"clordid":3', b'"clordid":7'))
    elif damage == "not json":
        ck.write_bytes(b"{\"version\": 1, \"at\": [")
    else:
        ck.write_text(json.dumps({**json.loads(ck.read_text()), "version": 99}))
    kept = 2 if damage == "journal cut short" else 3

    again = started(component, topo, book)
    assert ask(d, order(9, qty=10)).order_id == kept + 1
    c = again.stop()["counters"]
    d.close()
    assert (c["checkpoint_records"], c["journal_replayed"]) == (0, kept)
    assert "checkpoint set aside, replaying the whole journal" in again.log.read_text()


def test_the_filter_window_is_a_boundary_the_journal_kept_as_it_was_written_and_read(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "MARK_EVERY", 4)  # commits of 3: a boundary kept every 6 records

    def replays(j: Journal, kept: int) -> list[int]:
        w = j.back(kept)
        with open(j.path, "rb") as fh:
            fh.seek(w.size)
            ids = [json.loads(x)["order_id"] for x in fh]
        assert len(ids) == j.records - w.records
        return ids

    j = Journal(tmp_path / journal.FILENAME, window=12)
    for first in range(1, 31, 3):
        j.append_lines(fills(3, first_id=first))
    for kept in (1, 5, 12):  # from a boundary at most a mark and a commit before the exact one
        ids = replays(j, kept)
        assert ids[-kept:] == list(range(31 - kept, 31)) and kept <= len(ids) < kept + 4 + 3
    assert len(j._mark_records) < 30 // 6  # boundaries older than the window are let go
    at = j.back(12)
    j.close()
    again = Journal(tmp_path / journal.FILENAME, start=at, window=12)  # opened from a checkpoint's window
    assert again.records == 30
    ids = replays(again, 5)
    assert ids[-5:] == list(range(26, 31)) and len(ids) < 5 + 4
    assert again.back(25) == Position(at.size, at.records)  # not before where it was opened from
    assert Journal(tmp_path / "other.jsonl", window=12).back(3) == Position()
    again.close()


def test_a_checkpoint_write_leaves_no_temporary_file_and_survives_being_read_back(tmp_path):
    j = Journal(tmp_path / journal.FILENAME)
    lines = fills(4)
    j.append_lines(lines)
    w = checkpoint.Writer(tmp_path, j.fd)
    state = checkpoint.State(j.position, Position(len(lines[0] + lines[1]), 2), 5, [["trend", "AAPL", 0, 0.0, 1.5, 0.25, 300.0, 2, 2],
                                                         ["rsi", "MSFT", -3, 99.5, 0.0, 0.0, 298.5, 3, 1]], {"trend": 7})
    w.close(state)
    j.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [checkpoint.FILENAME, journal.FILENAME]
    back, why = checkpoint.load(tmp_path, tmp_path / journal.FILENAME)
    assert why == "" and back is not None
    assert (back.at, back.window.records, back.next_order_id) == (state.at, 2, 5)
    assert (back.ledger, back.forgotten) == (state.ledger, state.forgotten)


def test_a_long_replay_reports_progress_and_is_waited_for_past_the_ready_timeout(
        launch, write_topology, tmp_path):
    """A restarted order manager whose journal takes far longer than ``ready_timeout_s`` to replay
    is not taken for hung: its progress keeps the launcher waiting, and it rejoins."""
    topo = write_topology({**ipc_endpoints(tmp_path), "gateway": {"rate": 200},
                           "ordermanager": {"checkpoint_every_s": 0},
                           "supervision": {"ready_timeout_s": 1.0, "restart": {"backoff_s": 0.1}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "--duration", "0")
    run.wait_for("stack ready")
    # the records of a long earlier life: far-off ids and ancient times, so they touch nothing live
    with open(run_dir / journal.FILENAME, "ab") as fh:
        for i in range(0, 250_000, 10_000):
            fh.write(b"".join(fills(10_000, first_id=10**9 + i, clordid=10**12 + i, strategy="meanrev")))
    os.kill(pids_of(run_dir)["ordermanager"], signal.SIGKILL)
    rejoined = run.wait_for("rejoined after restart 1", timeout=120)
    assert "not ready" not in run.output, run.output
    os.kill(run.proc.pid, signal.SIGINT)
    assert run.finish() == 3, run.output + run.stderr  # an unexpected exit that a restart recovered
    report = json.loads((run_dir / "report.json").read_text())
    assert report["processes"]["ordermanager"]["counters"]["journal_replayed"] >= 250_000
    took = float(re.search(r"in ([0-9.]+) s, next order id", (run_dir / "ordermanager.log").read_text())[1])
    assert took > 1.0, f"the replay took {took} s: too short to prove anything about ready_timeout_s"
    assert rejoined
