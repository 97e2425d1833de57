"""Compare two settlements (结算对比): a baseline and a scenario folder written by ``drgdip settle``.

Differences per hospital (``hospitals.csv``), per hospital and pool and per pool (``cases.parquet`` and
``region.json``), and a summary, each as ``a``, ``b``, ``b − a``. Money and points are read as decimals, so a
difference is exact; nothing is recomputed, only read.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grouper.errors import InputError, OutputError

__all__ = ["HOSPITAL_FIELDS", "POOL_FIELDS", "Comparison", "compare_settlements", "write_comparison"]

#: Columns of hospitals.csv compared per hospital.
HOSPITAL_FIELDS = ("points", "allocated", "assessment_coef", "audit_deduction", "band_adjustment", "payment_due",
                   "prepaid", "clearing")  # fmt: skip
#: Values of region.json ``pools.<pool>`` compared per pool.
POOL_FIELDS = ("total_points", "budget_point_value_published", "settlement_point_value_published", "allocated",
               "kept_by_fund")  # fmt: skip
_SUMMARY = ("payment_due", "prepaid", "clearing")


@dataclass(frozen=True)
class Comparison:
    """Two settlements side by side: tables with ``<field>_a``, ``<field>_b``, ``<field>_diff`` columns."""

    summary: pd.DataFrame
    hospitals: pd.DataFrame
    hospital_pools: pd.DataFrame
    pools: pd.DataFrame


def _region(folder: Path) -> dict:
    path = folder / "region.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise InputError(f"{folder}: not a settlement folder (no region.json)", path=str(folder)) from None


def _hospitals(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "hospitals.csv"
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return {row["hospital_id"]: row for row in csv.DictReader(f)}
    except OSError:
        raise InputError(f"{folder}: not a settlement folder (no hospitals.csv)", path=str(folder)) from None


def _by_hospital_pool(folder: Path, pools: list[str]) -> dict[tuple[str, str], dict[str, Decimal]]:
    """Points and standard and fund payments summed per hospital and pool over the cases paid by points."""
    t = pq.read_table(folder / "cases.parquet", columns=["hospital_id", "insurance_type", "route", "points",
                                                          "standard_payment", "fund_payment"])  # fmt: skip
    frame = t.filter(pc.is_valid(t["points"])).to_pandas()
    frame["pool"] = frame["insurance_type"].astype(str) if pools != ["all"] else "all"
    frame = frame[frame["pool"].isin(pools)]
    sums = frame.groupby(["hospital_id", "pool"], observed=True)[
        ["points", "standard_payment", "fund_payment"]
    ].sum()
    return {
        key: {k: Decimal(repr(round(float(v), 6))) for k, v in row.items()} for key, row in sums.iterrows()
    }


def _side_by_side(keys: list, a: dict, b: dict, fields: tuple[str, ...], index: list[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        ra, rb = a.get(key), b.get(key)
        row = dict(zip(index, key if isinstance(key, tuple) else (key,), strict=True))
        row["in"] = "both" if ra and rb else ("a" if ra else "b")
        for f in fields:
            va = _num(ra.get(f)) if ra else None
            vb = _num(rb.get(f)) if rb else None
            row[f"{f}_a"], row[f"{f}_b"] = va, vb
            row[f"{f}_diff"] = None if va is None or vb is None else vb - va
        rows.append(row)
    return pd.DataFrame(
        rows, columns=[*index, "in", *(f"{f}_{s}" for f in fields for s in ("a", "b", "diff"))]
    )


def _num(v) -> Decimal | None:
    if v is None or v == "":
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))


def compare_settlements(a: str | os.PathLike, b: str | os.PathLike) -> Comparison:
    """Compare settlement folders ``a`` (baseline) and ``b`` (scenario); every hospital and pool of either appears.

    Examples
    --------
    >>> cmp = compare_settlements("out/base", "out/high-2.5")     # doctest: +SKIP
    >>> cmp.hospitals[["hospital_id", "payment_due_diff"]]       # doctest: +SKIP
    """
    a, b = Path(a), Path(b)
    ra, rb = _region(a), _region(b)
    ha, hb = _hospitals(a), _hospitals(b)
    hospitals = _side_by_side(sorted(ha.keys() | hb.keys()), ha, hb, HOSPITAL_FIELDS, ["hospital_id"])
    pa_, pb_ = ra.get("pools", {}), rb.get("pools", {})
    pools = _side_by_side(sorted(pa_.keys() | pb_.keys()), pa_, pb_, POOL_FIELDS, ["pool"])
    ca, cb = _by_hospital_pool(a, sorted(pa_)), _by_hospital_pool(b, sorted(pb_))
    hp = _side_by_side(sorted(ca.keys() | cb.keys()), ca, cb, ("points", "standard_payment", "fund_payment"),
                       ["hospital_id", "pool"])  # fmt: skip
    rows = [
        {"item": "policy_sha256", "a": ra.get("policy_sha256"), "b": rb.get("policy_sha256"), "diff": None},
        {
            "item": "cases",
            "a": ra.get("cases"),
            "b": rb.get("cases"),
            "diff": rb.get("cases", 0) - ra.get("cases", 0),
        },
    ]
    for f in _SUMMARY:
        va, vb = _num(ra["totals"].get(f)), _num(rb["totals"].get(f))
        rows.append({"item": f, "a": va, "b": vb, "diff": None if va is None or vb is None else vb - va})
    changed = hospitals[[f"{f}_diff" for f in ("payment_due", "clearing")]].ne(0).any(axis=1).sum()
    rows.append({"item": "hospitals_changed", "a": len(ha), "b": len(hb), "diff": int(changed)})
    only = set(ra.get("assumptions", [])) ^ set(rb.get("assumptions", []))
    rows.append(
        {"item": "assumptions_differing", "a": None, "b": None, "diff": "; ".join(sorted(only)) or None}
    )
    return Comparison(pd.DataFrame(rows), hospitals, hp, pools)


_SHEETS = {"summary": "汇总 summary", "hospitals": "医院 hospitals", "hospital_pools": "医院×基金池",
           "pools": "基金池 pools"}  # fmt: skip


def write_comparison(cmp: Comparison, out: str | os.PathLike) -> list[Path]:
    """Write the comparison: an ``.xlsx`` workbook (one sheet per table), else a folder of CSV files (UTF-8 with
    BOM, so Excel on Windows reads the Chinese); returns the files written."""
    out = Path(out)
    tables = {name: getattr(cmp, name) for name in _SHEETS}
    try:
        if out.suffix.lower() == ".xlsx":
            with pd.ExcelWriter(out, engine="openpyxl") as xw:
                for name, frame in tables.items():
                    _excel_ready(frame).to_excel(
                        xw, sheet_name=_SHEETS[name], index=False, freeze_panes=(1, 0)
                    )
            return [out]
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in tables.items():
            path = out / f"compare_{name}.csv"
            _csv_ready(frame).to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")
            written.append(path)
        return written
    except OSError as exc:
        raise OutputError(f"{out}: cannot write: {exc.strerror}", path=str(out)) from None


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimals as numbers Excel can sum (the CSV files keep them exact)."""
    return frame.apply(lambda c: c.map(lambda v: float(v) if isinstance(v, Decimal) else v))


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimals written out in full (``0.00``, never ``0E-2``)."""
    return frame.apply(lambda c: c.map(lambda v: format(v, "f") if isinstance(v, Decimal) else v))
