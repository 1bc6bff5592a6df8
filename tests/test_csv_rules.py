"""The CSV replay rule (zmqtrade/feeds.py's docstring): a well-formed row for an unknown symbol is
skipped and counted; every other fault is an error naming the file and the line."""
from __future__ import annotations

from pathlib import Path

import pytest

from zmqtrade import topology
from zmqtrade.csvfile import MAX_PRICE, FeedError, load_csv
from zmqtrade.feeds import CsvReplay
from zmqtrade.topology import Feed

SYMS = ["AAA", "BBB"]
HEADER = "timestamp,symbol,price\n"
GOOD = "1,AAA,10\n"


def write(tmp_path: Path, data: str | bytes, name: str = "ticks.csv") -> Path:
    p = tmp_path / name
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8", newline="")
    return p


def error_of(tmp_path: Path, data: str | bytes) -> tuple[Path, str]:
    p = write(tmp_path, data)
    with pytest.raises(FeedError) as exc:
        load_csv(p, SYMS)
    return p, str(exc.value)


# --------------------------------------------------------------------------- errors with the line
ROW_ERRORS = [
    # (id, the bad row, what the message says)
    ("price-nan", "2,AAA,nan", "price 'nan' must be a finite number > 0"),
    ("price-NaN-mixed-case", "2,AAA,NaN", "finite number > 0"),
    ("price-inf", "2,AAA,inf", "price 'inf'"),
    ("price-minus-inf", "2,AAA,-inf", "finite number > 0"),
    ("price-overflows-to-inf", "2,AAA,1e400", "finite number > 0"),
    ("price-negative", "2,AAA,-5", "price '-5'"),
    ("price-negative-cent", "2,AAA,-0.01", "finite number > 0"),
    ("price-zero", "2,AAA,0", "price '0'"),
    ("price-zero-float", "2,AAA,0.0", "finite number > 0"),
    ("price-minus-zero", "2,AAA,-0", "finite number > 0"),
    ("price-below-a-cent", "2,AAA,0.001", "from 0.01"),
    ("price-above-max", "2,AAA,1e13", f"to {MAX_PRICE:g}"),
    ("price-text", "2,AAA,ten", "price 'ten'"),
    ("price-empty", "2,AAA,", "price ''"),
    ("timestamp-word", "yesterday,AAA,1", "timestamp 'yesterday' is neither epoch seconds nor ISO 8601"),
    ("timestamp-empty", ",AAA,1", "timestamp ''"),
    ("timestamp-nan", "nan,AAA,1", "timestamp 'nan' is not finite"),
    ("timestamp-inf", "inf,AAA,1", "is not finite"),
    ("timestamp-negative", "-1,AAA,1", "outside 1970-01-01 .. 2262-04-11"),
    ("timestamp-before-1970", "1969-12-31T23:59:59Z,AAA,1", "outside 1970-01-01"),
    ("timestamp-after-2262", "2262-04-12T00:00:00Z,AAA,1", "outside"),
    ("timestamp-huge-exponent", "1e999999999,AAA,1", "outside"),
    ("timestamp-year-1", "0001-01-01T00:00:00+05:00,AAA,1", "outside"),
    ("timestamp-backwards", "0.5,AAA,1", "earlier than line 2's"),
    ("symbol-empty", "2,,1", "the symbol is empty"),
    ("symbol-blank", "2,   ,1", "the symbol is empty"),
    ("two-columns", "2,AAA", "got 2 columns"),
    ("one-column", "2", "got 1 columns"),
    ("unknown-symbol-bad-price", "2,ZZZ,nan", "finite number > 0"),     # checked whatever the symbol
    ("unknown-symbol-bad-time", "x,ZZZ,1", "timestamp 'x'"),
    ("field-over-csv-limit", "2,AAA," + "1" * 200_000, "not readable as CSV"),
]


@pytest.mark.parametrize("row, what", [c[1:] for c in ROW_ERRORS], ids=[c[0] for c in ROW_ERRORS])
def test_a_bad_row_is_an_error_naming_its_line(tmp_path, row, what):
    # line 1 header, line 2 a good row, line 3 the bad one
    p, msg = error_of(tmp_path, HEADER + GOOD + row + "\n" + "5,BBB,20\n")
    assert msg.startswith(f"{p}:3: "), msg
    assert what in msg, msg
    assert len(msg) < 300 + len(str(p))  # a huge field is not echoed whole


FILE_ERRORS = [
    ("empty", b"", ":1:", "empty file"),
    ("bom-only", "\ufeff".encode(), ":1:", "empty file"),
    ("blank-first-line", "\n" + HEADER + GOOD, ":1:", "the header must be timestamp,symbol,price"),
    ("header-renamed", "time,sym,px\n" + GOOD, ":1:", "the header must be"),
    ("header-missing-column", "timestamp,symbol\n1,AAA\n", ":1:", "the header must be"),
    ("header-out-of-order", "symbol,timestamp,price\nAAA,1,10\n", ":1:", "the header must be"),
    ("not-utf8", (HEADER + GOOD + "2,AAA,11\n").encode() + b"3,\xff\xfe,12\n", ":4:", "not UTF-8 (byte 0xff)"),
]


@pytest.mark.parametrize("data, where, what", [c[1:] for c in FILE_ERRORS], ids=[c[0] for c in FILE_ERRORS])
def test_a_bad_file_is_an_error_naming_the_line(tmp_path, data, where, what):
    p, msg = error_of(tmp_path, data)
    assert msg.startswith(f"{p}{where} "), msg
    assert what in msg, msg


