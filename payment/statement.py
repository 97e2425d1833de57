"""Per-hospital statement (医院结算对账单): the chain from a hospital's points to its clearing, step by step.

For each hospital: its points and the point value of each pool, then allocated → 考核系数 and audit deductions →
surplus/overspend band adjustment → payment due → prepaid → clearing, each step with the policy key and the
clause it cites (:meth:`Policy.source_of`). Read from a settlement folder (nothing is recomputed); written as one
Excel sheet and one self-contained HTML page.
"""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grouper.errors import InputError, OutputError
from payment.policy import Policy

__all__ = ["statement", "write_statement"]

#: The chain after the points: (hospitals.csv column, 步骤, step, the policy key behind it).
_STEPS = (
    ("allocated", "分配额", "allocated = points × settlement point value", "point_value.regime"),
    ("assessment_coef", "考核系数", "assessment coefficient", None),
    ("audit_deduction", "审核扣款", "audit deductions", None),
    ("band_adjustment", "结余留用/超支分担", "surplus or overspend band adjustment", "settlement.band_mode"),
    ("payment_due", "应付", "payment due", None),
    ("prepaid", "已预付", "prepaid during the year", "settlement.prepay_ratio"),
    ("clearing", "清算", "clearing = payment due − prepaid", None),
)


def _clause(policy: Policy, key: str | None) -> str:
    if key is None:
        return ""
    try:
        return f"{key}: {policy.source_of(key)}"
    except KeyError:  # an engine default: its source is among the assumptions
        return f"{key}: {policy.defaults.get(key, 'engine default')}"


def statement(settlement: str | os.PathLike, policy: Policy) -> pd.DataFrame:
    """One row per hospital and step: ``hospital_id, name, pool, step, 步骤, value, policy``."""
    folder = Path(settlement)
    try:
        region = json.loads((folder / "region.json").read_text(encoding="utf-8"))
        with (folder / "hospitals.csv").open(encoding="utf-8-sig", newline="") as f:
            hospitals = list(csv.DictReader(f))
    except OSError:
        raise InputError(f"{folder}: not a settlement folder", path=str(folder)) from None
    cases = pq.read_table(folder / "cases.parquet", columns=["hospital_id", "insurance_type", "points"])
    frame = cases.filter(pc.is_valid(cases["points"])).to_pandas()
    pools = sorted(region["pools"])
    frame["pool"] = frame["insurance_type"].astype(str) if pools != ["all"] else "all"
    points = frame[frame["pool"].isin(pools)].groupby(["hospital_id", "pool"], observed=True)["points"].sum()
    rows = []
    for h in hospitals:
        base = {"hospital_id": h["hospital_id"], "name": h.get("name", "")}
        for pool in pools:
            p = region["pools"][pool]
            got = float(points.get((h["hospital_id"], pool), 0.0))
            rows.append(base | {"pool": pool, "step": "points", "步骤": "病例点数", "value": f"{got:.4f}",
                                "policy": _clause(policy, "scores.score_scale")})  # fmt: skip
            rows.append(base | {"pool": pool, "step": "settlement point value", "步骤": "结算点值",
                                "value": p.get("settlement_point_value_published"),
                                "policy": _clause(policy, "point_value.form")})  # fmt: skip
        for col, zh, en, key in _STEPS:
            rows.append(
                base
                | {"pool": "", "step": en, "步骤": zh, "value": h.get(col), "policy": _clause(policy, key)}
            )
    return pd.DataFrame(rows, columns=["hospital_id", "name", "pool", "step", "步骤", "value", "policy"])


def write_statement(table: pd.DataFrame, out: str | os.PathLike) -> list[Path]:
    """``statement.xlsx`` (one sheet) and ``statement.html`` (self-contained, one section per hospital) in ``out``."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        xlsx, page = out / "statement.xlsx", out / "statement.html"
        with pd.ExcelWriter(xlsx, engine="openpyxl") as xw:
            table.to_excel(xw, sheet_name="对账单 statement", index=False, freeze_panes=(1, 0))
        parts = ["<!doctype html><html lang='zh'><meta charset='utf-8'><title>医院结算对账单</title>",
                 "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #999;"
                 "padding:2px 6px}td.v{text-align:right}</style><h1>医院结算对账单 Hospital statement</h1>"]  # fmt: skip
        for hid, rows in table.groupby("hospital_id", sort=True):
            parts.append(f"<h2>{html.escape(str(hid))} {html.escape(str(rows['name'].iloc[0]))}</h2><table>")
            parts.append(
                "<tr><th>基金池 pool</th><th>步骤</th><th>step</th><th>value</th><th>政策 policy</th></tr>"
            )
            for r in rows.itertuples():
                cells = [r.pool, r.步骤, r.step]
                parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
                             + f"<td class='v'>{html.escape(str(r.value))}</td><td>{html.escape(str(r.policy))}</td></tr>")  # fmt: skip
            parts.append("</table>")
        page.write_text("\n".join(parts) + "\n</html>\n", encoding="utf-8")
        return [xlsx, page]
    except OSError as exc:
        raise OutputError(f"{out}: cannot write: {exc.strerror}", path=str(out)) from None
