"""The 清单 fee breakdown (医疗收费项目类别 01 … 14, docs/records.md §3 and §6) is an optional canonical money block."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import grouper
from grouper.schema import DISCHARGE_SCHEMA, FEE_COLUMNS
from grouper.synth import FEE_FIELDS, write_region

#: docs/records.md §3 医疗收费项目类别: code → category, in code order.
CATEGORIES = [
    "床位费",
    "诊察费",
    "检查费",
    "化验费",
    "治疗费",
    "手术费",
    "护理费",
    "卫生材料费",
    "西药费",
    "中药饮片费",
    "中成药费",
    "一般诊疗费",
    "挂号费",
    "其他费",
]


def _read(path, **kw) -> pa.Table:
    return pa.concat_tables(grouper.read_discharges(path, **kw))


def test_schema_holds_fourteen_float_fee_columns():
    assert tuple(f"fee_{k:02d}" for k in range(1, 15)) == FEE_COLUMNS
    assert all(DISCHARGE_SCHEMA.field(c).type == pa.float64() for c in FEE_COLUMNS)
    assert tuple(DISCHARGE_SCHEMA.field(c) for c in FEE_COLUMNS) == FEE_FIELDS  # one definition


def test_chinese_fee_headers_map_by_name_not_position(tmp_path):
    # the file lists the categories in reverse order: each header must land on its own code
    header = ["结算ID", "主要诊断编码", "医疗费用总额", *reversed(CATEGORIES)]
    values = [f"{k}.5" for k in range(14, 0, -1)]  # 其他费 14.5 … 床位费 1.5
    path = tmp_path / "export.csv"
    path.write_text(",".join(header) + "\nA1,C18.000,105," + ",".join(values) + "\n", encoding="utf-8")
    row = _read(path).to_pylist()[0]
    assert [row[c] for c in FEE_COLUMNS] == [k + 0.5 for k in range(1, 15)]


def test_fee_values_parse_like_other_money_columns(tmp_path):
    text = (
        "setl_id,主要诊断编码,总费用,治疗费,西药费,fee_10,中成药费,床位费\n"
        "A1,C18.000,65000, 35000.25 ,1200,,abc,0\n"
        "A2,C18.000,,,,,,\n"
    )
    path = tmp_path / "e.csv"
    path.write_text(text, encoding="gbk")
    t = _read(path)
    assert t["fee_05"].to_pylist() == [35000.25, None]
    assert t["fee_09"].to_pylist() == [1200.0, None]
    assert t["fee_10"].to_pylist() == [None, None]  # empty → null
    fee_11 = t["fee_11"].to_pylist()  # unreadable → NaN (UNREADABLE, apart from empty), the batch goes on
    assert math.isnan(fee_11[0]) and fee_11[1] is None
    assert t["fee_01"].to_pylist() == [0.0, None]
    assert t["fee_02"].null_count == 2  # absent header → all null
    assert t.schema == DISCHARGE_SCHEMA


def test_only_requested_fee_columns_are_read(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("结算ID,主要诊断编码,治疗费,床位费\nA1,C18.000,10,20\n", encoding="utf-8")
    t = _read(path, columns=["fee_05"])
    assert t["fee_05"].to_pylist() == [10.0] and t["fee_01"].to_pylist() == [None]


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_fee_headers_in_parquet_and_excel(tmp_path, suffix):
    frame = pd.DataFrame(
        {"结算ID": ["A1"], "主要诊断编码": ["C18.000"], "治疗费": [35000.0], "中药饮片费": [12.5]}
    )
    path = tmp_path / f"e{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_excel(path, index=False)
    row = _read(path).to_pylist()[0]
    assert row["fee_05"] == 35000.0 and row["fee_10"] == 12.5


def test_synthetic_region_with_and_without_fees_reads_back(tmp_path):
    with_fees, _ = write_region(tmp_path / "f", 3000, [2024], 4, seed=2, fees=True)
    plain, _ = write_region(tmp_path / "p", 3000, [2024], 4, seed=2)
    t = _read(with_fees)
    fen = np.column_stack([np.rint(t[c].to_numpy() * 100) for c in FEE_COLUMNS]).astype(np.int64)
    assert (fen.sum(axis=1) == np.rint(t["total_cost"].to_numpy() * 100)).all()
    p = _read(plain)
    assert all(p[c].null_count == p.num_rows for c in FEE_COLUMNS)  # without --fees: null
    others = [c for c in DISCHARGE_SCHEMA.names if c not in FEE_COLUMNS]
    assert p.select(others).equals(t.select(others))


def test_a_kept_amount_that_is_not_a_number_is_empty_in_the_output(tmp_path):
    """``--keep 总费用``: the kept value is the canonical number; text that is not a number stays empty there
    (never ``nan``), as an empty cell does."""
    path = tmp_path / "k.csv"
    path.write_text(
        '结算ID,主要诊断编码,总费用\n1,K35.800,abc\n2,J18.900,"1,234.5"\n3,J18.900,\n', encoding="utf-8"
    )
    from grouper.io.discharges import read_discharges_keeping

    [(table, kept)] = list(read_discharges_keeping(path, keep=["总费用"]))
    assert kept.column("总费用").to_pylist() == [None, 1234.5, None]
    assert math.isnan(table.column("total_cost")[0].as_py())  # the case itself keeps UNREADABLE


def test_a_kept_whole_number_that_is_not_one_is_empty_in_the_output(tmp_path):
    """``--keep 住院天数``: ``abc`` or ``3天`` is empty in the output (not the canonical -1), as a kept amount."""
    path = tmp_path / "k.csv"
    path.write_text(
        "结算ID,主要诊断编码,住院天数\n1,K35.800,abc\n2,J18.900,3天\n3,J18.900,7\n4,J18.900,\n",
        encoding="utf-8",
    )
    from grouper.io.discharges import read_discharges_keeping

    [(table, kept)] = list(read_discharges_keeping(path, keep=["住院天数"]))
    assert kept.column("住院天数").to_pylist() == [None, None, 7, None]
    assert table.column("los_days").to_pylist()[:3] == [-1, -1, 7]  # the cases themselves keep the status
