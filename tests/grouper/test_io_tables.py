"""The small-table reader and the format layer: header aliases and hospital level spellings as data, CR-only line
ends, and error lines that name the option only in the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import grouper
from grouper.errors import InputError
from grouper.io.tables import read_table
from payment.cli import app
from payment.inputs import read_hospitals


def test_cr_only_line_ends_are_read(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"case_id,principal_dx\r1,K35.800\r2,J18.900\r")
    rows = [t.select(["case_id", "principal_dx"]).to_pylist() for t in grouper.read_discharges(path)]
    assert rows == [
        [{"case_id": "1", "principal_dx": "K35.800"}, {"case_id": "2", "principal_dx": "J18.900"}]
    ]


def test_hospitals_take_export_headers_and_every_level_spelling(tmp_path):
    spellings = ["3", "三级甲等", "二级", "1.0", "３级", " 3甲 ", "一级乙等", "二級丙"]
    path = tmp_path / "h.csv"
    lines = [f"H{i},x,{s}" for i, s in enumerate(spellings)]
    path.write_text("医院编码,医院名称,医院等级\n" + "\n".join(lines) + "\n", encoding="utf-8")
    table = read_hospitals(path)
    assert table.column("level").to_pylist() == [3, 3, 2, 1, 3, 3, 1, 2]
    assert table.column("hospital_id").to_pylist()[:2] == ["H0", "H1"]
    path.write_text("医院编码,医院等级\nH0,四级\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 2, column level") as info:
        read_hospitals(path)
    assert (info.value.row, info.value.column) == (2, "level")


def test_small_tables_type_numbers_and_keep_ids_as_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("hospital_id,amount,year,note\n007, 1.50 ,2024,a\n008,,2025,\n", encoding="utf-8")
    t = read_table(path, text=("hospital_id",))
    assert t.to_pydict() == {"hospital_id": ["007", "008"], "amount": [1.5, None], "year": [2024, 2025],
                             "note": ["a", None]}  # fmt: skip


def test_an_encoding_problem_names_the_option_only_in_the_cli(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"case_id,principal_dx\n" + bytes(range(128, 256)) * 40)
    with pytest.raises(InputError) as info:
        list(grouper.read_discharges(path))
    assert "--" not in str(info.value) and info.value.key == "encoding"
    result = CliRunner().invoke(app, ["group", str(path), "-o", str(tmp_path / "o.csv")])
    assert result.exit_code == 1 and result.output.rstrip().endswith("(--encoding)")


def test_every_sheet_with_the_same_header_is_read_and_another_is_named(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    first = book.active
    first.title = "2025-01"
    for row in (["case_id", "principal_dx"], ["1", "K35.800"], ["2", "J18.900"]):
        first.append(row)
    second = book.create_sheet("2025-02")
    for row in (["case_id", "principal_dx"], ["3", "I10.x00"]):
        second.append(row)
    notes = book.create_sheet("notes")
    notes.append(["written by", "someone"])
    path = tmp_path / "book.xlsx"
    book.save(path)
    with pytest.warns(UserWarning, match="sheet 'notes' has another header"):
        ids = [x for t in grouper.read_discharges(path) for x in t.column("case_id").to_pylist()]
    assert ids == ["1", "2", "3"]
    result = CliRunner().invoke(app, ["group", str(path), "-o", str(tmp_path / "o.csv"), "-q"])
    assert result.exit_code == 0 and "warning: " in result.output and "'notes'" in result.output


def test_a_workbook_table_after_a_field_list_sheet_is_found_by_its_columns(tmp_path):
    """A field list (two columns) before the data sheet is a table too: the reader starts at the first sheet
    holding the required columns and says which sheets it skipped."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "填表说明"
    for row in (["字段", "含义"], ["医院编码", "定点医疗机构代码"]):
        book.active.append(row)
    data = book.create_sheet("医院")
    for row in (["医院编码", "医院等级"], ["H1", "三级甲等"], ["H2", "二级"]):
        data.append(row)
    path = tmp_path / "hospitals.xlsx"
    book.save(path)
    with pytest.warns(UserWarning, match="sheet '填表说明' does not hold the columns sought"):
        table = read_hospitals(path)
    assert table.select(["hospital_id", "level"]).to_pydict() == {
        "hospital_id": ["H1", "H2"],
        "level": [3, 2],
    }
