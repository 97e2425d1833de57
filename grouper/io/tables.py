"""Small tables the commands take besides discharges (hospitals, deductions, special cases, weights, history,
insurer files): one reader for every format, the same encoding detection and text handling as the discharge
reader, and header aliases as data (``codebooks/records/table_aliases.csv``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from grouper.errors import InputError
from grouper.io.formats import Layout, first_data_row, read_raw
from grouper.io.values import strings
from grouper.resources import text_columns

__all__ = ["first_row_of", "read_table", "type_columns"]

#: Schema metadata key of the file row of a table's first row.
_FIRST_ROW = "drgdip.first_row"
_INTEGER = r"^[+-]?\d{1,18}$"
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


@cache
def _table_aliases() -> dict[str, dict[str, str]]:
    """Table kind → {header key → canonical column}."""
    frame = text_columns("records", "table_aliases.csv")
    out: dict[str, dict[str, str]] = {}
    for kind, column, alias in zip(frame["table"], frame["column"], frame["alias"], strict=True):
        out.setdefault(kind, {})[_key(alias)] = column
    return out


def _key(header: str) -> str:
    return re.sub(r"\s+", "", str(header)).replace("（", "(").replace("）", ")").lower()


def read_table(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    text: Iterable[str] = (),
    required: Iterable[str] = (),
    encoding: str | None = None,
    layout: Layout | None = None,
    sought: Iterable[str] = (),
) -> pa.Table:
    """Read a small table (CSV UTF-8/GBK, Excel, Parquet) with canonical headers and typed columns.

    Parameters
    ----------
    path : the file
    kind : table kind whose header aliases apply (``hospitals``, ``deductions``, ``special_cases``, ``weights``,
        ``insurer``; rows of ``codebooks/records/table_aliases.csv``); canonical headers only when None
    text : columns kept as text (ids, codes, months): trimmed, empty → null
    required : columns that must be present
    encoding : CSV encoding; detected when None
    layout : sheet, header row (title rows above it are skipped when not given) and renamed headers
    sought : columns (canonical, after aliases) that tell the table in a workbook whose sheet is not named:
        the first sheet holding them all is read, cover sheets and other tables before it are skipped with a
        warning (default: ``required``)

    Returns
    -------
    pa.Table: ``text`` columns as trimmed text, the other text columns as whole numbers or numbers when every
    value reads as one (else trimmed text); Parquet columns keep their types. :func:`first_row_of` gives the file
    row of its first row (title rows above the header counted), for error messages.

    Raises
    ------
    InputError
        Unreadable file, two headers for one column, a missing required column.
    """
    path = Path(path)
    required = tuple(required)
    aliases = _table_aliases().get(kind, {}) if kind is not None else {}
    sought = set(sought or required)

    def fits(header: list[str]) -> bool:
        return sought <= {aliases.get(_key(h), h) for h in header}

    table = read_raw(path, encoding=encoding, layout=layout, fits=fits if sought else None)
    if kind is not None:
        table = _rename(path, table, kind)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}", path=path, column=missing[0])
    first = first_data_row(path, encoding=encoding, layout=layout, fits=fits if sought else None)
    return type_columns(table, text).replace_schema_metadata({_FIRST_ROW: str(first)})


def first_row_of(table: pa.Table) -> int:
    """The file row (首行行号) of the first row of a table :func:`read_table` returned, as the user sees it in Excel
    or an editor: an error about the table's row ``i`` (from 0) names row ``first_row_of(table) + i``."""
    return int((table.schema.metadata or {}).get(_FIRST_ROW.encode(), b"1"))


def _rename(path: Path, table: pa.Table, kind: str) -> pa.Table:
    aliases = _table_aliases().get(kind, {})
    names, seen = [], {}
    for h in table.column_names:
        name = aliases.get(_key(h), h)
        if name in seen:
            raise InputError(
                f"{path}: columns {seen[name]!r} and {h!r} are the same column; keep one", path=path, column=h
            )
        seen[name] = h
        names.append(name)
    return table.rename_columns(names)


def type_columns(table: pa.Table, text: Iterable[str] = ()) -> pa.Table:
    """Text columns typed: ``text`` ones trimmed (empty → null); the others as whole numbers (int64) or numbers
    (float64) when every present value reads as one, else trimmed text. Typed (non-text) columns stay as they are.
    """
    text = set(text)
    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        arr = col.combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if name in text:
            columns.append(strings(arr))
        elif pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            columns.append(_infer(strings(arr)))
        else:
            columns.append(arr)
    return pa.table(columns, names=table.column_names)


def _infer(text: pa.Array) -> pa.Array:
    present = pc.drop_null(text)
    if len(present) == 0:
        return text
    if pc.all(pc.match_substring_regex(present, _INTEGER)).as_py():
        return text.cast(pa.int64())
    if pc.all(pc.match_substring_regex(present, _NUMBER)).as_py():
        return text.cast(pa.float64())
    return text
