"""``audit.xlsx``: one sheet per audit table, Chinese headers, frozen header row, number formats in 元.

Written with XlsxWriter (streaming, ``constant_memory``): several times faster than openpyxl for the few hundred
thousand cells of a hospital's audit; a rerun writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter

from grouper._chunks import one_array
from payment.audit.labels import EXCEL_FORMATS, label, number_format, sheets

__all__ = ["EXCEL_MAX_ROWS", "write_workbook"]

EXCEL_MAX_ROWS = 1_048_575
#: Control characters an .xlsx cell cannot hold (as openpyxl's ILLEGAL_CHARACTERS_RE).
_ILLEGAL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _excel_table(name: str, table: pa.Table) -> pa.Table:
    """The rows a sheet shows: PDX_CHOICE (information, one row per alternative) stays in the Parquet file."""
    if name == "flags" and table.num_rows:
        table = table.filter(pc.equal(table.column("severity"), "review"))
    return table


def write_workbook(tables: dict[str, pa.Table], path: Path) -> list[str]:
    """Write the workbook to ``path`` (a temporary path of the writer module); returns notes (sheets cut at
    Excel's row limit). The bytes depend only on the tables (fixed document date; XlsxWriter's fixed zip times)."""
    notes = []
    book = xlsxwriter.Workbook(
        str(path), {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                   "strings_to_numbers": False, "nan_inf_to_errors": False}
    )  # fmt: skip
    book.set_properties({"created": dt.datetime(1980, 1, 1)})
    head = book.add_format({"bold": True, "bg_color": "#EAF2F8", "border": 1})
    formats = {k: book.add_format({"num_format": v}) for k, v in EXCEL_FORMATS.items()}
    by_code = {v: formats[k] for k, v in EXCEL_FORMATS.items()}
    for name, sheet_name, _, shown in sheets():
        if name not in tables:
            continue
        table = _excel_table(name, tables[name])
        if shown:  # the workbook's selection of a long table; the Parquet file has every column
            table = table.select([c for c in shown if c in table.column_names])
        if table.num_rows > EXCEL_MAX_ROWS:
            notes.append(
                f"{sheet_name}: first {EXCEL_MAX_ROWS:,} of {table.num_rows:,} rows (all rows in {name}.parquet)"
            )
            table = table.slice(0, EXCEL_MAX_ROWS)
        ws = book.add_worksheet(sheet_name)
        ws.freeze_panes(1, 0)
        for i, col in enumerate(table.column_names):
            fmt = number_format(col)
            ws.set_column(i, i, 14 if fmt else max(10, min(40, 2 * len(label(col)) + 2)))
            ws.write_string(0, i, label(col), head)
        row_formats = None
        if name == "summary":  # one figure per row: the row's unit gives the format
            row_formats = [formats.get(u) for u in table.column("unit").to_pylist()]
        fmts = [by_code.get(number_format(n)) for n in table.column_names]
        columns = [_cells(c) for c in table.columns]
        writers = [ws.write_number if number else ws.write_string for number, _ in columns]
        values = [v for _, v in columns]
        for r, row in enumerate(zip(*values, strict=True), start=1):  # constant_memory: rows in order
            money = row_formats[r - 1] if row_formats is not None else None
            for i, v in enumerate(row):
                if v is not None:  # empty cells are left out
                    writers[i](r, i, v, money or fmts[i])
    try:
        book.close()
    except xlsxwriter.exceptions.FileCreateError as exc:  # a full disk…: an OSError for the writer to report
        raise exc.args[0] if exc.args and isinstance(exc.args[0], OSError) else OSError(str(exc)) from None
    return notes


def _cells(col: pa.ChunkedArray) -> tuple[bool, list]:
    """(numeric?, values) of one column, a whole column at a time: numbers with NaN as None; text without the
    control characters a workbook cannot hold (never a formula); booleans as 是/否."""
    col = one_array(col)
    if pa.types.is_boolean(col.type):
        return False, pc.if_else(col, "是", "否").to_pylist()
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
        return True, col.to_pylist()
    if pa.types.is_date(col.type) or pa.types.is_timestamp(col.type):
        col = col.cast(pa.string())
    text = pc.replace_substring_regex(col.cast(pa.string()), _ILLEGAL, "")
    return False, text.to_pylist()
