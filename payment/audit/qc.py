"""QC edits (结算清单质控) Q01–Q14 of docs/records.md §5: one row per finding, never patient data.

Each finding names the case (``case_id`` and its 1-based ``row`` in the run), the edit (``Q01`` …), its code and
severity (``error``: the case is not grouped or paid as it is; ``warning``), the field and, for list fields, the
position of the offending code (``other_dx`` #3). Messages come from ``codebooks/qc/edits.csv`` (Chinese and
English) and repeat no value of the record.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from grouper._chunks import one_array
from grouper.batch import duplicated
from grouper.codes import normalise_codes
from grouper.resources import data_path
from grouper.schema import FEE_COLUMNS
from payment.audit.lists import QcLists

__all__ = ["QC_SCHEMA", "edit_names", "qc_edits"]

#: Columns of the QC table.
QC_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("hospital_id", pa.string()),
        ("row", pa.int64()),
        ("edit", pa.string()),
        ("code", pa.string()),
        ("severity", pa.string()),
        ("field", pa.string()),
        ("position", pa.int32()),
        ("message_zh", pa.string()),
        ("message_en", pa.string()),
    ]
)
_MODES = pa.array([1, 2, 3, 4, 5, 9], pa.int8())
_INSURANCE = pa.array(["employee", "resident", "self_pay"])


@cache
def _edits() -> dict[tuple[str, str, str], dict]:
    """(edit, code, check) → the row of ``edits.csv``; ``check`` tells apart two checks of one edit (Q12: the
    procedure's sex, its date), "" for the others."""
    table = pacsv.read_csv(
        data_path("qc", "edits.csv"), convert_options=pacsv.ConvertOptions(strings_can_be_null=False)
    )
    return {(r["edit"], r["code"], r["check"]): r for r in table.to_pylist()}


def edit_names() -> dict[str, str]:
    """``"Q06 SEX_CONFLICT"`` → ``"Q06 性别与诊断不符"``: the short Chinese name of each edit (charts, summaries)."""
    return {f"{e} {c}": f"{e} {r['name_zh']}" for (e, c, _), r in _edits().items()}


@cache
def _field_names() -> dict[str, str]:
    return {r["field"]: r["zh"] for r in pacsv.read_csv(data_path("qc", "fields.csv")).to_pylist()}


def _col(table: pa.Table, name: str, typ: pa.DataType) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, typ)
    col = table.column(name)
    col = one_array(col)
    return col if col.type == typ else col.cast(typ)


