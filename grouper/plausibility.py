"""Plausibility rules (合理性校验) as data (``codebooks/qc/plausibility.csv``): the hard range of each number column
of a table (a case's cost and length of stay, a hospital's coefficients, a deduction), shared by every command that
reads them: the settlement, the audit, and the fits on past cases (``drgdip catalog``, ``drgdip weights``).

A value outside its hard range (or not finite) is an :class:`~grouper.errors.InputError` naming the file, the first
row and the column, with the count of such rows — never the row's content. Missing values are not judged here
(their own rules apply). The soft rules are the settlement's (:mod:`payment.plausibility`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.errors import CodebookError, InputError
from grouper.resources import data_path

__all__ = [
    "Rule",
    "check_hard",
    "check_table",
    "checked_stream",
    "column_label",
    "first_outside",
    "outside_error",
    "rules",
]


@dataclass(frozen=True)
class Rule:
    """One row of ``plausibility.csv``: the column of a table and its range (``None``: unbounded)."""

    rule: str
    table: str
    column: str
    kind: str  #: "hard" or "soft"
    min: float | None
    max: float | None


@cache
def rules() -> tuple[Rule, ...]:
    """Every rule of ``codebooks/qc/plausibility.csv``, in file order."""
    path = data_path("qc", "plausibility.csv")
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                lo, hi = (float(row[k]) if row[k] else None for k in ("min", "max"))
            except ValueError:
                raise CodebookError(
                    f"{path}: row {i}: min and max must be numbers", path=path, row=i
                ) from None
            if row["kind"] not in ("hard", "soft"):
                raise CodebookError(
                    f"{path}: row {i}, column kind: hard or soft", path=path, row=i, column="kind"
                )
            out.append(Rule(row["rule"], row["table"], row["column"], row["kind"], lo, hi))
    return tuple(out)


def _fmt(x: float | None) -> str:
    return "−∞" if x is None else f"{x:,.0f}" if x == int(x) else f"{x:,}"


def _values(table: pa.Table, column: str) -> np.ndarray:
    """A number column as float64, NaN where empty; text (a Parquet history written as text) read as numbers are."""
    col = one_array(table.column(column))
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
        from grouper.io.values import numbers

        col = numbers(col, pa.float64(), bad=float("nan"))
    return pc.fill_null(col.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def _outside(rule: Rule, values: np.ndarray) -> np.ndarray:
    bad = np.isinf(values)
    if rule.min is not None:
        bad |= values < rule.min
    if rule.max is not None:
        bad |= values > rule.max
    return bad


def _hard(kind: str, columns) -> list[Rule]:
    return [r for r in rules() if r.kind == "hard" and r.table == kind and r.column in columns]


def first_outside(kind: str, values: Mapping[str, np.ndarray]) -> tuple[Rule, int, int] | None:
    """``(rule, index of its first value outside, how many)`` for the first hard rule of ``kind`` (in file order)
    that a value of ``values`` (column → float array, NaN = missing) breaks; None when every value is in range."""
    for r in _hard(kind, values):
        bad = _outside(r, np.asarray(values[r.column], dtype=np.float64))
        if bad.any():
            return r, int(np.argmax(bad)), int(bad.sum())
    return None


def outside_error(
    rule: Rule,
    where: str | os.PathLike,
    row: int,
    more: int,
    *,
    exact: bool = True,
    headers: Mapping[str, str] | None = None,
) -> InputError:
    """The error of a value outside ``rule``'s hard range at ``row`` of ``where``, with ``more`` rows like it
    (``exact``: all of them; else at least that many); ``headers``: canonical column → the file's header it was
    read from (:func:`column_label`)."""
    many = (
        ""
        if not more
        else f"; {more:,} more row(s) like it"
        if exact
        else f"; at least {more:,} more row(s) like it"
    )
    return InputError(
        f"{where}: row {row}, column {column_label(rule.column, headers)}: outside its plausible range {_fmt(rule.min)} – {_fmt(rule.max)}"
        f" or not finite (codebooks/qc/plausibility.csv, rule {rule.rule}){many}",
        path=where,
        row=row,
        column=rule.column,
    )


def column_label(column: str, headers: Mapping[str, str] | None = None) -> str:
    """A canonical column as an error names it: with the file's own header when the file calls it otherwise
    (``入院日期 (admission_date)``), else as it is."""
    header = (headers or {}).get(column, column)
    return column if header == column else f"{header} ({column})"


def check_hard(
    table: str,
    values: Mapping[str, np.ndarray],
    *,
    where: str | os.PathLike,
    first_row: int,
    offset: int = 0,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Raise an :class:`InputError` for the first value of ``values`` (column → float array, NaN = missing)
    outside its hard range; the row is ``first_row + offset + i`` as the user counts the file's rows, and the
    count is of every such value in ``values`` (``headers``: as :func:`outside_error`)."""
    found = first_outside(table, values)
    if found is not None:
        rule, i, n = found
        raise outside_error(rule, where, first_row + offset + i, n - 1, headers=headers)


def check_table(
    table: pa.Table,
    *,
    where: str | os.PathLike,
    first_row: int,
    offset: int = 0,
    kind: str = "cases",
    headers: Mapping[str, str] | None = None,
) -> None:
    """:func:`check_hard` on the number columns of ``table`` that the rules of ``kind`` name."""
    cols = {r.column for r in _hard(kind, table.column_names)}
    values = {c: _values(table, c) for c in cols}
    check_hard(kind, values, where=where, first_row=first_row, offset=offset, headers=headers)


def checked_stream(
    batches: Iterator[pa.Table],
    *,
    where: str | os.PathLike,
    first_row: int | Callable[[], int],
    kind: str = "cases",
    headers: Mapping[str, str] | None = None,
) -> Iterator[pa.Table]:
    """The batches of one file, each checked against the hard rules of ``kind`` (rows counted from the file's
        first data row ``first_row``, :func:`grouper.io.formats.first_data_row`, or a function giving it, called on
    an error only). At the first value outside its
        range nothing more is yielded: the rest of the file is read to count the rows breaking the same rule (memory:
        one batch), then one error names the first row and the true count (``headers``: as
    :func:`outside_error`, read on an error only)."""
    offset = 0
    for t in batches:
        cols = {r.column for r in _hard(kind, t.column_names)}
        found = first_outside(kind, {c: _values(t, c) for c in cols})
        if found is None:
            offset += t.num_rows
            yield t
            continue
        rule, i, n = found
        row, exact = (first_row() if callable(first_row) else first_row) + offset + i, True
        try:
            for rest in batches:
                if rule.column in rest.column_names:
                    n += int(_outside(rule, _values(rest, rule.column)).sum())
        except InputError:  # the file breaks another way further on: what was counted is a lower bound
            exact = False
        raise outside_error(rule, where, row, n - 1, exact=exact, headers=headers)
