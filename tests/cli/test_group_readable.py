"""`drgdip group` outputs a clerk can read (issue 13 item 1): group names, statuses in words (zh/en), her own
columns kept, CSV that Excel on Windows opens (UTF-8 with BOM), Excel with a frozen header, widths and 元 formats;
and the export-layout options (--sheet, --header-row, --rename, --show-mapping)."""

from __future__ import annotations

import openpyxl
import pyarrow.parquet as pq
from typer.testing import CliRunner

from payment.cli import app

runner = CliRunner()

HIS = (
    "某某医院出院病例导出\n"
    "结算ID,病案号,科室,年龄,性别,主要诊断编码,主要诊断名称,总费用,床号\n"
    "S1,B001,消化内科,88,2,K22.301,食管溃疡,12345.6,12\n"
    "S2,B002,消化内科,40,1,,,800,3\n"
)


def _his(tmp_path, encoding="gbk"):
    path = tmp_path / "his.csv"
    path.write_bytes(HIS.encode(encoding))
    return path


def test_excel_output_has_names_chinese_labels_kept_columns_and_formats(tmp_path):
    out = tmp_path / "g.xlsx"
    result = runner.invoke(
        app, ["group", str(_his(tmp_path)), "-o", str(out), "--keep", "病案号,科室,总费用", "-q"]
    )
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == (
        "case_id", "病案号", "科室", "总费用", "mdc", "mdc_name", "adrg", "adrg_name", "drg", "drg_name",
        "drg_status", "drg_status_label",
    )  # fmt: skip
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["病案号"] == "B001" and first["总费用"] == 12345.6
    assert first["drg"] == "GZ19" and first["drg_name"] == "其他消化系统疾病" and first["mdc_name"]
    assert first["drg_status_label"] == "已入组"
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["drg_status_label"] == "未入组：无主要诊断（主要诊断）"  # names the field that decided
    assert sheet.title == "分组结果" and sheet.freeze_panes == "A2"
    assert sheet["D2"].number_format == "#,##0.00"  # 总费用 in 元, two decimals
    assert sheet.column_dimensions["J"].width > 10  # drg_name is wide enough to read


def test_csv_has_a_bom_by_default_english_labels_on_request_and_reruns_byte_identical(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        args = ["group", str(_his(tmp_path)), "-o", str(out), "--lang", "en", "--names", "--force", "-q"]
        assert runner.invoke(app, args).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().startswith(b"\xef\xbb\xbf")
    lines = a.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].split(",")[-1] == '"drg_status_label"'
    assert lines[2].endswith('"PDX_MISSING","not grouped: no principal diagnosis (principal_dx)"')


def test_csv_without_bom_or_in_gbk(tmp_path):
    plain, gbk = tmp_path / "p.csv", tmp_path / "g.csv"
    his = _his(tmp_path)
    assert (
        runner.invoke(app, ["group", str(his), "-o", str(plain), "--out-encoding", "utf-8", "-q"]).exit_code
        == 0
    )
    assert plain.read_bytes().startswith(b'"case_id"')
    args = ["group", str(his), "-o", str(gbk), "--out-encoding", "gbk", "--keep", "科室", "-q"]
    assert runner.invoke(app, args).exit_code == 0
    assert "消化内科" in gbk.read_bytes().decode("gbk")


def test_parquet_output_stays_codes_only_by_default(tmp_path):
    out = tmp_path / "g.parquet"
    assert runner.invoke(app, ["group", str(_his(tmp_path)), "-o", str(out), "-q"]).exit_code == 0
    assert pq.read_table(out).column_names == ["case_id", "mdc", "adrg", "drg", "drg_status"]


def test_show_mapping_and_the_unrecognised_warning(tmp_path):
    result = runner.invoke(
        app, ["group", str(_his(tmp_path)), "-o", str(tmp_path / "g.csv"), "--show-mapping"]
    )
    assert result.exit_code == 0, result.output
    assert "科室 → department" in result.output
    assert "病案号 → (not read: case_id is read from another column)" in result.output
    assert "主要诊断名称 → (ignored on purpose)" in result.output
    assert "warning:" in result.output and "1 column(s) not recognised, not read: 床号" in result.output


def test_rename_header_row_and_sheet_options(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("标题\n说明\n住院流水号,主要诊断编码,年龄,性别\nX1,K22.301,88,2\n", encoding="utf-8")
    out = tmp_path / "g.csv"
    result = runner.invoke(app, ["group", str(path), "-o", str(out)])
    assert result.exit_code == 1
    assert "--header-row N" in result.output and "--rename SRC=DST" in result.output
    args = ["group", str(path), "-o", str(out), "--header-row", "3", "--rename", "住院流水号=结算ID", "-q"]
    assert runner.invoke(app, args).exit_code == 0, result.output
    assert '"X1"' in out.read_text(encoding="utf-8-sig")
    bad = runner.invoke(app, ["group", str(path), "-o", str(out), "--rename", "住院流水号", "--force"])
    assert bad.exit_code == 2 and "SRC=DST" in bad.output
    sheet = runner.invoke(app, ["group", str(path), "-o", str(out), "--sheet", "病例", "--force"])
    assert sheet.exit_code == 1 and "not an Excel workbook" in sheet.output


def test_kept_column_clashing_with_a_result_column_is_one_clear_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("结算ID,主要诊断编码,drg\nX1,K22.301,old\n", encoding="utf-8")
    result = runner.invoke(app, ["group", str(path), "-o", str(tmp_path / "g.csv"), "--keep", "drg"])
    assert result.exit_code == 1
    assert "kept column 'drg' has the name of a result column" in result.output


def test_reasons_in_chinese_or_english_name_the_code_that_decided(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("结算ID,主要诊断编码,年龄,性别\nX1,ZZZ.999,40,1\nX2,K22.301,88,\n", encoding="utf-8")
    for lang, unknown, no_sex in (
        ("en", "0000: principal diagnosis is not a code of this codebook; principal_dx ZZZ.999",
         "0000: sex is empty: the reference check stops the case; sex —"),
        ("zh", "0000：主要诊断不是本版本字典中的编码；主要诊断 ZZZ.999", "0000：性别为空：参考程序的校验不予分组；性别 —"),
    ):  # fmt: skip
        out = tmp_path / f"{lang}.parquet"
        args = ["group", str(path), "-o", str(out), "--explain", "--lang", lang, "-q"]
        assert runner.invoke(app, args).exit_code == 0
        assert pq.read_table(out).column("reason").to_pylist() == [unknown, no_sex]


def test_dip_names_and_chinese_reasons(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "结算ID,主要诊断编码,主要手术操作编码,年龄\nX1,K22.301,96.0800x005,40\n", encoding="utf-8"
    )
    out = tmp_path / "d.xlsx"
    args = ["group", str(path), "-o", str(out), "--scheme", "dip", "--catalogue", "pingdingshan-2025"]
    assert runner.invoke(app, [*args, "--explain", "-q"]).exit_code == 0
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["dip_group"] == "K22:ZLXCZ" and row["dip_group_name"] == "食管的其他疾病-治疗性操作组"
    assert row["dip_status_label"] == "已入组（综合病种）"
    assert row["reason"].startswith("综合病种：") and "主要手术 96.0800x005" in row["reason"]