def _mask(arr) -> np.ndarray:
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _flat(values: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A list column flattened: the codes, their row and their 1-based position in the row's list."""
    if values.offset:
        values = pa.concat_arrays([values])
    flat = pc.list_flatten(values)
    parent = pc.list_parent_indices(values).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = values.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    pos = np.arange(len(flat), dtype=np.int64) - offsets[parent] + 1 if len(flat) else parent
    return flat, parent, pos


class _Hits:
    """Findings gathered edit by edit: (rows, edit, code, field, position, check)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, str, str, str, np.ndarray | None, str]] = []

    def add(
        self,
        rows: np.ndarray,
        edit: str,
        code: str,
        field: str,
        pos: np.ndarray | None = None,
        check: str = "",
    ) -> None:
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows
        if len(rows):
            self.parts.append((rows, edit, code, field, pos, check))


def qc_edits(table: pa.Table, codebook, lists: QcLists | None = None, *, duplicate=None) -> pa.Table:
    """QC edits Q01–Q14 (结算清单质控) of a discharge table: one row per finding, in row then edit order.

    Parameters
    ----------
    table : pa.Table          canonical discharges (``grouper.schema``); absent columns count as empty
    codebook : Codebook       the 医保版 dictionaries (``Codebook.load("chs-drg-1.1")``) for Q03 / Q11
    lists : QcLists, optional the QC lists (default the shipped ``codebooks/qc/``)
    duplicate : bool array, optional   rows repeating an earlier case_id (default: within ``table``)

    Returns
    -------
    pa.Table of :data:`QC_SCHEMA`.

    Examples
    --------
    >>> from grouper import Codebook
    >>> t = pa.table({"case_id": ["1"], "sex": pa.array([1], pa.int8()), "age_years": pa.array([40], pa.int16()),
    ...               "principal_dx": ["C53.900"]})
    >>> qc_edits(t, Codebook.load("chs-drg-1.1")).select(["edit", "code", "field"]).to_pylist()
    [{'edit': 'Q06', 'code': 'SEX_CONFLICT', 'field': 'principal_dx'}]
    """
    lists = lists or QcLists.load()
    n = table.num_rows
    hits = _Hits()
    case_id = _col(table, "case_id", pa.string())
    hits.add(
        duplicated(case_id) if duplicate is None else np.asarray(duplicate, bool),
        "Q01",
        "DUPLICATE_CASE",
        "case_id",
    )

    pdx = normalise_codes(_col(table, "principal_dx", pa.string()))
    pdx_missing = _mask(pdx.is_null())
    hits.add(pdx_missing, "Q02", "PDX_MISSING", "principal_dx")
    known = codebook.encode_dx(pdx) >= 0
    hits.add(~known & ~pdx_missing, "Q03", "PDX_UNKNOWN", "principal_dx")
    own = pc.replace_substring_regex(pdx, r"\+.*$", "")  # a dagger/asterisk pair is read as its dagger code
    invalid = (lists["gray_dx"].find(own) >= 0) | (lists["not_principal_dx"].find(own) >= 0)
    hits.add(invalid & ~pdx_missing, "Q04", "PDX_INVALID", "principal_dx")

    sex = _col(table, "sex", pa.int8()).to_numpy(zero_copy_only=False)
    sex = np.nan_to_num(np.asarray(sex, dtype=np.float64), nan=-128).astype(np.int64)
    hits.add(sex == -128, "Q05", "SEX_MISSING", "sex")
    hits.add((sex != -128) & (sex != 1) & (sex != 2), "Q05", "SEX_UNKNOWN", "sex")
    other, o_row, o_pos = _flat(normalise_codes(_col(table, "other_dx", pa.list_(pa.string()))))
    pproc = normalise_codes(_col(table, "principal_proc", pa.string()), "proc")
    oproc, p_row, p_pos = _flat(normalise_codes(_col(table, "other_procs", pa.list_(pa.string())), "proc"))
    sexed = (sex == 1) | (sex == 2)
    _by_code(hits, lists["sex_dx"], pdx, other, o_row, o_pos, sexed, sex, "Q06", "SEX_CONFLICT", "dx")

    age = _col(table, "age_years", pa.int16()).to_numpy(zero_copy_only=False)
    age = np.asarray(age, dtype=np.float64)
    days = np.asarray(_col(table, "age_days", pa.int32()).to_numpy(zero_copy_only=False), dtype=np.float64)
    weight = np.asarray(_col(table, "birth_weight_g", pa.int32()).to_numpy(zero_copy_only=False), np.float64)
    hits.add(np.isnan(age), "Q07", "AGE_MISSING", "age_years")
    hits.add((age == 0) & np.isnan(days), "Q07", "AGE_MISSING", "age_days")
    newborn = (age == 0) & (days <= 28)
    hits.add(newborn & ~(weight > 0), "Q08", "NEWBORN_DATA_MISSING", "birth_weight_g")
    _by_age(hits, lists["age_dx"], pdx, other, o_row, o_pos, age)

    adm, dis = _col(table, "admission_date", pa.date32()), _col(table, "discharge_date", pa.date32())
    span = pc.days_between(adm, dis)
    los = _col(table, "los_days", pa.int32())
    reversed_ = _mask(pc.less(span, 0))
    expected = pc.if_else(pc.less(span, 1), pa.scalar(1, span.type), span)
    los_bad = _mask(pc.less(los, 0)) | _mask(pc.not_equal(expected, los.cast(expected.type)))
    hits.add(reversed_, "Q10", "DATE_CONFLICT", "discharge_date")
    hits.add(los_bad & ~reversed_, "Q10", "DATE_CONFLICT", "los_days")

    hits.add(
        o_row[codebook.encode_dx(other) < 0],
        "Q11",
        "CODE_UNKNOWN",
        "other_dx",
        o_pos[codebook.encode_dx(other) < 0],
    )
    pproc_bad = (codebook.encode_proc(pproc) < 0) & _mask(pproc.is_valid())
    hits.add(pproc_bad, "Q11", "CODE_UNKNOWN", "principal_proc")
    bad = codebook.encode_proc(oproc) < 0
    hits.add(p_row[bad], "Q11", "CODE_UNKNOWN", "other_procs", p_pos[bad])
    _by_code(
        hits,
        lists["sex_proc"],
        pproc,
        oproc,
        p_row,
        p_pos,
        sexed,
        sex,
        "Q12",
        "DX_PROC_CONFLICT",
        "proc",
        "sex",
    )
    _proc_dates(hits, table, adm, dis, _mask(pproc.is_valid()))

    present = [c for c in FEE_COLUMNS if c in table.column_names]
    if present:
        fees = np.column_stack(
            [
                np.asarray(_col(table, c, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
                for c in present
            ]
        )
        any_fee = ~np.isnan(fees).all(axis=1)
        fen = np.rint(np.nan_to_num(fees) * 100).astype(np.int64).sum(axis=1)
        total = np.asarray(_col(table, "total_cost", pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        total_fen = np.rint(np.nan_to_num(total, nan=-1) * 100).astype(np.int64)
        hits.add(any_fee & (fen != total_fen), "Q13", "FEE_MISMATCH", "total_cost")
    mode = _col(table, "discharge_mode", pa.int8())
    hits.add(
        _mask(mode.is_valid()) & ~_mask(pc.is_in(mode, value_set=_MODES)),
        "Q14",
        "CODE_UNKNOWN",
        "discharge_mode",
    )
    ins = _col(table, "insurance_type", pa.string())
    hits.add(
        _mask(ins.is_valid()) & ~_mask(pc.is_in(ins, value_set=_INSURANCE)),
        "Q14",
        "CODE_UNKNOWN",
        "insurance_type",
    )
    return _assemble(hits, case_id, _col(table, "hospital_id", pa.string()), n)


def _proc_dates(
    hits: _Hits, table: pa.Table, adm: pa.Array, dis: pa.Array, has_principal: np.ndarray
) -> None:
    """Q12: a procedure date (``proc_dates``, the principal procedure's first) outside [admission, discharge]."""
    dates, row, pos = _flat(_col(table, "proc_dates", pa.list_(pa.date32())))
    if not len(dates):
        return
    day = np.asarray(pc.cast(dates, pa.int32()).to_numpy(zero_copy_only=False), np.float64)
    first = np.asarray(pc.cast(adm, pa.int32()).to_numpy(zero_copy_only=False), np.float64)[row]
    last = np.asarray(pc.cast(dis, pa.int32()).to_numpy(zero_copy_only=False), np.float64)[row]
    bad = (day < first) | (day > last)  # NaN (a date missing) compares False: nothing to check against
    principal = has_principal[row] & (pos == 1)
    hits.add(row[bad & principal], "Q12", "DX_PROC_CONFLICT", "principal_proc", check="date")
    other = bad & ~principal
    k = pos[other] - has_principal[row[other]]  # the position in other_procs
    hits.add(row[other], "Q12", "DX_PROC_CONFLICT", "other_procs", k, check="date")


def _by_code(hits, codes, principal, flat, row, pos, sexed, sex, edit, code, kind, check="") -> None:
    """Sex-specific codes (Q06 diagnoses, Q12 procedures) against the case's sex, principal then list."""
    field, other = ("principal_dx", "other_dx") if kind == "dx" else ("principal_proc", "other_procs")
    at = codes.find(principal)
    want = codes.column("sex", at, 0).astype(np.int64)
    hits.add((at >= 0) & sexed & (want != sex), edit, code, field, check=check)
    at = codes.find(flat)
    want = codes.column("sex", at, 0).astype(np.int64)
    bad = (at >= 0) & sexed[row] & (want != sex[row])
    hits.add(row[bad], edit, code, other, pos[bad], check=check)


def _by_age(hits, codes, principal, flat, row, pos, age) -> None:
    """Q09: age-specific diagnoses outside their age range (years, inclusive)."""
    for field, values, rows, where in (("principal_dx", principal, None, None), ("other_dx", flat, row, pos)):
        at = codes.find(values)
        a = age if rows is None else age[rows]
        lo, hi = codes.column("min_age_years", at), codes.column("max_age_years", at)
        bad = (at >= 0) & ~np.isnan(a) & ((a < lo) | (a > hi))
        if rows is None:
            hits.add(bad, "Q09", "AGE_DX_CONFLICT", field)
        else:
            hits.add(rows[bad], "Q09", "AGE_DX_CONFLICT", field, where[bad])


def _assemble(hits: _Hits, case_id: pa.Array, hospital: pa.Array, n: int) -> pa.Table:
    if not hits.parts:
        return QC_SCHEMA.empty_table()
    edits, names = _edits(), _field_names()
    rows = np.concatenate([p[0] for p in hits.parts])
    part = np.repeat(np.arange(len(hits.parts)), [len(p[0]) for p in hits.parts])
    pos = np.concatenate([p[4] if p[4] is not None else np.full(len(p[0]), -1) for p in hits.parts])
    order = np.lexsort((pos, part, rows))  # row, then edit in list order, then position
    rows, part, pos = rows[order], part[order], pos[order]
    zh, en = [], []
    for _, edit, code, field, _, check in hits.parts:
        e = edits[(edit, code, check)]
        fill = {"{field}": field, "{field_zh}": names.get(field, field)}
        z, g = e["message_zh"], e["message_en"]
        for k, v in fill.items():
            z, g = z.replace(k, v), g.replace(k, v)
        zh.append(z)
        en.append(g)
    at = np.where(pos >= 0, pos.astype(str), "")
    pos_zh = np.where(pos >= 0, np.char.add(np.char.add("第", at), "个"), "")  # 其他诊断第3个…
    pos_en = np.where(pos >= 0, np.char.add(" #", at), "")  # other_dx #3…
    msg_zh = np.char.replace(np.array(zh, dtype=object)[part].astype(str), "{pos}", pos_zh)
    msg_en = np.char.replace(np.array(en, dtype=object)[part].astype(str), "{pos}", pos_en)
    meta = np.array(
        [(p[1], p[2], edits[(p[1], p[2], p[5])]["severity"], p[3]) for p in hits.parts], dtype=object
    )
    take = pa.array(rows)
    return pa.table(
        {
            "case_id": case_id.take(take),
            "hospital_id": hospital.take(take),
            "row": pa.array(rows + 1, pa.int64()),
            "edit": pa.array(meta[part, 0].astype(str)),
            "code": pa.array(meta[part, 1].astype(str)),
            "severity": pa.array(meta[part, 2].astype(str)),
            "field": pa.array(meta[part, 3].astype(str)),
            "position": pa.array(pos, pa.int32(), mask=pos < 0),
            "message_zh": pa.array(msg_zh),
            "message_en": pa.array(msg_en),
        },
        schema=QC_SCHEMA,
    )
