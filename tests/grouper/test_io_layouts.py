"""Real export layouts (issue 13 item 2): an HIS export as a clerk gets it — a title row, GBK, Chinese headers,
名称 columns, an unrecognised column; Excel with the data on a named sheet, formula cells without a cached value and
merged cells. Nothing is dropped in silence: every header is read, ignored on purpose or named in a warning."""

from __future__ import annotations

import warnings

import openpyxl
import pytest

from grouper.errors import InputError
from grouper.io import read_discharges
from grouper.io.discharges import read_discharges_keeping
from grouper.io.formats import InputWarning, Layout
from grouper.io.tables import read_table
from payment.inputs import read_hospitals

HEADER = "结算ID,病案号,科室,不足一周岁年龄(天),年龄,性别,主要诊断编码,主要诊断名称,其他诊断编码1,其他诊断名称1,总费用,床号\n"
ROWS = [
    "S1,B001,心内科,,65,男,I21.000,急性心肌梗死,I10.x00,高血压,12345.60,12\n",
    "S2,B002,新生儿科,20,0,女,P07.100,低出生体重,,,8000,3\n",
]


def _his_csv(tmp_path, encoding="gbk"):
    path = tmp_path / "his.csv"
    path.write_bytes(("某某医院出院病例导出（2025年）\n" + HEADER + "".join(ROWS)).encode(encoding))
    return path


def _read(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = list(read_discharges(path, **kw))
    return tables, [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def test_his_export_gbk_with_a_title_row_reads_every_column_it_knows(tmp_path):
    seen = []
    tables, warned = _read(_his_csv(tmp_path), on_mapping=seen.append)
    t = tables[0].to_pydict()
    assert t["case_id"] == ["S1", "S2"]
    assert t["department"] == ["心内科", "新生儿科"]  # 科室: bed-day routing uses it
    assert t["age_days"] == [None, 20]  # 不足一周岁年龄(天)
    assert t["sex"] == [1, 2] and t["other_dx"] == [["I10.x00"], []]
    assert t["total_cost"] == [12345.6, 8000.0]
    report = seen[0]
    assert report.mapped["科室"] == "department" and report.mapped["不足一周岁年龄(天)"] == "age_days"
    assert report.unused == {"病案号": "case_id"}  # 结算ID feeds case_id; 病案号 is not read
    assert report.ignored == ["主要诊断名称", "其他诊断名称1"]  # names ignored on purpose, and said so
    assert report.unrecognised == ["床号"]
    assert warned == [f"{tmp_path / 'his.csv'}: 1 column(s) not recognised, not read: 床号"]
    assert any("主要诊断名称 → (ignored on purpose)" in line for line in report.lines())


def test_header_row_given_and_rename(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("标题\n第二行标题\n住院流水号,主要诊断编码,年龄\nX1,I10.x00,50\n", encoding="utf-8")
    with pytest.raises(InputError, match="required column 'case_id' is missing") as err:
        _read(path)
    assert err.value.key == "header"  # the CLI adds the --header-row / --rename hint
    tables, _ = _read(path, layout=Layout(header_row=3, rename={"住院流水号": "结算ID"}))
    assert tables[0].column("case_id").to_pylist() == ["X1"]
    with pytest.raises(InputError, match="no column '病历号' to rename"):
        _read(path, layout=Layout(rename={"病历号": "结算ID"}))


def test_kept_columns_carry_text_and_canonical_values(tmp_path):
    batches = list(read_discharges_keeping(_his_csv(tmp_path), keep=["病案号", "总费用", "床号"]))
    table, kept = batches[0]
    assert table.column("case_id").to_pylist() == ["S1", "S2"]
    assert kept.to_pydict() == {"病案号": ["B001", "B002"], "总费用": [12345.6, 8000.0], "床号": ["12", "3"]}
    with pytest.raises(InputError, match="no column '科别' to keep"):
        list(read_discharges_keeping(_his_csv(tmp_path), keep=["科别"]))


def _workbook(tmp_path):
    book = openpyxl.Workbook()
    cover = book.active
    cover.title = "说明"
    cover.append(["本表由 HIS 导出"])
    data = book.create_sheet("病例")
    data.append(["2025年出院病例"])
    data.merge_cells("A1:D1")  # a merged title above the header: harmless, not counted
    data.append(["结算ID", "主要诊断编码", "年龄", "总费用"])
    data.append(["S1", "I21.000", 65, 100.5])
    data.append(["S2", "I10.x00", 70, "=D3*2"])  # a formula saved by a program: no cached value
    data.append(["S3", "I10.x00", None, 50])
    data.merge_cells("C4:C5")  # merged cells in the data: the second reads as empty
    other = book.create_sheet("汇总")
    other.append(["科室", "例数"])
    other.append(["心内科", 3])
    path = tmp_path / "his.xlsx"
    book.save(path)
    return path


def test_excel_named_sheet_formula_and_merged_cells_are_warned(tmp_path):
    path = _workbook(tmp_path)
    tables, warned = _read(path, layout=Layout(sheet="病例"))
    t = tables[0].to_pydict()
    assert t["case_id"] == ["S1", "S2", "S3"]  # the title row above the header is skipped
    assert t["total_cost"] == [100.5, None, 50.0]
    assert any("sheet '病例': 1 formula cell(s) have no saved value" in w for w in warned)
    assert any("sheet '病例': 1 merged cell range(s) at or under the header" in w for w in warned)
    with pytest.raises(InputError, match="no sheet '数据' \\(sheets: 说明, 病例, 汇总\\)"):
        _read(path, layout=Layout(sheet="数据"))


def test_excel_without_sheet_skips_a_cover_sheet_and_names_the_skipped_ones(tmp_path):
    tables, warned = _read(_workbook(tmp_path))
    assert tables[0].column("case_id").to_pylist() == ["S1", "S2", "S3"]
    assert any("sheet '说明' holds no table; not read" in w for w in warned)
    assert any("sheet '汇总' has another header than sheet '病例'; not read" in w for w in warned)


def test_a_sheet_named_for_a_csv_is_refused(tmp_path):
    with pytest.raises(InputError, match="not an Excel workbook"):
        _read(_his_csv(tmp_path), layout=Layout(sheet="病例"))


def test_hospitals_table_gbk_title_row_chinese_headers_and_level_spellings(tmp_path):
    path = tmp_path / "hospitals.csv"
    text = "2025年定点医疗机构\n医院编码,医院名称,医院等级,备注\nH1,第一医院,三级甲等,\nH2,第二医院,二级,新\n"
    path.write_bytes(text.encode("gbk"))
    table = read_hospitals(path)  # encoding detected, the title row skipped, headers and levels as data
    assert table.column_names[:3] == ["hospital_id", "name", "level"]
    assert table.column("hospital_id").to_pylist() == ["H1", "H2"]
    assert table.column("level").to_pylist() == [3, 2]
    renamed = read_table(
        path, kind="hospitals", text=("hospital_id",), layout=Layout(rename={"备注": "note"})
    )
    assert "note" in renamed.column_names
