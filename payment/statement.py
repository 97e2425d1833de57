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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grouper.errors import InputError
from grouper.io.writer import IfExists, atomic_folder, write_results, write_text
from payment.policy import Policy

__all__ = ["statement", "write_statement"]

#: The chain after the points: (hospitals.csv column, 步骤, step, the policy keys behind it, the formula).
#: A step's clause is the citation of the first of its keys the policy values (document, clause), else what the
#: engine assumed for it, and always the formula of docs/formulas.md that computes it.
_STEPS = (
    ("allocated", "分配额", "allocated = points × settlement point value",
     ("point_value.regime", "point_value.form"), "docs/formulas.md §7: allocated = hospital points × V"),
    ("assessment_coef", "考核系数", "assessment coefficient",
     ("settlement.quality_reserve",), "docs/formulas.md §7: × 考核系数 (hospitals table, assessment_coef)"),
    ("audit_deduction", "审核扣款", "audit deductions",
     (), "docs/formulas.md §6–§7: monthly audit deductions (--deductions) and the hospitals table's"),
    ("band_adjustment", "结余留用/超支分担", "surplus or overspend band adjustment",
     ("settlement.band_mode", "settlement.surplus_bands", "settlement.overspend_bands"),
     "docs/formulas.md §8: retain × surplus or fund_share × overspend, band by band"),
    ("payment_due", "应付", "payment due",
     ("settlement.band_mode",), "docs/formulas.md §7: allocated × 考核系数 − deductions + band adjustment"),
    ("prepaid", "已预付", "prepaid during the year",
     ("settlement.prepay_ratio", "settlement.quality_reserve"), "docs/formulas.md §6: Σ monthly × prepay_ratio"),
    ("clearing", "清算", "clearing = payment due − prepaid",
     ("settlement.prepay_ratio",), "docs/formulas.md §7: clearing = payment due − prepaid"),
)  # fmt: skip


def _clause(policy: Policy, keys: str | tuple[str, ...] | None, formula: str = "") -> str:
    """``key: citation`` of the first key the policy values (an engine default when it values none), then the
    formula; never blank."""
    keys = (keys,) if isinstance(keys, str) else tuple(keys or ())
    cited = ""
    for key in keys:
        try:
            cited = f"{key}: {policy.source_of(key)}"
            break
        except KeyError:  # not valued in the file: an engine default (among the assumptions) or absent
            if key in policy.defaults:
                cited = f"{key} = {policy.defaults[key]}"
                break
    return "; ".join(part for part in (cited, formula) if part) or "engine default"


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
                                "policy": _clause(policy, "scores.score_scale", "docs/formulas.md §3: case points")})  # fmt: skip
            rows.append(base | {"pool": pool, "step": "settlement point value", "步骤": "结算点值",
                                "value": p.get("settlement_point_value_published"),
                                "policy": _clause(policy, ("point_value.form", "point_value.regime"),
                                                  "docs/formulas.md §2: V = (D / r) / ΣP or the fixed value")})  # fmt: skip
        for col, zh, en, keys, formula in _STEPS:
            rows.append(
                base
                | {
                    "pool": "",
                    "step": en,
                    "步骤": zh,
                    "value": h.get(col),
                    "policy": _clause(policy, keys, formula),
                }
            )
    return pd.DataFrame(rows, columns=["hospital_id", "name", "pool", "step", "步骤", "value", "policy"])


def write_statement(
    table: pd.DataFrame, out: str | os.PathLike, *, if_exists: IfExists = "replace"
) -> list[Path]:
    """``statement.xlsx`` (one sheet, header frozen) and ``statement.html`` (self-contained, one section per
    hospital) in ``out``, written together through the one writer (all or nothing)."""
    out = Path(out)
    names = ["statement.xlsx", "statement.html"]
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
    text = pa.Table.from_pandas(table.fillna("").astype(str), preserve_index=False)
    with atomic_folder(out, names, if_exists=if_exists) as tmp:
        write_results(text, tmp / names[0], sheet="对账单 statement")
        write_text("\n".join(parts) + "\n</html>\n", tmp / names[1])
    return [out / n for n in names]
