"""Comparison with the insurer's returned grouping (医保反馈分组结果), docs/audit.md §3.

The insurer's file (CSV, Excel or Parquet; Chinese, 4101A/3605 or canonical headers, kind ``insurer`` of
``codebooks/records/table_aliases.csv``) is matched to the hospital's cases by ``case_id``. Each difference gets the first reason
that applies — 1 MISSING (one side only), 2 CODING_CHANGED (principal diagnosis or procedure differ), 3
CODE_MAPPING (a code of the case is unknown or gray here), 4 CC_MCC (same ADRG, another severity), 5
SCHEME_VERSION (the insurer's group is not in this codebook or catalogue), 6 POINTS_OR_PAYMENT (same group),
7 UNEXPLAINED — and its payment impact (insurer − hospital, yuan).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codes import normalise_codes
from grouper.errors import InputError
from grouper.io.tables import read_table

__all__ = ["INSURER_SCHEMA", "REASONS", "compare_insurer", "read_insurer"]

#: Reasons in the order they are tried (docs/audit.md §3) → 中文.
REASONS = {
    "MISSING_AT_INSURER": "医保方无此病例",
    "MISSING_AT_HOSPITAL": "医院方无此病例",
    "CODING_CHANGED": "主要诊断或主要手术操作不同（上传后编码变更）",
    "CODE_MAPPING": "编码映射不同（未知编码或灰码）",
    "CC_MCC": "同一ADRG，并发症/合并症认定不同",
    "SCHEME_VERSION": "分组方案版本或地方细分不同（病组仅存在于一方）",
    "POINTS_OR_PAYMENT": "同一病组，点数或支付不同（偏差类型、系数或点值）",
    "UNEXPLAINED": "原因不明",
}
INSURER_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("reason", pa.string()),
        ("reason_zh", pa.string()),
        ("group", pa.string()),
        ("insurer_group", pa.string()),
        ("points", pa.float64()),
        ("insurer_points", pa.float64()),
        ("expected_payment", pa.float64()),
        ("insurer_payment", pa.float64()),
        ("payment_impact", pa.float64()),
    ]
)
_TOL = 0.005  # points and yuan agree to half a fen / point


#: Canonical columns of the insurer's file (aliases: ``codebooks/records/table_aliases.csv``, kind ``insurer``).
_TEXT = ("case_id", "group", "mdc", "adrg", "principal_dx", "principal_proc")


def read_insurer(path: str | Path, *, encoding: str | None = None) -> pa.Table:
    """Read the insurer's returned grouping (CSV UTF-8/GBK, Excel, Parquet): ``case_id`` and ``group``, ``points``
    or ``payment`` (and ``mdc``, ``adrg``, ``principal_dx``, ``principal_proc`` when present) under their
    canonical, 4101A/3605 or Chinese headers."""
    table = read_table(path, kind="insurer", text=_TEXT, required=("case_id",), encoding=encoding)
    if not {"group", "points", "payment"} & set(table.column_names):
        raise InputError(
            f"{path}: no group, points or payment column (病组编码, 点数, 支付标准, …)", path=path
        )
    return table


def _num(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, np.nan)
    col = t.column(name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pd.to_numeric(pd.Series(col.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
    return np.asarray(col.to_numpy(zero_copy_only=False), np.float64)


def _text(t: pa.Table, name: str) -> np.ndarray:
    if name not in t.column_names:
        return np.full(t.num_rows, None, dtype=object)
    return np.asarray(t.column(name).cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)


def _objects(series: pd.Series) -> list:
    """Text values with None for the gaps an outer join leaves (NaN)."""
    return series.astype(object).where(series.notna(), None).tolist()


def compare_insurer(
    cases: pa.Table, insurer: pa.Table, known_groups: pa.Array, discharges: pa.Table, qc: pa.Table, dip: bool
):
    """Differences between the hospital's cases and the insurer's grouping, and the agreement summary.

    Parameters
    ----------
    cases : the audit's ``cases`` table (case_id, mdc, adrg, group, points, expected_payment)
    insurer : :func:`read_insurer` output (or a table with those columns)
    known_groups : the group codes of this codebook or catalogue
    discharges : the canonical discharges of ``cases`` (principal_dx, principal_proc), same rows
    qc : the audit's QC table (Q03/Q04/Q11 findings mark reason 3)
    dip : DIP has no MDC/ADRG: those agreement rates are null

    Returns
    -------
    (pa.Table of :data:`INSURER_SCHEMA`, dict item → (中文, value))
    """
    ours = pd.DataFrame({
        "case_id": _text(cases, "case_id"), "group": _text(cases, "group"), "mdc": _text(cases, "mdc"),
        "points": _num(cases, "points"), "expected": _num(cases, "expected_payment"),
        "pdx": _text(pa.table({"x": normalise_codes(discharges.column("principal_dx"))}), "x"),
        "pproc": _text(pa.table({"x": normalise_codes(discharges.column("principal_proc"), "proc")}), "x"),
        "row": np.arange(cases.num_rows),
    })  # fmt: skip
    ours = ours[ours["case_id"].notna()].drop_duplicates("case_id")
    ins = pd.DataFrame({
        "case_id": _text(insurer, "case_id"), "i_group": _text(insurer, "group"), "i_mdc": _text(insurer, "mdc"),
        "i_adrg": _text(insurer, "adrg"), "i_points": _num(insurer, "points"), "i_payment": _num(insurer, "payment"),
        "i_pdx": _text(pa.table({"x": normalise_codes(insurer.column("principal_dx"))}), "x") if "principal_dx" in insurer.column_names else None,
        "i_pproc": _text(pa.table({"x": normalise_codes(insurer.column("principal_proc"), "proc")}), "x") if "principal_proc" in insurer.column_names else None,
    })  # fmt: skip
    ins = ins[ins["case_id"].notna() & (ins["case_id"] != "")].drop_duplicates("case_id")
    m = ours.merge(ins, on="case_id", how="outer", indicator=True, sort=False)
    both = (m["_merge"] == "both").to_numpy()
    g, ig = m["group"].fillna("").to_numpy(str), m["i_group"].fillna("").to_numpy(str)
    has_ig = "group" in insurer.column_names
    same_group = (g == ig) | (not has_ig)
    dp = np.abs(m["points"].to_numpy() - m["i_points"].to_numpy())
    dpay = np.abs(m["expected"].to_numpy() - m["i_payment"].to_numpy())
    points_differ = dp > _TOL  # NaN compares False: a side without points is not a difference
    pay_differ = dpay > _TOL
    differ = ~both | ~same_group | points_differ | pay_differ
    coding = np.zeros(len(m), bool)
    for a, b in (("pdx", "i_pdx"), ("pproc", "i_pproc")):
        if m[b].notna().any():
            coding |= m[a].fillna("").to_numpy(str) != m[b].fillna("").to_numpy(str)
    bad_rows = (
        pc.filter(
            qc.column("row"),
            pc.is_in(qc.column("code"), value_set=pa.array(["PDX_UNKNOWN", "PDX_INVALID", "CODE_UNKNOWN"])),
        ).to_numpy()
        - 1
    )
    mapped = np.isin(m["row"].fillna(-1).to_numpy(np.int64), bad_rows)
    version = (ig != "") & ~np.isin(ig, np.asarray(known_groups.to_pylist(), dtype=str))
    # 4 needs both groups in this codebook: a group only the insurer knows is reason 5, whatever its ADRG
    cc = (
        (not dip)
        & ~version
        & (pd.Series(g).str[:3].to_numpy(str) == pd.Series(ig).str[:3].to_numpy(str))
        & (g != "")
        & (ig != "")
    )
    reason = np.select(
        [m["_merge"].to_numpy() == "left_only", m["_merge"].to_numpy() == "right_only", coding, mapped,
         cc & ~same_group, version, same_group],
        ["MISSING_AT_INSURER", "MISSING_AT_HOSPITAL", "CODING_CHANGED", "CODE_MAPPING", "CC_MCC", "SCHEME_VERSION",
         "POINTS_OR_PAYMENT"],
        "UNEXPLAINED",
    )  # fmt: skip
    impact = m["i_payment"].to_numpy() - m["expected"].to_numpy()
    d = m[differ]
    out = pa.table(
        {
            "case_id": pa.array(_objects(d["case_id"]), pa.string()),
            "reason": pa.array(reason[differ]),
            "reason_zh": pa.array([REASONS[r] for r in reason[differ]]),
            "group": pa.array(_objects(d["group"]), pa.string()),
            "insurer_group": pa.array(_objects(d["i_group"]), pa.string()),
            "points": pa.array(d["points"].to_numpy(), from_pandas=True),
            "insurer_points": pa.array(d["i_points"].to_numpy(), from_pandas=True),
            "expected_payment": pa.array(d["expected"].to_numpy(), from_pandas=True),
            "insurer_payment": pa.array(d["i_payment"].to_numpy(), from_pandas=True),
            "payment_impact": pa.array(impact[differ], from_pandas=True),
        },
        schema=INSURER_SCHEMA,
    )
    out = out.take(
        pa.array(np.argsort(out.column("case_id").to_numpy(zero_copy_only=False).astype(str), kind="stable"))
    )
    mb = m[both]
    gb, igb = g[both], ig[both]

    def rate(x: np.ndarray) -> float | None:
        return float(x.mean()) if len(x) else None

    i_mdc = mb["i_mdc"].fillna("").to_numpy(str)
    i_mdc = np.where(
        i_mdc == "", pd.Series(igb).str[:1].to_numpy(str), pd.Series(i_mdc).str[-1:].to_numpy(str)
    )
    summary = {
        "insurer_matched_cases": ("双方均有的病例数", float(both.sum())),
        "insurer_missing_cases": ("仅一方有的病例数", float((~both).sum())),
        "insurer_difference_cases": ("存在差异的病例数", float(differ.sum())),
        "agree_mdc": (
            "MDC一致率",
            None
            if dip or not has_ig
            else rate(pd.Series(mb["mdc"].fillna("")).str[-1:].to_numpy(str) == i_mdc),
        ),
        "agree_adrg": (
            "ADRG一致率",
            None
            if dip or not has_ig
            else rate(pd.Series(gb).str[:3].to_numpy(str) == pd.Series(igb).str[:3].to_numpy(str)),
        ),
        "agree_group": ("病组一致率", rate(gb == igb) if has_ig else None),
        "agree_points": (
            "点数一致率",
            rate(np.abs(mb["points"].to_numpy() - mb["i_points"].to_numpy()) <= _TOL)
            if "points" in insurer.column_names
            else None,
        ),
        "insurer_payment_impact": ("差异病例支付影响合计（医保 − 医院）", float(np.nansum(impact[differ]))),
    }
    return out, summary
