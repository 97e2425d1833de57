"""An error in a table with title rows above its header names the row as the user sees it in Excel or an editor
(issue 13): the hospitals, deductions and history tables and the discharges file, each with a 2-line title."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from grouper.errors import InputError
from grouper.io.formats import Layout, first_data_row
from payment.history import read_history
from payment.inputs import read_deductions, read_hospitals
from payment.pipeline import settle_files
from payment.policy import Policy
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"
TITLE = "某市定点医疗机构名单\n2025年度（医保局）\n"


def _titled(path: Path, body: str, encoding: str = "gbk") -> Path:
    path.write_bytes((TITLE + body).encode(encoding))
    return path


def test_first_data_row_counts_the_title_rows(tmp_path):
    csv = _titled(tmp_path / "t.csv", "hospital_id,level\nH1,3\n")
    assert first_data_row(csv) == 4 and first_data_row(csv, layout=Layout(header_row=3)) == 4
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["医院名单"], ["2025年"], ["hospital_id", "level"], ["H1", 3]):
        sheet.append(row)
    book.save(tmp_path / "t.xlsx")
    assert first_data_row(tmp_path / "t.xlsx") == 4
    assert first_data_row(tmp_path / "plain.parquet") == 1


def test_hospitals_csv_in_gbk_with_chinese_headers(tmp_path):
    path = _titled(
        tmp_path / "h.csv",
        "医疗机构编码,医疗机构名称,医院等级\nH1,甲医院,三级甲等\nH2,乙医院,二级\nH1,丙医院,一级\n",
    )
    with pytest.raises(InputError) as err:
        read_hospitals(path)
    assert str(err.value).startswith(f"{path}: rows 4, 6, column hospital_id: the same hospital_id"), (
        err.value
    )
    assert err.value.row == 4
    path = _titled(
        tmp_path / "h2.csv", "医疗机构编码,医疗机构名称,医院等级\nH1,甲医院,三级甲等\nH2,乙医院,特级\n"
    )
    with pytest.raises(InputError, match=r"row 5, column level: not a hospital level"):
        read_hospitals(path)


def test_hospitals_excel_with_a_title(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (
        ["定点医疗机构"],
        ["2025年"],
        ["hospital_id", "level", "coefficient"],
        ["H1", 3, 1.0],
        ["H2", 2, 50],
    ):
        sheet.append(row)
    path = tmp_path / "h.xlsx"
    book.save(path)
    with pytest.raises(InputError, match=r"h\.xlsx: row 5, column coefficient: outside its plausible range"):
        read_hospitals(path)


def test_deductions_with_a_title(tmp_path):
    path = _titled(tmp_path / "d.csv", "hospital_id,month,amount\nH0000,2025-03,100\nH0001,2025-04,-5\n")
    with pytest.raises(InputError) as err:
        read_deductions(path, ["H0000", "H0001"], Policy.load(DEMO))
    assert str(err.value).startswith(f"{path}: row 5, column amount: "), err.value


def test_history_cases_with_a_title(tmp_path):
    body = "pool,year,total_cost,points\nall,2022,100,10\nall,2023,100,10\nall,20x4,100,10\n"
    _titled(tmp_path / "history_cases.csv", body, "utf-8")
    with pytest.raises(InputError, match=r"history_cases\.csv: row 6, column year"):
        read_history(tmp_path)


def test_a_discharge_with_a_title_names_its_line(tmp_path):
    cases, hospitals = synth.region(60, 3, seed=5, codes=True)
    plain = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
                     names=cases.column_names)  # fmt: skip
    cost = plain.column("total_cost").to_numpy().astype(np.float64).copy()
    cost[6] = -1.0  # the 7th case
    plain = plain.set_column(plain.schema.get_field_index("total_cost"), "total_cost", pa.array(cost))
    frame = plain.to_pandas()
    frame["discharge_date"] = frame["discharge_date"].astype(str)
    path = _titled(tmp_path / "cases.csv", frame.to_csv(index=False))
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    with pytest.raises(InputError) as err:
        settle_files(path, tmp_path / "h.csv", DEMO, tmp_path / "out")
    assert str(err.value).startswith(f"{path}: row 10, column total_cost: outside"), err.value  # 3 + 7
    assert err.value.row == 10
