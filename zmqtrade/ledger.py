"""The book of record: what each strategy holds and earned, per symbol, from its fills.

Kept by the order manager, the only process that sees every fill (a strategy's own view dies
with it), and rebuilt from the journal and its checkpoints like the rest of its state.

Accounting is by average cost, as most brokers' statements do it: buying into a position moves
its average price; selling out of it realizes ``(price - average) x shares`` and leaves the
average as it was; a fill that crosses through flat closes the old position and opens the rest
at the fill's price. Unrealized PnL is the open position marked at the book's mid. Fees are the
topology's ``ordermanager.fees`` (per share and in basis points of notional), charged when a
fill is decided and written into its journal record, so a journal states what was charged even
if the fee schedule changes between runs. Net PnL is realized + unrealized - fees.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Container, Iterable, Mapping

from zmqtrade import journal, wire
from zmqtrade.topology import Fees
from zmqtrade.wire import Holding

Key = tuple[str, str]
"""(strategy, symbol)."""

PNL_PREFIX = "pnl."
"""The order manager's progress reports carry each strategy's net PnL under this prefix."""
AVG, REALIZED, FEES, TURNOVER, VOLUME, FILLS = range(6)
"""Fields of a ledger line (a list, updated in place once per fill on the order path)."""


class Ledger:
    """Positions and PnL per (strategy, symbol). ``positions`` is also what risk checks read."""

    def __init__(self, fees: Fees = Fees()) -> None:
        self.fees = fees
        self.charging = bool(fees.per_share or fees.notional_bps)
        self.positions: dict[Key, int] = {}
        self.lines: dict[Key, list[float]] = {}

    def fill(self, key: Key, signed_qty: int, price: float, fee: float) -> None:
        """Book one fill of ``signed_qty`` shares (> 0 bought, < 0 sold) at ``price``."""
        self.book(key, self.move(key, signed_qty), signed_qty, price, fee)

    def move(self, key: Key, signed_qty: int) -> int:
        """The position part of a fill, all the next order's risk check needs; the position
        before it, for :meth:`book`. The order manager books the rest later, fills in a run."""
        positions = self.positions
        before = positions.get(key, 0)
        positions[key] = before + signed_qty
        return before

    def book(self, key: Key, before: int, signed_qty: int, price: float, fee: float) -> None:
        """The rest of a fill :meth:`move` made: average price, realized PnL, fees, turnover."""
        line = self.lines.get(key)
        if line is None:
            line = self.lines[key] = [0.0, 0.0, 0.0, 0.0, 0, 0]
        after = before + signed_qty
        if before == 0 or (before > 0) == (signed_qty > 0):  # opening or adding: the average moves
            line[AVG] = (line[AVG] * abs(before) + price * abs(signed_qty)) / abs(after)
        else:  # reducing, closing or crossing through flat
            closed = min(abs(signed_qty), abs(before))
            line[REALIZED] += (price - line[AVG]) * (closed if before > 0 else -closed)
            if after == 0:
                line[AVG] = 0.0
            elif (after > 0) != (before > 0):
                line[AVG] = price  # the rest opened a position the other way, at this fill
        qty = abs(signed_qty)
        line[FEES] += fee
        line[TURNOVER] += qty * price
        line[VOLUME] += qty
        line[FILLS] += 1

    def replay(self, rec: Mapping[str, Any]) -> None:
        """Book a journal record's fill (KeyError, TypeError if it lacks a field)."""
        qty = rec["qty"]
        self.fill((rec["strategy"], rec["symbol"]), qty if rec["side"] == "BUY" else -qty, rec["price"],
                  rec.get("fee", 0.0))

    def holdings(self, strategy: str) -> list[Holding]:
        """What ``strategy`` holds, symbol by symbol (every symbol it has traded)."""
        return [Holding(sym, self.positions.get((s, sym), 0), line[AVG], line[REALIZED], line[FEES], int(line[FILLS]))
                for (s, sym), line in self.lines.items() if s == strategy]

    def answer(self, fields: tuple, sender: str | None, known: Container[str], now_ns: int) -> tuple[bytes, str, bool]:
        """A POSITIONS answer to an ask's fields: (body, log line, whether the ask was malformed).
        Refused for a strategy not in ``known``, or (under CURVE) not the ``sender``'s own."""
        try:
            ask = wire.as_positions_ask(fields)
        except wire.WireError as exc:
            return (wire.encode_positions("", None, now_ns, f"malformed: {exc}"),
                    f"positions ask from a client rejected: malformed: {exc}", True)
        name = ask.strategy
        if name not in known:
            reason = f"unknown strategy {wire.brief(name)}"
        elif sender is not None and name != sender:
            reason = f"strategy {wire.brief(name)} is not this client's own (its key is {sender!r})"
        else:
            held = self.holdings(name)
            return (wire.encode_positions(name, held, now_ns),
                    f"positions of {name} asked: {len(held)} symbols, {sum(1 for h in held if h.position)} open", False)
        return wire.encode_positions(name, None, now_ns, reason), f"positions ask rejected: {reason}", False

    def net(self, marks: Mapping[str, float | None]) -> dict[str, float]:
        """Net PnL per strategy, open positions marked at ``marks`` (symbol -> mid)."""
        out: dict[str, float] = {}
        for (s, sym), line in self.lines.items():
            out[s] = out.get(s, 0.0) + line[REALIZED] - line[FEES] + self._unrealized((s, sym), marks.get(sym))
        return out

    def _unrealized(self, key: Key, mark: float | None) -> float:
        pos = self.positions.get(key, 0)
        return pos * (mark - self.lines[key][AVG]) if pos and mark is not None else 0.0

    def results(self, strategies: Iterable[str], marks: Mapping[str, float | None]) -> dict[str, Any]:
        """The report's ``strategies`` section (docs/reference/report-json.md): every strategy of the
        topology, those that never traded included, with totals and a line per symbol."""
        out: dict[str, Any] = {}
        for name in strategies:
            symbols = {}
            for (s, sym), line in sorted(self.lines.items()):
                if s != name:
                    continue
                pos = self.positions.get((s, sym), 0)
                mark = marks.get(sym)
                symbols[sym] = {"position": pos, "avg_price": round(line[AVG], 6), "mark": mark,
                                "realized_pnl": round(line[REALIZED], 6),
                                "unrealized_pnl": round(self._unrealized((s, sym), mark), 6),
                                "fees": round(line[FEES], 6), "turnover": round(line[TURNOVER], 6),
                                "volume": int(line[VOLUME]), "fills": int(line[FILLS])}
            total = {k: round(float(sum(v[k] for v in symbols.values())), 6)
                     for k in ("realized_pnl", "unrealized_pnl", "fees", "turnover")}
            out[name] = {"net_pnl": round(total["realized_pnl"] + total["unrealized_pnl"] - total["fees"], 6),
                         **total, "volume": sum(v["volume"] for v in symbols.values()),
                         "fills": sum(v["fills"] for v in symbols.values()), "symbols": symbols}
        return out

    # ------------------------------------------------------------------ checkpoints
    def rows(self) -> list[list[Any]]:
        """The ledger as plain rows, for a checkpoint."""
        return [[s, sym, self.positions.get((s, sym), 0), *line] for (s, sym), line in self.lines.items()]

    def load_rows(self, rows: Iterable[Iterable[Any]]) -> None:
        """Replace the ledger by a checkpoint's rows (ValueError, TypeError if they are not)."""
        positions: dict[Key, int] = {}
        lines: dict[Key, list[float]] = {}
        for s, sym, pos, avg, realized, fees, turnover, volume, fills in rows:
            key = (str(s), str(sym))
            positions[key] = int(pos)
            lines[key] = [float(avg), float(realized), float(fees), float(turnover), int(volume), int(fills)]
        self.positions.clear()
        self.positions.update(positions)
        self.lines = lines


def from_journal(path: str | Path) -> Ledger:
    """A ledger rebuilt from a journal file alone (each record holds the fee it was charged)."""
    book = Ledger()
    for rec in journal.read(path):
        book.replay(rec)
    return book
