"""Order manager restart time and memory against the journal's length.

    python -m perf.recovery [--fills 0,1000000,10000000] [--kills 3] [--rate 1000]

For each journal length: ``launch.py`` runs a stack whose strategy orders on every tick; the
benchmark appends that many fills of an earlier life to its journal (far-off ids, ancient
times: they touch nothing live) and kills the order manager with SIGKILL. Its next life
replays the whole journal (no checkpoint covers what was appended behind its back: it sets the
checkpoint aside for a full replay, as it must) and checkpoints; then, with orders flowing,
the order manager is killed ``--kills`` times more. Each of those restarts starts from the
checkpoint and replays only the journal's tail.

Printed per length: the full replay's rejoin time and peak RSS (VmHWM), and for the
checkpointed restarts the median and range of kill-to-rejoin (the launcher's own event times:
restart backoff 0, so it is process start + checkpoint + tail replay + welcomes) and peak RSS.
Target (issue 13): < 2 s at 10M fills, memory flat in the journal's length.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from perf.stack import ROOT
from zmqtrade import checkpoint, journal, wire

CHUNK = 20_000


def history(path: Path, fills: int) -> float:
    """Append ``fills`` records of an earlier life (of strategy "history", flat positions); seconds it took."""
    t = time.monotonic()
    with open(path, "ab") as fh:
        for start in range(0, fills, CHUNK):
            n = min(CHUNK, fills - start)
            fh.write(b"".join(journal.record(10**9 + start + i, wire.Order(
                1 + start + i, "history", "AAPL", "BUY" if i % 2 == 0 else "SELL", 1, 100.0, 0, 0, 1, 1), 100.0, 1)
                for i in range(n)))
    return time.monotonic() - t


def topology(tmp: Path, rate: float) -> Path:
    base = yaml.safe_load((ROOT / "topology.yaml").read_text())
    base["gateway"].update(prices=f"ipc://{tmp}/p.ipc", news=f"ipc://{tmp}/n.ipc", rate=rate)
    base["orderbook"].update(doorbell=f"ipc://{tmp}/d.ipc", conflate=False)
    base["ordermanager"]["endpoint"] = f"ipc://{tmp}/o.ipc"
    base["control"] = f"ipc://{tmp}/c.ipc"
    base["strategies"] = {"trend": {"class": "every_quote", "symbols": ["AAPL", "MSFT"], "qty": 1, "conflate": False}}
    base["supervision"] = {"restart": {"backoff_s": 0.0, "max_restarts": 100}}
    path = tmp / "topology.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


class Stack:
    """``launch.py`` running until told to stop; its events read from its output."""

    def __init__(self, topo: Path, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), str(topo), "--run-dir", str(run_dir),
                                      "--duration", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the launcher ended:\n" + "".join(self.lines[-30:]))
            self.lines.append(line)
            if text in line:
                return line
        raise RuntimeError(f"no {text!r} within {timeout} s:\n" + "".join(self.lines[-30:]))

    def om_pid(self) -> int:
        return json.loads((self.run_dir / "stack.json").read_text())["processes"]["ordermanager"]["pid"]

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=120)
        self.lines.append(out)
        return json.loads((self.run_dir / "report.json").read_text())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def restart(stack: Stack, nth: int, timeout: float) -> tuple[float, float]:
    """Kill the order manager; (seconds until it rejoined, its new life's peak RSS in MB)."""
    t = time.monotonic()
    os.kill(stack.om_pid(), signal.SIGKILL)
    stack.wait_for(f"rejoined after restart {nth}", timeout)
    took = time.monotonic() - t
    return took, peak_rss_mb(stack.om_pid())


def checkpointed(run_dir: Path, records: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, _ = checkpoint.load(run_dir, run_dir / journal.FILENAME)
        if state is not None and state.at.records >= records:
            return
        time.sleep(0.1)
    raise RuntimeError(f"no checkpoint of {records} records within {timeout} s")


def one_length(fills: int, kills: int, rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zmqtrade-recovery-") as d:
        tmp = Path(d)
        run_dir = tmp / "run"
        stack = Stack(topology(tmp, rate), run_dir)
        try:
            stack.wait_for("stack ready", 60)
            wrote = history(run_dir / journal.FILENAME, fills)
            full_s, full_mb = restart(stack, 1, 600)
            checkpointed(run_dir, fills)
            rejoins, peaks = [], []
            for i in range(kills):
                time.sleep(1.5)  # orders flow meanwhile: each restart has a journal tail to replay
                took, mb = restart(stack, i + 2, 60)
                rejoins.append(took)
                peaks.append(mb)
        finally:
            report = stack.stop() if stack.proc.poll() is None else {}
        size = (run_dir / journal.FILENAME).stat().st_size if (run_dir / journal.FILENAME).exists() else 0
    om = report.get("processes", {}).get("ordermanager", {}).get("counters", {})
    return {"fills": fills, "journal_mb": size / 2**20, "wrote_s": wrote, "full_s": full_s, "full_rss_mb": full_mb,
            "rejoin_s": rejoins, "rss_mb": peaks, "last_tail": om.get("journal_replayed"),
            "last_checkpoint": om.get("checkpoint_records"), "failures": report.get("failures")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fills", default="0,1000000,10000000", help="journal lengths (fills of an earlier life)")
    p.add_argument("--kills", type=int, default=3, help="checkpointed restarts per length")
    p.add_argument("--rate", type=float, default=1000.0, help="ticks/s (one order per tick) while it runs")
    p.add_argument("--quick", action="store_true", help="lengths 0 and 200000, two kills")
    args = p.parse_args(argv)
    lengths = [0, 200_000] if args.quick else [int(x) for x in args.fills.split(",")]
    kills = 2 if args.quick else args.kills
    print(f"order manager restart vs journal length: kill -9 under {args.rate:g} orders/s, {kills} checkpointed "
          f"restarts per length (restart backoff 0)")
    print(f"  {'fills':>10}  {'journal':>8}  {'full replay':>18}  {'from checkpoint: rejoin s':>30}  {'peak RSS MB':>16}")
    out = {}
    for n in lengths:
        r = one_length(n, kills, args.rate)
        out[str(n)] = r
        rj = r["rejoin_s"]
        print(f"  {n:>10,}  {r['journal_mb']:>6.0f}MB  {r['full_s']:>6.2f} s {r['full_rss_mb']:>6.0f} MB  "
              f"{statistics.median(rj):>12.2f} [{min(rj):.2f}-{max(rj):.2f}]"
              f"{'':>8}  {statistics.median(r['rss_mb']):>10.0f}   "
              f"(last life: checkpoint {r['last_checkpoint']}, tail {r['last_tail']}; failures {len(r['failures'] or [])})",
              flush=True)
    return out


if __name__ == "__main__":
    main()
