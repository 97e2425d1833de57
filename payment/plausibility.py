"""Plausibility rules (合理性校验) on the settlement's money inputs, as data (``codebooks/qc/plausibility.csv``).

The *hard* rules (a range no real value leaves: a case cost of 1e15 yuan, a negative 考核系数, ``inf``) are the
grouper's (:mod:`grouper.plausibility`, shared with the fits on past cases): a value outside one is an
:class:`~grouper.errors.InputError` naming the file, the first row and the column, with the count of such rows —
never the row's content. A *soft* rule is a warning in the outputs (``region.json`` warnings): a case costing more
than ``k`` × its group's average cost. Missing values are not judged here (their own rules apply).
"""

from __future__ import annotations

import os

import pyarrow as pa

from grouper.plausibility import Rule, check_hard, check_table, rules

__all__ = ["Rule", "check_cases", "check_hard", "rules", "soft_limit"]


def soft_limit(name: str) -> float:
    """The ``max`` of the soft rule ``name`` (its k)."""
    return next(r.max for r in rules() if r.rule == name and r.kind == "soft")


def check_cases(
    table: pa.Table, *, where: str | os.PathLike, first_row: int, offset: int = 0, kind: str = "cases"
) -> None:
    """:func:`grouper.plausibility.check_table` on the number columns of a case (or hospitals) table that the
    rules name."""
    check_table(table, where=where, first_row=first_row, offset=offset, kind=kind)
