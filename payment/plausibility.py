"""Plausibility rules (合理性校验) on the settlement's money inputs, as data (``codebooks/qc/plausibility.csv``).

A *hard* rule is a range no real value leaves (a case cost of 1e15 yuan, a negative 考核系数, ``inf``): a value
outside it is an :class:`~grouper.errors.InputError` naming the file, the first row and the column, with the count
of such rows — never the row's content. A *soft* rule is a warning in the outputs (``region.json`` warnings): a
case costing more than ``k`` × its group's average cost. Missing values are not judged here (their own rules apply).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa

from grouper.errors import CodebookError, InputError
from grouper.resources import data_path
from payment._arrays import numbers

__all__ = ["Rule", "check_cases", "check_hard", "rules", "soft_limit"]


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


def soft_limit(name: str) -> float:
    """The ``max`` of the soft rule ``name`` (its k)."""
    return next(r.max for r in rules() if r.rule == name and r.kind == "soft")


def _fmt(x: float | None) -> str:
    return "−∞" if x is None else f"{x:,.0f}" if x == int(x) else f"{x:,}"


def check_hard(
    table: str,
    values: Mapping[str, np.ndarray],
    *,
    where: str | os.PathLike,
    first_row: int,
    offset: int = 0,
) -> None:
    """Raise an :class:`InputError` for the first value of ``values`` (column → float array, NaN = missing)
    outside its hard range; the row is ``first_row + offset + i`` as the user counts the file's rows."""
    for r in rules():
        if r.kind != "hard" or r.table != table or r.column not in values:
            continue
        v = np.asarray(values[r.column], dtype=np.float64)
        bad = np.isinf(v)
        if r.min is not None:
            bad |= v < r.min
        if r.max is not None:
            bad |= v > r.max
        if bad.any():
            i = int(np.argmax(bad))
            row, more = first_row + offset + i, int(bad.sum()) - 1
            raise InputError(
                f"{where}: row {row}, column {r.column}: outside its plausible range {_fmt(r.min)} – {_fmt(r.max)}"
                f" or not finite (codebooks/qc/plausibility.csv, rule {r.rule})"
                + (f"; at least {more:,} more row(s) like it" if more else ""),
                path=where,
                row=row,
                column=r.column,
            )


def check_cases(
    table: pa.Table, *, where: str | os.PathLike, first_row: int, offset: int = 0, kind: str = "cases"
) -> None:
    """:func:`check_hard` on the number columns of a case (or hospitals) table that the rules name."""
    cols = {r.column for r in rules() if r.table == kind and r.column in table.column_names}
    check_hard(kind, {c: numbers(table, c) for c in cols}, where=where, first_row=first_row, offset=offset)
