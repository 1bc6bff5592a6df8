"""A full disk, for real: a small tmpfs mounted in the test's tmp dir and filled up, or mounted
read-only (root only; skipped where mounting is not allowed). A run that cannot write is refused before anything
starts; an order manager whose journal write fails acks nothing it did not journal, stops
saying why, and a life after space was freed goes on from the intact journal."""
from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
import zmq

from test_components import ask, order
from zmqtrade import journal, sockets, wire


def mount_tmpfs(at: Path, options: str) -> None:
    at.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(at)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mount_tmpfs(mnt, "size=4m")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def read_only_disk(tmp_path: Path):
    """Read-only for root too (a directory's mode bits are not, which is why the mode-bit test skips)."""
    mnt = tmp_path / "ro"
    mount_tmpfs(mnt, "ro,size=1m")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` up; the filler file (remove it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            os.write(fd, bytes(64 * 1024))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_run_dir_on_a_full_disk_is_refused_before_anything_starts(launch, write_topology, small_disk):
    fill(small_disk)
    run = launch(str(write_topology()), "--run-dir", str(small_disk / "run"))
    assert run.finish() == 2
    assert "cannot hold a run (No space left on device); free space there or give a --run-dir on another disk" \
        in run.stderr
    assert "Traceback" not in run.stderr + run.output
    assert not (small_disk / "run" / "stack.json").exists()


def test_a_run_dir_on_a_read_only_disk_is_refused_before_anything_starts(launch, write_topology, read_only_disk):
    run = launch(str(write_topology()), "--run-dir", str(read_only_disk / "run"))
    assert run.finish() == 2
    assert "cannot hold a run (Read-only file system); give a --run-dir in a directory you can write to" in run.stderr
    assert "Traceback" not in run.stderr + run.output


def test_a_journal_write_the_disk_refuses_is_not_acked_and_stops_the_order_manager(
        write_topology, component, book, small_disk):
    ep = f"ipc://{small_disk.parent}/om.ipc"
    topo = write_topology({"ordermanager": {"endpoint": ep, "checkpoint_every_s": 0}})
    book.write(book.index["AAPL"], 99.5, 100.5, 100.0, 10, 1, 1, time.monotonic_ns())
    ctx = zmq.Context()
    try:
        om = component("ordermanager", topo, book.name, extra=["--run-dir", str(small_disk)])
        om.expect("ready")
        om.start()
        d = sockets.dealer(ctx, ep, "trend")
        assert ask(d, order(1)).filled
        filler = fill(small_disk)
        d.send(wire.encode_orders([wire.Order(10 + i, "trend", "AAPL", "BUY", 1, 100.0, 1, 2, 3, 4)
                                   for i in range(200)]))
        assert om.proc.wait(20) == 1
        assert not d.poll(200), "a reply came for orders that were never journaled"
        log = om.log.read_text()
        assert "stopped: " in log and "cannot append to the journal: No space left on device" in log
        assert "Traceback" not in log
        assert [r["clordid"] for r in journal.read(small_disk / journal.FILENAME)] == [1]  # nothing torn, nothing more

        filler.unlink()  # space again: the next life goes on from the journal
        again = component("ordermanager", topo, book.name, extra=["--run-dir", str(small_disk)])
        again.expect("ready")
        again.start()
        assert ask(d, order(1)).order_id == 1  # the fill before the disk filled, answered again
        assert ask(d, order(2)).order_id == 2
        again.stop()
        d.close()
    finally:
        ctx.destroy(linger=0)
