"""The streamed Excel writer (grouper.io.xlsx): what openpyxl reads back from it, cell by cell and style by style,
and the same bytes on a rerun."""

from __future__ import annotations

import datetime as dt
import decimal

import openpyxl
import pyarrow as pa
import pytest

from grouper.errors import OutputError
from grouper.io import xlsx
from grouper.io.writer import MONEY_FORMAT, write_results


def _table(start: int = 0) -> pa.Table:
    return pa.table(
        {
            "case_id": [f" S{start}", f"S{start + 1}", "=1+1"],
            "科室": pa.array(["消化内科", None, "a<b & c>d\x01"]).dictionary_encode(),
            "total_cost": [12345.6, float("nan"), float("inf")],
            "los": pa.array([3, None, 12], pa.int64()),
            "ok": [True, False, None],
            "discharge_date": [dt.date(2024, 3, 1), None, dt.date(1970, 1, 1)],
            "at": pa.array([dt.datetime(2024, 3, 1, 12, 0), None, None], pa.timestamp("s")),
            "amount": pa.array([decimal.Decimal("1.25"), None, None], pa.decimal128(10, 2)),
            "empty": pa.array(["", "", ""]),
        }
    )


def test_cells_read_back_as_written(tmp_path):
    out = tmp_path / "r.xlsx"
    write_results([_table(0), _table(3)], out, sheet="分组结果", formats={"total_cost": MONEY_FORMAT})
    sheet = openpyxl.load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == (
        "case_id",
        "科室",
        "total_cost",
        "los",
        "ok",
        "discharge_date",
        "at",
        "amount",
        "empty",
    )
    assert rows[1] == (
        " S0", "消化内科", 12345.6, 3, True, dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1, 12), 1.25, None,
    )  # fmt: skip
    assert rows[2] == ("S1", None, None, None, False, None, None, None, None)  # NaN and null: empty cells
    assert rows[3][:6] == ("=1+1", "a<b & c>d", None, 12, None, dt.datetime(1970, 1, 1))  # ∞ is empty
    assert rows[4][0] == " S3" and len(rows) == 7  # the second batch continues the rows
    assert sheet.title == "分组结果" and sheet.freeze_panes == "A2" and sheet["A1"].font.b
    assert sheet["C2"].number_format == MONEY_FORMAT and sheet["F2"].number_format == "yyyy-mm-dd"
    assert sheet["A3"].data_type == "s" and sheet["A4"].value == "=1+1"
    assert sheet.column_dimensions["B"].width >= 10  # 消化内科: a Chinese character counts two


def test_a_rerun_writes_the_same_bytes_and_wide_tables_reach_column_aa(tmp_path):
    wide = pa.table({f"c{k}": [k, k + 1] for k in range(30)})
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for out in (a, b):
        write_results(wide, out, if_exists="replace")
    assert a.read_bytes() == b.read_bytes()
    sheet = openpyxl.load_workbook(a).active
    assert sheet["AA1"].value == "c26" and sheet["AD3"].value == 30


def test_a_header_only_table_and_the_row_limit(tmp_path, monkeypatch):
    out = tmp_path / "h.xlsx"
    assert write_results(pa.table({"case_id": pa.array([], pa.string())}), out) == 0
    assert list(openpyxl.load_workbook(out).active.iter_rows(values_only=True)) == [("case_id",)]
    monkeypatch.setattr(xlsx, "EXCEL_MAX_ROWS", 2)
    with pytest.raises(OutputError, match="do not fit in Excel"):
        write_results(_table(), tmp_path / "big.xlsx")
    assert not (tmp_path / "big.xlsx").exists()
