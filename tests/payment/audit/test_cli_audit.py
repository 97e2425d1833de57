"""`drgdip audit`: the files it writes (Excel sheets with Chinese headers, 元 formats, frozen header; Parquet
tables; the report), reruns byte-identical, DRG without a policy, and clear errors."""

from __future__ import annotations

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from grouper.resources import data_path
from payment.cli import app

runner = CliRunner()


def test_writes_report_workbook_and_tables(audited):
    out, hospital, _ = audited
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["audit.xlsx", "report.html", "cases.parquet", "departments.parquet", "flags.parquet", "groups.parquet",
         "hospitals.parquet", "qc.parquet", "summary.parquet"]
    )  # fmt: skip
    cases = pq.read_table(out / "cases.parquet")
    assert set(cases.column("hospital_id").to_pylist()) == {hospital}
    summary = {r["item"]: r["value"] for r in pq.read_table(out / "summary.parquet").to_pylist()}
    assert summary["cases"] == cases.num_rows
    gain = sum(x for x in cases.column("gain_loss").to_pylist() if x is not None)
    assert abs(summary["gain_loss"] - gain) < 0.005


def test_workbook_has_chinese_headers_frozen_rows_and_yuan_formats(audited):
    out, _, _ = audited
    book = openpyxl.load_workbook(out / "audit.xlsx")
    assert book.sheetnames == ["汇总", "医院指标", "病组盈亏", "科室指标", "疑点病例", "质控问题"]
    groups = book["病组盈亏"]
    head = [c.value for c in groups[1]]
    assert head[:3] == ["病组", "病例数", "权重"] and "盈亏" in head
    assert groups.freeze_panes == "A2"
    money = groups.cell(row=2, column=head.index("盈亏") + 1)
    assert money.number_format == '#,##0.00" 元"'
    flags = book["疑点病例"]
    assert [c.value for c in flags[1]][:4] == ["结算清单号", "医院编码", "疑点", "说明"]
    shown = {row[2].value for row in flags.iter_rows(min_row=2)}
    assert shown and "主诊断选择（信息）" not in shown  # PDX_CHOICE (information) stays in flags.parquet


def test_rerun_is_byte_identical(audited, tmp_path):
    out, _, args = audited
    again = tmp_path / "again"
    result = runner.invoke(app, [*args[:-3], "--out", str(again), "-q"])
    assert result.exit_code == 0, result.output
    for path in out.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_drg_without_policy_audits_grouping_qc_flags_and_indicators(region, tmp_path):
    folder, _, _ = region
    result = runner.invoke(app, ["audit", str(folder / "discharges.parquet"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "cases audited" in result.output
    summary = {r["item"]: r["value"] for r in pq.read_table(tmp_path / "o" / "summary.parquet").to_pylist()}
    assert summary["gain_loss"] is None and summary["cmi"] is not None and summary["cases"] == 6000
    # the scheme in force by default; CHS-DRG 1.1 on request
    meta = pq.read_schema(tmp_path / "o" / "cases.parquet").metadata
    assert meta[b"drgdip.scheme"] == b"chs-drg-2.0"
    result = runner.invoke(app, ["audit", str(folder / "discharges.parquet"), "--scheme", "chs-drg-1.1", "-q",
                                 "--out", str(tmp_path / "o11")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_schema(tmp_path / "o11" / "cases.parquet").metadata[b"drgdip.scheme"] == b"chs-drg-1.1"


def test_errors_are_one_line(region, tmp_path):
    folder, _, _ = region
    policy = str(data_path("policies", "demo-2025.toml"))
    result = runner.invoke(app, ["audit", str(folder / "discharges.parquet"), "--scheme", "dip", "--policy", policy,
                                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 1 and "--policy needs --hospitals" in result.output
    result = runner.invoke(app, ["audit", str(folder / "nope.csv"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such file" in result.output
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "report.html").write_text("keep")
    result = runner.invoke(app, ["audit", str(folder / "discharges.parquet"), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 1 and "already exists" in result.output
    assert (tmp_path / "o2" / "report.html").read_text() == "keep"


def test_a_cost_outside_its_plausible_range_is_one_error_line_as_in_settle(region, tmp_path):
    """An infinite or 1e15 cost (Parquet, or written so in a CSV) stopped the audit's workbook writer with an
    internal error: the audit applies the settlement's hard plausibility rules to its cases."""
    folder, _, _ = region
    cases = pq.read_table(folder / "discharges.parquet").slice(0, 200)
    cost = cases.column("total_cost").to_pylist()
    cost[3] = float("inf")
    path = tmp_path / "inf.parquet"
    pq.write_table(
        cases.set_column(cases.column_names.index("total_cost"), "total_cost", pa.array(cost)), path
    )
    result = runner.invoke(app, ["audit", str(path), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"error: {path}: row 4, column total_cost: outside its plausible range")
    assert "internal error" not in result.output and not (tmp_path / "o").exists()


def test_insurer_file_adds_the_differences_sheet(audited, tmp_path):
    out, _, args = audited
    cases = pq.read_table(out / "cases.parquet").slice(0, 50).to_pylist()
    lines = ["setl_id,病种编码,分值"]
    for i, c in enumerate(cases):  # every 10th case regrouped by the insurer
        lines.append(f"{c['case_id']},{'ZZZ' if i % 10 == 0 else c['group'] or ''},{c['points'] or ''}")
    (tmp_path / "returned.csv").write_text("\n".join(lines) + "\n", "utf-8")
    again = tmp_path / "with-insurer"
    result = runner.invoke(
        app, [*args[:-3], "--insurer", str(tmp_path / "returned.csv"), "--out", str(again), "-q"]
    )
    assert result.exit_code == 0, result.output
    diff = pq.read_table(again / "insurer.parquet").to_pylist()
    assert {d["reason"] for d in diff if d["insurer_group"] == "ZZZ"} == {"SCHEME_VERSION"}
    assert "医保差异" in openpyxl.load_workbook(again / "audit.xlsx").sheetnames


def test_a_doctor_column_in_the_export_adds_doctor_indicators(region, tmp_path):
    folder, _, _ = region
    table = pq.read_table(folder / "discharges.parquet").slice(0, 600).drop(["attending_doctor"])
    doctors = [f"D{i % 7}" for i in range(table.num_rows)]
    pq.write_table(table.append_column("主诊医师代码", pa.array(doctors)), tmp_path / "in.parquet")
    result = runner.invoke(app, ["audit", str(tmp_path / "in.parquet"), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0, result.output
    per_doctor = pq.read_table(tmp_path / "o" / "doctors.parquet")
    assert sorted(set(per_doctor.column("attending_doctor").to_pylist())) == [f"D{i}" for i in range(7)]
    assert "医师指标" in openpyxl.load_workbook(tmp_path / "o" / "audit.xlsx").sheetnames