def test_a_nul_byte_is_an_error_naming_its_line(tmp_path):
    """csv refuses NUL before Python 3.13 (a csv.Error); from 3.13 the price is not a number: an error
    naming the line either way."""
    p, msg = error_of(tmp_path, HEADER + GOOD + "2,AAA,1\x00\n")
    assert msg.startswith(f"{p}:3: "), msg


def test_header_only_or_no_published_symbol_is_an_error_without_a_line(tmp_path):
    p, msg = error_of(tmp_path, HEADER)
    assert msg == f"{p}: no rows for the published symbols (AAA, BBB); 0 row(s) for other symbols skipped"
    p, msg = error_of(tmp_path, HEADER + "1,ZZZ,5\n2,YYY,6\n")
    assert msg.endswith("; 2 row(s) for other symbols skipped"), msg


def test_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(FeedError, match="cannot be read"):
        load_csv(tmp_path / "nope.csv", SYMS)


def test_line_numbers_are_the_files_own(tmp_path):
    """Blank lines count as lines, and a quoted field spanning lines is named by its first line."""
    body = HEADER + GOOD + "\n ,  ,\n" + '2,"ZZ\nZ",5\n' + "\n" + "3,AAA,-1\n"
    p, msg = error_of(tmp_path, body)
    # 1 header, 2 good, 3 blank, 4 spaces and commas, 5-6 the quoted row, 7 blank, 8 the bad row
    assert msg.startswith(f"{p}:8: "), msg
    p, msg = error_of(tmp_path, HEADER + GOOD + '2,"AA\nA",nan\n')
    assert msg.startswith(f"{p}:3: "), msg


# --------------------------------------------------------------------------- skipped, counted, or fine
def test_unknown_symbols_are_skipped_and_counted_blank_lines_ignored(tmp_path):
    body = HEADER + "1,AAA,10\n1.5,ZZZ,3\n\n,,\n2,BBB,20\n2,QQQ,1\n3,AAA,11\n"
    rows, skipped = load_csv(write(tmp_path, body), SYMS)
    assert skipped == 2
    assert rows == [(1_000_000_000, 0, 10.0), (2_000_000_000, 1, 20.0), (3_000_000_000, 0, 11.0)]


def test_what_the_rule_accepts(tmp_path):
    """BOM, CRLF, header case and spaces, extra columns, quoted fields, equal timestamps, ISO with and
    without zone, one cent, epoch decimals read exactly to the nanosecond."""
    body = ("\ufeff Timestamp , SYMBOL ,Price,volume\r\n"
            "1735732800.005,AAA,0.01,7\r\n"
            "1735732800.005,\"BBB\",1e12\r\n"
            "2025-01-01T12:00:01.000001Z, AAA ,189.86,1,extra\r\n")
    rows, skipped = load_csv(write(tmp_path, body), SYMS)
    assert skipped == 0
    assert rows == [(1_735_732_800_005_000_000, 0, 0.01), (1_735_732_800_005_000_000, 1, 1e12),
                    (1_735_732_801_000_001_000, 0, 189.86)]


def test_replay_reports_the_skipped_count(tmp_path):
    p = write(tmp_path, HEADER + "0,AAA,10\n0.5,ZZZ,1\n1,BBB,20\n1.5,ZZZ,2\n")
    feed = CsvReplay(SYMS, Feed(kind="csv", path=str(p), pace="timestamps"))
    assert feed.skipped == 2
    b = feed.take(10)
    assert b is not None and b.slots == [0, 1] and b.offsets == [0, 1_000_000_000]


def test_replay_refuses_a_speed_that_overflows_its_offsets(tmp_path):
    p = write(tmp_path, HEADER + "0,AAA,10\n3600,AAA,11\n")
    with pytest.raises(FeedError, match="years"):
        CsvReplay(SYMS, Feed(kind="csv", path=str(p), pace="timestamps", speed=1e-12))


def test_topology_check_refuses_a_bad_file_with_its_line(tmp_path, write_topology):
    write(tmp_path, HEADER + GOOD + "2,AAA,nan\n")
    topo = write_topology({"gateway": {"feed": {"kind": "csv", "path": "ticks.csv"}}})
    with pytest.raises(topology.TopologyError) as exc:
        topology.load(topo)
    assert "ticks.csv:3: price 'nan'" in str(exc.value)


def test_gateway_counts_skipped_rows(tmp_path, write_topology, component):
    """The count reaches the gateway's counters (``csv_rows_skipped``), for the report."""
    write(tmp_path, HEADER + "0,AAA,10\n0,ZZZ,3\n0.001,BBB,20\n0.002,YYY,4\n0.003,XXX,4\n")
    topo = write_topology({"symbols": SYMS,
                           "strategies": {"trend": {"symbols": ["AAA"]}, "meanrev": {"symbols": ["BBB"]}},
                           "gateway": {"prices": f"ipc://{tmp_path}/p.ipc", "news": f"ipc://{tmp_path}/n.ipc",
                                       "feed": {"kind": "csv", "path": "ticks.csv", "loop": False}}})
    gw = component("gateway", topo, "zmqtrade_unused")
    gw.expect("ready")
    gw.start()
    assert gw.stop()["counters"]["csv_rows_skipped"] == 3
