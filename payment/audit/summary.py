"""The audit's headline table (汇总): one row per figure, with its Chinese label and unit."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from payment.audit.flags import FLAGS
from payment.audit.indicators import indicator_table

__all__ = ["summary_table"]

_HEAD = (
    ("cases", "病例数", "count"),
    ("grouped_cases", "入组病例数", "count"),
    ("grouping_rate", "入组率", "share"),
    ("n_groups", "组数", "count"),
    ("total_weight", "总权重", "weight"),
    ("cmi", "CMI（病例组合指数）", "index"),
    ("cost_index", "费用消耗指数", "index"),
    ("time_index", "时间消耗指数", "index"),
    ("low_risk_mortality", "低风险组死亡率", "share"),
    ("mean_cost", "次均费用", "yuan"),
    ("mean_los", "平均住院日", "days"),
    ("expected_payment", "预计支付", "yuan"),
    ("paid_cost", "对应医疗费用", "yuan"),
    ("gain_loss", "盈亏（预计支付 − 费用）", "yuan"),
)


def summary_table(tables, c, focus, qc_error, flagged, dip, hospital, settings, notes, insurer) -> pa.Table:
    """Headline figures of the audited cases (``focus``): volume, indicators, 盈亏, QC and flags by kind
    (``flagged``: ``cases`` with a finding to review, and the findings per flag, ``kinds``)."""
    scope = {"scope": np.full(len(focus), "all", dtype=object)}
    head = indicator_table(c, scope, focus, relative_cmi=dip).to_pylist()[0]
    rows = [(k, zh, head.get(k), unit) for k, zh, unit in _HEAD]
    qc = tables["qc"]
    err = pc.equal(qc.column("severity"), "error")
    rows.append(
        ("qc_error_cases", "质控错误病例数（不能按原样入组/支付）", float(qc_error[focus].sum()), "count")
    )
    rows.append(
        (
            "qc_warning_cases",
            "质控提示病例数",
            float(pc.count_distinct(pc.filter(qc.column("row"), pc.invert(err))).as_py()),
            "count",
        )
    )
    blocked = np.nansum(np.where(qc_error & focus, c["cost"], 0.0))
    rows.append(("qc_error_cost", "质控错误病例医疗费用", float(blocked), "yuan"))
    rows.append(("flagged_cases", "疑点病例数（待核查）", float(flagged["cases"]), "count"))
    counts = flagged["kinds"]
    for flag, (zh, _) in FLAGS.items():
        rows.append((f"flag_{flag}", zh, float(counts.get(flag, 0)), "count"))
    if insurer is not None:
        for k, (zh, v) in insurer.items():
            rows.append(
                (k, zh, v, "share" if k.startswith("agree") else "count" if k.endswith("cases") else "yuan")
            )
    rows.append(("hospital", "自查医院" if hospital else "范围（全部医院）", None, hospital or "all"))
    for note in notes:
        rows.append(("note", note, None, "text"))
    rows.append(
        (
            "note",
            "疑点仅为待核查线索，不是违规结论 / a flag is a finding to review, never a verdict",
            None,
            "text",
        )
    )
    for key in settings.assumptions():
        rows.append(("assumption", f"假设值（无文件依据）：{key} = {settings[key]}", None, "text"))
    value = [None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for _, _, v, _ in rows]
    return pa.table(
        {
            "item": pa.array([r[0] for r in rows]),
            "label": pa.array([r[1] for r in rows]),
            "value": pa.array(value, pa.float64()),
            "unit": pa.array([r[3] for r in rows]),
        }
    )
