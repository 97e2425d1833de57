"""The settlement's small inputs read from files, checked: hospitals (医院), monthly audit deductions (审核扣款),
declared special cases (特例单议) and DRG weights (相对权重). Every reader goes through ``grouper.io.read_table``
(one reader for every format; header aliases in ``codebooks/records/table_aliases.csv``, hospital level
spellings in ``codebooks/records/value_maps.csv``). Errors name the file, the row and the column, never a value
of a patient's row.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.errors import InputError
from grouper.io.tables import first_row_of, read_table
from grouper.io.values import map_values, numbers
from payment._arrays import to_str_numpy
from payment.deductions import parse_deductions
from payment.plausibility import check_hard

__all__ = ["read_deductions", "read_hospitals", "read_special_cases", "read_weights"]

#: Text columns of the hospitals table (the others are numbers).
_HOSPITAL_TEXT = ("hospital_id", "name", "region", "type", "level")
#: Number columns of the hospitals table under the plausibility rules (codebooks/qc/plausibility.csv).
_HOSPITAL_NUMBERS = ("coefficient", "assessment_coef", "audit_deduction")


def read_hospitals(path: str | os.PathLike, *, encoding: str | None = None) -> pa.Table:
    """The hospitals table (定点医疗机构), checked: at least one row, unique non-empty ``hospital_id``, ``level``
    1–3 (``三级甲等`` → 3, spellings as data).

    Returns
    -------
    pa.Table: ``hospital_id`` (trimmed text), ``level`` (int8), ``name`` and the optional ``coefficient``,
    ``assessment_coef``, ``audit_deduction`` (numbers) as written.
    """
    path = Path(path)
    table = read_table(
        path, kind="hospitals", text=_HOSPITAL_TEXT, required=("hospital_id", "level"), encoding=encoding
    )
    if table.num_rows == 0:
        raise InputError(f"{path}: no hospital rows (only a header)", path=path)
    first = first_row_of(table)
    ids = table.column("hospital_id").combine_chunks()
    if ids.null_count:
        i = int(np.argmax(ids.is_null().to_numpy(zero_copy_only=False)))
        raise InputError(
            f"{path}: row {first + i}, column hospital_id: empty",
            path=path,
            row=first + i,
            column="hospital_id",
        )
    text = to_str_numpy(ids)
    values, counts = np.unique(text, return_counts=True)
    if (counts > 1).any():
        dup = values[counts > 1][0]
        at = np.flatnonzero(text == dup)
        rows = ", ".join(str(first + int(i)) for i in at[:5])
        raise InputError(
            f"{path}: rows {rows}, column hospital_id: the same hospital_id more than once",
            path=path,
            row=first + int(at[0]),
            column="hospital_id",
        )
    level = _levels(table.column("level").combine_chunks())
    bad = level.is_null().to_numpy(zero_copy_only=False)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{path}: row {first + i}, column level: not a hospital level (1, 2 or 3; 一级/二级/三级)",
            path=path,
            row=first + i,
            column="level",
        )
    check_hard("hospitals", _numeric(path, table, _HOSPITAL_NUMBERS, first), where=path, first_row=first)
    table = table.replace_schema_metadata(None)  # the row numbers were for the messages
    return table.set_column(table.schema.get_field_index("level"), "level", level)


def _numeric(path: Path, table: pa.Table, columns: tuple[str, ...], first: int) -> dict[str, np.ndarray]:
    """The given columns present in ``table`` as float64 (missing → NaN); a column holding text that is not a
    number is an error naming its first such row."""
    out = {}
    for c in columns:
        if c not in table.column_names:
            continue
        col = table.column(c).combine_chunks()
        v = numbers(col, pa.float64(), bad=None)
        bad = pc.and_(pc.is_valid(col), pc.is_null(v)).to_numpy(zero_copy_only=False)
        if pa.types.is_string(col.type) and bad.any():
            row = first + int(np.argmax(bad))
            raise InputError(f"{path}: row {row}, column {c}: not a number", path=path, row=row, column=c)
        out[c] = pc.fill_null(v, np.nan).to_numpy(zero_copy_only=False)
    return out


def _levels(column: pa.Array) -> pa.Array:
    """Hospital levels as int8 1–3 from numbers or spellings (``value_maps.csv``, column ``level``); else null."""
    text = map_values("level", column.cast(pa.string()))
    value = numbers(text, pa.float64(), bad=None)
    ok = pc.fill_null(pc.is_in(value, value_set=pa.array([1.0, 2.0, 3.0])), False)
    return pc.if_else(ok, value, pa.scalar(None, pa.float64())).cast(pa.int8())


def read_deductions(
    path: str | os.PathLike,
    hospital_ids: pa.Array | pa.ChunkedArray | list[str],
    policy,
    *,
    encoding: str | None = None,
) -> dict[tuple[str, int], int]:
    """Monthly audit deductions (该月审核扣款) in fen by ``(hospital_id, month)``; see
    :func:`payment.deductions.parse_deductions`."""
    path = Path(path)
    table = read_table(
        path,
        kind="deductions",
        text=("hospital_id", "month", "amount", "reason"),
        required=("hospital_id", "month", "amount"),
        encoding=encoding,
    )
    ids = (
        hospital_ids.to_pylist()
        if isinstance(hospital_ids, pa.Array | pa.ChunkedArray)
        else list(hospital_ids)
    )
    return parse_deductions(table, ids, policy, first_row=first_row_of(table), path=path)


def read_special_cases(path: str | os.PathLike, *, encoding: str | None = None) -> list[str]:
    """Declared special cases (特例单议): the ``case_id`` column, in review-priority order (empty ids skipped)."""
    table = read_table(
        path, kind="special_cases", text=("case_id",), required=("case_id",), encoding=encoding
    )
    return [x for x in table.column("case_id").to_pylist() if x]


def read_weights(path: str | os.PathLike, *, encoding: str | None = None) -> pa.Table:
    """DRG weights (相对权重) for a DRG policy: ``drg`` (text) and ``rw`` (number)."""
    path = Path(path)
    table = read_table(path, kind="weights", text=("drg",), required=("drg", "rw"), encoding=encoding)
    rw = table.column("rw")
    if not (pa.types.is_integer(rw.type) or pa.types.is_floating(rw.type) or pa.types.is_decimal(rw.type)):
        raise InputError(f"{path}: column rw holds values that are not numbers", path=path, column="rw")
    return table.replace_schema_metadata(None)
