"""Chinese column labels, number formats and sheet names of the audit's outputs (``codebooks/qc/labels.csv``,
``codebooks/qc/sheets.csv``)."""

from __future__ import annotations

from functools import cache

import pyarrow.csv as pacsv

from grouper.resources import data_path

__all__ = ["EXCEL_FORMATS", "kind", "label", "number_format", "sheets"]

#: Excel number format per label format (元 for money).
EXCEL_FORMATS = {
    "weight": "#,##0.0000",
    "yuan": '#,##0.00" 元"',
    "share": "0.00%",
    "index": "0.0000",
    "count": "#,##0",
    "days": "0.0",
    "number": "#,##0.0000",
}


@cache
def _labels() -> dict[str, tuple[str, str]]:
    return {
        r["column"]: (r["zh"], r["format"]) for r in pacsv.read_csv(data_path("qc", "labels.csv")).to_pylist()
    }


def label(column: str) -> str:
    """The Chinese header of a column (the column name itself when it has none)."""
    return _labels().get(column, (column, "text"))[0]


def kind(column: str) -> str:
    """``yuan``, ``share``, ``index``, ``count``, ``days``, ``number`` or ``text``."""
    return _labels().get(column, (column, "text"))[1]


def number_format(column: str) -> str | None:
    """The Excel number format of a column, None for text."""
    return EXCEL_FORMATS.get(kind(column))


@cache
def sheets() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(table, sheet name, title, columns shown; empty = all) in workbook order."""
    rows = pacsv.read_csv(
        data_path("qc", "sheets.csv"), convert_options=pacsv.ConvertOptions(strings_can_be_null=False)
    ).to_pylist()
    return [(r["table"], r["sheet"], r["title"], tuple((r["columns"] or "").split())) for r in rows]
