"""``report.html``: one self-contained page a 医保办 clerk reads without training (no network at view time).

Headline figures first (cases, 入组率, CMI, 盈亏, flagged cases by kind), then the charts (inline SVG, :mod:`.charts`),
then sortable, filterable tables of the flagged cases and the QC problems (a small inline script of our own).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from grouper import __version__
from payment.audit.charts import flags_chart, gain_loss_chart, index_chart, volume_chart
from payment.audit.labels import kind, label
from payment.audit.qc import edit_names

__all__ = ["HTML_MAX_ROWS", "format_value", "render_report", "write_report"]

#: Rows of a table shown on the page (the workbook and the Parquet files hold them all).
HTML_MAX_ROWS = 2000
#: Headline figures, in order: summary item → shown format.
HEADLINE = ("cases", "grouping_rate", "cmi", "gain_loss", "flagged_cases", "qc_error_cases")

_CSS = """
body{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:24px;margin-bottom:4px} h2{font-size:19px;border-bottom:2px solid #2e86c1;padding-bottom:4px;margin-top:32px}
.note{color:#555;font-size:13px} .warn{background:#fef5e7;border-left:4px solid #f39c12;padding:8px 12px;font-size:14px}
.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.kpi{border:1px solid #d6dbdf;border-radius:6px;padding:12px 16px;min-width:150px;background:#f8f9f9}
.kpi .k{font-size:13px;color:#555} .kpi .v{font-size:24px;font-weight:bold;margin-top:4px}
.kpi .v.neg{color:#c0392b} .kpi .v.pos{color:#27ae60}
figure.chart{margin:16px 0} figure.chart svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0} th,td{border:1px solid #d6dbdf;padding:3px 6px}
th{background:#eaf2f8;cursor:pointer;position:sticky;top:0} td.n{text-align:right;white-space:nowrap}
input.filter{margin:4px 0;padding:4px;width:320px}
"""
_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.dataset.dir !== 'asc';
      th.dataset.dir = asc ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y), 'zh');
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('input.filter').forEach(function (input) {
  var table = document.getElementById(input.dataset.table);
  input.addEventListener('input', function () {
    var q = input.value.trim().toLowerCase();
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      r.style.display = !q || r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
});
"""


def format_value(value, fmt: str) -> str:
    """A figure as the page shows it: counts with thousands separators, shares in %, 元 to the fen.

    >>> format_value(12345, "count"), format_value(0.99131, "share"), format_value(-1234.5, "yuan")
    ('12,345', '99.13%', '-1,234.50 元')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if fmt == "count":
        return f"{round(value):,}"
    if fmt == "share":
        return f"{value * 100:.2f}%"
    if fmt == "yuan":
        return f"{value:,.2f} 元"
    if fmt in ("index", "weight", "number"):
        return f"{value:,.4f}"
    if fmt == "days":
        return f"{value:,.1f}"
    return str(value)


def _table(table: pa.Table, table_id: str, columns: list[str]) -> str:
    shown = table.select([c for c in columns if c in table.column_names])
    more = table.num_rows - min(table.num_rows, HTML_MAX_ROWS)
    shown = shown.slice(0, HTML_MAX_ROWS)
    head = "".join(f"<th>{html.escape(label(c))}</th>" for c in shown.column_names)
    fmts = [kind(c) for c in shown.column_names]
    cols = [c.to_pylist() for c in shown.columns]
    rows = []
    for r in zip(*cols, strict=True):
        cells = []
        for v, f in zip(r, fmts, strict=True):
            raw = "" if v is None else v
            if isinstance(raw, float) and math.isnan(raw):
                raw = ""
            text = format_value(v, f) if f != "text" else ("" if v is None else str(v))
            cls = ' class="n"' if f != "text" else ""
            cells.append(f'<td{cls} data-v="{html.escape(str(raw))}">{html.escape(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        f'<p class="note">仅显示前 {HTML_MAX_ROWS:,} 行，另有 {more:,} 行见 audit.xlsx 与 Parquet 文件。</p>'
        if more
        else ""
    )
    filt = f'<input class="filter" data-table="{table_id}" placeholder="筛选（输入任意文字）">'
    return f'{filt}<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>{note}'


def render_report(tables: dict[str, pa.Table], *, scheme: str, notes: list[str] = ()) -> str:
    """The report page as a string (see the module docstring for its parts)."""
    summary = tables["summary"].to_pylist()
    by_item = {r["item"]: r for r in summary if r["item"] not in ("note", "assumption")}
    scope = by_item.get("hospital", {}).get("unit", "all")
    title = "医院自查报告" + ("（全部医院）" if scope == "all" else f"：{scope}")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(f'<p class="note">分组方案：{html.escape(scheme)} · drgdip {__version__}</p>')
    parts.append('<p class="warn">疑点仅为待核查线索，不是违规结论。请结合病历核实后再作处理。</p>')
    kpis = []
    for item in HEADLINE:
        r = by_item[item]
        v = r["value"]
        cls = (
            " neg"
            if item == "gain_loss" and v is not None and v < 0
            else " pos"
            if item == "gain_loss" and v
            else ""
        )
        kpis.append(
            f'<div class="kpi" data-item="{item}"><div class="k">{html.escape(r["label"])}</div>'
            f'<div class="v{cls}">{html.escape(format_value(v, r["unit"]))}</div></div>'
        )
    parts.append('<div class="kpis">' + "".join(kpis) + "</div>")
    flag_rows = [(r["label"], int(r["value"] or 0)) for r in summary if r["item"].startswith("flag_")]
    kinds = "".join(f"<tr><td>{html.escape(k)}</td><td class='n'>{c:,}</td></tr>" for k, c in flag_rows)
    parts.append(
        f'<h2>疑点病例（按类型）</h2><table id="flag-kinds"><thead><tr><th>疑点</th><th>条数</th></tr></thead><tbody>{kinds}</tbody></table>'
    )
    for r in summary:
        if r["item"] in ("note", "assumption"):
            parts.append(f'<p class="note">{html.escape(r["label"])}</p>')
    for n in notes:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
    qc = tables["qc"]
    qc_counts = []
    if qc.num_rows:
        names = edit_names()
        keys = pc.binary_join_element_wise(qc.column("edit"), qc.column("code"), " ")
        vc = pc.value_counts(keys).to_pylist()
        qc_counts = sorted(
            ((f"质控 {names.get(v['values'], v['values'])}", int(v["counts"])) for v in vc),
            key=lambda x: (-x[1], x[0]),
        )
    review = [(k, c) for k, c in flag_rows if c and "信息" not in k]
    charts = [
        (
            "gain-loss",
            "病组盈亏",
            gain_loss_chart(tables["groups"]),
            "未提供支付政策（--policy）：无预计支付，不画盈亏图。",
        ),
        ("index", "科室费用与时间消耗指数", index_chart(tables["departments"]), "无科室数据。"),
        ("volume", "科室病例数与CMI", volume_chart(tables["departments"]), "无科室数据。"),
        ("flags", "疑点与质控问题", flags_chart(review + qc_counts), "无疑点与质控问题。"),
    ]
    for key, head, svg, empty in charts:
        parts.append(f"<h2>{html.escape(head)}</h2>")
        parts.append(
            f'<figure class="chart" data-chart="{key}">{svg}</figure>'
            if svg
            else f'<p class="note">{empty}</p>'
        )
    parts.append("<h2>科室指标</h2>")
    dept_cols = ["hospital_id", "department", "cases", "grouping_rate", "n_groups", "cmi", "cost_index", "time_index",
                 "low_risk_mortality", "mean_cost", "mean_los", "gain_loss"]  # fmt: skip
    parts.append(_table(tables["departments"], "departments", dept_cols))
    flags = tables["flags"]
    if flags.num_rows:
        flags = flags.filter(pc.equal(flags.column("severity"), "review"))
    parts.append("<h2>疑点病例清单（待核查）</h2>")
    parts.append(
        _table(
            flags,
            "flagged",
            [
                "case_id",
                "hospital_id",
                "flag_zh",
                "detail",
                "linked_case_id",
                "group",
                "alt_group",
                "payment_difference",
            ],
        )
    )
    parts.append("<h2>质控问题清单</h2>")
    parts.append(
        _table(
            qc, "qc-errors", ["case_id", "hospital_id", "edit", "severity", "field", "position", "message_zh"]
        )
    )
    if "insurer" in tables:
        parts.append("<h2>与医保反馈分组的差异</h2>")
        parts.append(
            _table(
                tables["insurer"],
                "insurer",
                [
                    "case_id",
                    "reason_zh",
                    "group",
                    "insurer_group",
                    "points",
                    "insurer_points",
                    "payment_impact",
                ],
            )
        )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n<script>{_JS}</script>\n</body></html>\n"
    )


def write_report(tables: dict[str, pa.Table], path: Path, *, scheme: str, notes: list[str] = ()) -> None:
    """Write ``report.html`` to ``path`` (a temporary path of the writer module)."""
    path.write_text(render_report(tables, scheme=scheme, notes=notes), encoding="utf-8")
