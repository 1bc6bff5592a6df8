"""The order manager as the book of record: what each strategy held and earned, positions a
restarted strategy resumes from, and strategies outside the stack (in another language).

The results are checked against the journal by a separate computation here, and the outside
client is the C program in examples/, which shares no code with the stack."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from zmqtrade import journal, wire
from zmqtrade.ledger import Ledger
from zmqtrade.topology import Fees

ROOT = Path(__file__).resolve().parent.parent
ACCUMULATE = '''
from zmqtrade.strategies import OrderRequest, Strategy


class Accumulate(Strategy):
    """Buys one share per quote and never sells: its position says how much it has lived."""

    def on_quote(self, quote):
        return [OrderRequest(quote.symbol, "BUY", 1, quote.ask)]
'''
FEES = {"per_share": 0.01, "notional_bps": 0.5}


def recompute(records: list[dict], fees: dict) -> dict[tuple[str, str], dict]:
    """Positions and PnL per (strategy, symbol) from journal records, by average cost, written
    apart from zmqtrade.ledger: each fill either adds to the position (the average moves) or
    takes from it (the difference to the average is realized), crossing flat at most once."""
    out: dict[tuple[str, str], dict] = {}
    for r in records:
        e = out.setdefault((r["strategy"], r["symbol"]), {"position": 0, "avg": 0.0, "realized": 0.0, "fees": 0.0,
                                                          "turnover": 0.0, "volume": 0, "fills": 0})
        qty, price = r["qty"], r["price"]
        step = qty if r["side"] == "BUY" else -qty
        pos = e["position"]
        if pos * step >= 0:
            e["avg"] = (e["avg"] * abs(pos) + price * qty) / (abs(pos) + qty)
        else:
            closing = min(qty, abs(pos))
            e["realized"] += closing * (price - e["avg"]) * (1 if pos > 0 else -1)
            if qty > abs(pos):
                e["avg"] = price
            elif qty == abs(pos):
                e["avg"] = 0.0
        e["position"] = pos + step
        assert r.get("fee", 0.0) == pytest.approx(qty * fees["per_share"] + qty * price * fees["notional_bps"] * 1e-4)
        e["fees"] += r.get("fee", 0.0)
        e["turnover"] += qty * price
        e["volume"] += qty
        e["fills"] += 1
    return out


def test_the_ledger_books_by_average_cost():
    book = Ledger(Fees(per_share=0.01, notional_bps=1.0))
    key = ("s", "AAPL")
    for qty, price in ((10, 100.0), (10, 110.0), (-5, 120.0), (-30, 90.0), (15, 95.0)):
        book.fill(key, qty, price, book.fees.of(abs(qty), price))
    line = book.results(["s", "idle"], {"AAPL": 100.0})
    s = line["s"]["symbols"]["AAPL"]
    # cash: -1000 - 1100 + 600 + 2700 - 1425 = -225, flat at the end: all of it realized
    assert (s["position"], s["realized_pnl"], s["volume"], s["fills"]) == (0, -225.0, 70, 5)
    assert s["fees"] == pytest.approx(70 * 0.01 + 6825.0 * 1e-4)
    assert line["s"]["net_pnl"] == pytest.approx(-225.0 - s["fees"])
    assert line["idle"] == {"net_pnl": 0.0, "realized_pnl": 0.0, "unrealized_pnl": 0.0, "fees": 0.0, "turnover": 0.0,
                            "volume": 0, "fills": 0, "symbols": {}}
    book.fill(key, -4, 100.0, 0.0)  # short 4 at 100, marked at 97: +12 unrealized
    assert book.results(["s"], {"AAPL": 97.0})["s"]["unrealized_pnl"] == pytest.approx(12.0)
    assert book.holdings("s") == [wire.Holding("AAPL", -4, 100.0, -225.0, pytest.approx(s["fees"]), 6)]


def test_results_reconcile_with_the_journal_and_a_killed_strategy_resumes_its_positions(
        launch, write_topology, tmp_path):
    (tmp_path / "accumulate.py").write_text(ACCUMULATE)
    topo = write_topology({
        "duration_s": 4,
        "gateway": {"rate": 1000, "news_rate": 20},
        "ordermanager": {"fees": FEES},
        "strategies": {"acc": {"class": "accumulate:Accumulate", "symbols": ["AAPL", "MSFT"]},
                       "flip": {"class": "every_quote", "symbols": ["GOOG", "AMZN"], "qty": 3}},
        "supervision": {"restart": {"backoff_s": 0.1}},
        "faults": [{"process": "acc", "at_s": 1.5, "action": "kill"}],
    })
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "-q")
    assert run.finish(timeout=90) in (0, 3), run.output + run.stderr
    report = json.loads((run_dir / "report.json").read_text())
    records = list(journal.read(run_dir / journal.FILENAME))
    results = report["strategies"]
    assert set(results) == {"trend", "meanrev", "acc", "flip"}

    # the order manager's results are what the journal says, computed apart
    expected = recompute(records, FEES)
    for (strategy, symbol), e in expected.items():
        got = results[strategy]["symbols"][symbol]
        assert (got["position"], got["volume"], got["fills"]) == (e["position"], e["volume"], e["fills"]), symbol
        for field, mine in (("avg_price", "avg"), ("realized_pnl", "realized"), ("fees", "fees"),
                            ("turnover", "turnover")):
            assert got[field] == pytest.approx(e[mine], abs=1e-4), (strategy, symbol, field)
        assert got["mark"] is not None
        assert got["unrealized_pnl"] == pytest.approx(e["position"] * (got["mark"] - e["avg"]), abs=1e-4)
    for strategy, r in results.items():
        symbols = r["symbols"].values()
        assert r["fills"] == sum(1 for rec in records if rec["strategy"] == strategy)
        assert r["net_pnl"] == pytest.approx(r["realized_pnl"] + r["unrealized_pnl"] - r["fees"], abs=1e-4)
        # whatever the method, realized + unrealized is the cash the trades made plus what is held, marked
        cash = sum((-1 if rec["side"] == "BUY" else 1) * rec["qty"] * rec["price"] for rec in records
                   if rec["strategy"] == strategy)
        held = sum(s["position"] * s["mark"] for s in symbols)
        assert r["realized_pnl"] + r["unrealized_pnl"] == pytest.approx(cash + held, abs=1e-3), strategy
        assert len(r["pnl_over_time"]) >= 4 and r["pnl_over_time"][-1][0] > r["pnl_over_time"][0][0]
    assert results["flip"]["fees"] > 0 and results["flip"]["realized_pnl"] != 0

    # the killed strategy resumed from the order manager's positions instead of starting flat
    acc = report["processes"]["acc"]
    assert acc["restarts"] == 1
    assert acc["resumed_positions"] and all(q > 0 for q in acc["resumed_positions"].values())
    last_life_fills = acc["counters"]["orders_acked"]
    for symbol, held in acc["position"].items():
        assert held == results["acc"]["symbols"][symbol]["position"] == expected["acc", symbol]["position"]
    assert sum(acc["position"].values()) > last_life_fills  # it carried what its first life bought
    assert "resuming from the order manager's positions" in (run_dir / "acc.log").read_text()
    assert "net pnl" in run.output and "acc " in run.output  # the summary's results table


def c_client(tmp_path: Path) -> Path | None:
    """The example C strategy, built here; None where its toolchain is missing."""
    cc, pkg = shutil.which("cc"), shutil.which("pkg-config")
    if not (cc and pkg) or subprocess.run([pkg, "--exists", "libzmq", "msgpack"]).returncode:
        if os.environ.get("ZMQTRADE_REQUIRE_C_CLIENT"):
            pytest.fail("the C client's toolchain (cc, pkg-config, libzmq3-dev, libmsgpack-dev) is missing")
        pytest.skip("no cc, pkg-config, libzmq3-dev or libmsgpack-dev: the C client cannot be built")
    flags = subprocess.run([pkg, "--cflags", "--libs", "libzmq", "msgpack"], capture_output=True, text=True,
                           check=True).stdout.split()
    out = tmp_path / "zt_strategy"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(ROOT / "examples" / "c_strategy" / "zt_strategy.c"), *flags], check=True)
    return out


def test_an_external_strategy_in_c_trades_against_the_stack_and_resumes_after_a_restart(
        launch, write_topology, tmp_path):
    client = c_client(tmp_path)
    topo = write_topology({"duration_s": 6, "strategies": {"ext": {"external": True, "symbols": ["AAPL"]}}})
    run_dir = tmp_path / "run"
    run = launch(str(topo), "--run-dir", str(run_dir), "-q")
    run.wait_for("stack ready")  # stack.json is written once every process is ready
    lives = []
    for orders in (41, 11):  # a second life of the client: resumes its position, new ids
        done = subprocess.run([str(client), str(run_dir), "ext", "AAPL", str(orders)], capture_output=True,
                              text=True, timeout=40)
        assert done.returncode == 0, done.stdout + done.stderr
        words = done.stdout.split()
        lives.append(dict(zip(words[::2], map(int, words[1::2]))))
    assert run.finish(timeout=60) == 0, run.output + run.stderr

    first, second = lives
    assert (first["sent"], first["filled"], first["rejected"]) == (41, 41, 0)
    assert first["news"] > 0 and 0 <= first["sentiment"] <= 100  # it trades once it has a sentiment
    assert (second["sent"], second["filled"]) == (11, 11)
    # buys and sells in turn, a buy first: +1 after 41; the second life starts from that +1, not flat
    assert (first["position"], second["position"]) == (1, 2)
    records = [r for r in journal.read(run_dir / journal.FILENAME) if r["strategy"] == "ext"]
    ids = [r["clordid"] for r in records]
    assert len(ids) == len(set(ids)) == 52
    assert ids[:41] == list(range(first["first_clordid"], first["first_clordid"] + 41))
    assert second["first_clordid"] > ids[40]  # the restart's ids start above the first life's
    report = json.loads((run_dir / "report.json").read_text())
    assert "ext" not in report["processes"]  # the launcher started nothing for it
    ext = report["strategies"]["ext"]
    assert ext["fills"] == 52 and ext["symbols"]["AAPL"]["position"] == 2
