"""QC edits Q01–Q14 (docs/records.md §5) on hand-made rows: each row plants one defect; the clean row has none."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from grouper import Codebook
from grouper.io import read_discharges
from payment.audit.lists import QcLists
from payment.audit.qc import qc_edits

D = dt.date
CLEAN = {
    "case_id": "c1", "hospital_id": "H1", "insurance_type": "employee", "sex": 2, "age_years": 88, "age_days": None,
    "birth_weight_g": None, "admission_date": D(2025, 1, 1), "discharge_date": D(2025, 1, 5), "los_days": 4,
    "discharge_mode": 1, "principal_dx": "K22.301", "other_dx": ["K11.901", "E11.900"], "principal_proc": None,
    "other_procs": [], "total_cost": 1000.0, "fee_01": None, "fee_09": None,
}  # fmt: skip
#: (changes to the clean row, the one finding expected: edit, code, field, position)
ROWS = [
    ({}, None),
    ({}, ("Q01", "DUPLICATE_CASE", "case_id", None)),  # same case_id as the row above
    ({"case_id": "c3", "principal_dx": None}, ("Q02", "PDX_MISSING", "principal_dx", None)),
    ({"case_id": "c4", "principal_dx": "K99.999x999"}, ("Q03", "PDX_UNKNOWN", "principal_dx", None)),
    ({"case_id": "c5", "principal_dx": "R10.400"}, ("Q04", "PDX_INVALID", "principal_dx", None)),  # 医保灰码
    ({"case_id": "c6", "sex": None}, ("Q05", "SEX_MISSING", "sex", None)),
    ({"case_id": "c7", "sex": 9}, ("Q05", "SEX_UNKNOWN", "sex", None)),
    ({"case_id": "c8", "sex": 1, "principal_dx": "C53.900"}, ("Q06", "SEX_CONFLICT", "principal_dx", None)),
    ({"case_id": "c9", "other_dx": ["K11.901", "N40.x00"]}, ("Q06", "SEX_CONFLICT", "other_dx", 2)),
    ({"case_id": "c10", "age_years": None}, ("Q07", "AGE_MISSING", "age_years", None)),
    ({"case_id": "c11", "age_years": 0, "age_days": None}, ("Q07", "AGE_MISSING", "age_days", None)),
    (
        {"case_id": "c12", "age_years": 0, "age_days": 10},
        ("Q08", "NEWBORN_DATA_MISSING", "birth_weight_g", None),
    ),
    (
        {"case_id": "c13", "age_years": 40, "principal_dx": "P07.100"},
        ("Q09", "AGE_DX_CONFLICT", "principal_dx", None),
    ),
    ({"case_id": "c14", "admission_date": D(2025, 1, 9)}, ("Q10", "DATE_CONFLICT", "discharge_date", None)),
    ({"case_id": "c15", "los_days": 5}, ("Q10", "DATE_CONFLICT", "los_days", None)),
    ({"case_id": "c16", "other_dx": ["K11.901", "Q99.999x999"]}, ("Q11", "CODE_UNKNOWN", "other_dx", 2)),
    ({"case_id": "c17", "principal_proc": "99.9999x999"}, ("Q11", "CODE_UNKNOWN", "principal_proc", None)),
    (
        {"case_id": "c18", "sex": 1, "principal_proc": "68.4100"},
        ("Q12", "DX_PROC_CONFLICT", "principal_proc", None),
    ),
    ({"case_id": "c19", "fee_01": 400.0, "fee_09": 599.99}, ("Q13", "FEE_MISMATCH", "total_cost", None)),
    ({"case_id": "c20", "fee_01": 400.0, "fee_09": 600.0}, None),  # adds up to the fen
    ({"case_id": "c21", "discharge_mode": 7}, ("Q14", "CODE_UNKNOWN", "discharge_mode", None)),
    ({"case_id": "c22", "insurance_type": "other"}, ("Q14", "CODE_UNKNOWN", "insurance_type", None)),
]
SCHEMA = pa.schema(
    [("case_id", pa.string()), ("hospital_id", pa.string()), ("insurance_type", pa.string()), ("sex", pa.int8()),
     ("age_years", pa.int16()), ("age_days", pa.int32()), ("birth_weight_g", pa.int32()),
     ("admission_date", pa.date32()), ("discharge_date", pa.date32()), ("los_days", pa.int32()),
     ("discharge_mode", pa.int8()), ("principal_dx", pa.string()), ("other_dx", pa.list_(pa.string())),
     ("principal_proc", pa.string()), ("other_procs", pa.list_(pa.string())), ("total_cost", pa.float64()),
     ("fee_01", pa.float64()), ("fee_09", pa.float64())]
)  # fmt: skip


@pytest.fixture(scope="module")
def findings():
    table = pa.Table.from_pylist([{**CLEAN, **change} for change, _ in ROWS], schema=SCHEMA)
    return qc_edits(table, Codebook.load("chs-drg-1.1"), QcLists.load()).to_pylist()


@pytest.mark.parametrize("row", range(len(ROWS)), ids=[r[1][1] if r[1] else "clean" for r in ROWS])
def test_each_row_gets_exactly_its_planted_finding(findings, row):
    got = [(f["edit"], f["code"], f["field"], f["position"]) for f in findings if f["row"] == row + 1]
    expected = ROWS[row][1]
    assert got == ([expected] if expected else [])


def test_q04_gray_and_asterisk_principals():
    t = pa.table({"case_id": ["a", "b", "c"], "principal_dx": ["A18.000x047+M49.0*", "M49.0*", "V01.000"]})
    got = qc_edits(t, Codebook.load("chs-drg-1.1")).to_pylist()
    invalid = sorted(f["case_id"] for f in got if f["edit"] == "Q04")
    assert invalid == ["b", "c"]  # the dagger of a pair may be the principal; an asterisk alone or V code not


def test_messages_name_field_and_position_never_values(findings):
    for f in findings:
        assert f["severity"] in ("error", "warning")
        assert f["message_zh"] and f["message_en"]
        for value in ("N40", "C53", "68.41", "K99", "Q99", "P07", "88", "599.99"):
            assert value not in f["message_zh"] + f["message_en"]
    pos = next(f for f in findings if f["code"] == "CODE_UNKNOWN" and f["field"] == "other_dx")
    assert "第2个" in pos["message_zh"] and "#2" in pos["message_en"]


def test_a_region_list_replaces_the_shipped_one(tmp_path):
    (tmp_path / "age_dx.csv").write_text(
        "code,match,min_age_years,max_age_years,source,note\nK22,prefix,0,60,assumption,test\n", "utf-8"
    )
    t = pa.table({"case_id": ["a"], "age_years": pa.array([88], pa.int16()), "principal_dx": ["K22.301"]})
    got = qc_edits(t, Codebook.load("chs-drg-1.1"), QcLists.load(tmp_path)).to_pylist()
    assert ("Q09", "principal_dx") in [(f["edit"], f["field"]) for f in got]


def test_q12_procedure_dates_outside_the_stay_name_the_procedure():
    # stay 2025-03-10 … 2025-03-20; proc_dates: the principal procedure's first, then the other procedures'
    d = dt.date
    rows = [
        ("in", "47.0901", ["54.5100"], [d(2025, 3, 10), d(2025, 3, 20)]),  # both bounds inside: clean
        ("before", "47.0901", ["54.5100"], [d(2025, 3, 9), None]),  # the principal, a day early
        ("after", "47.0901", ["54.5100", "54.5100"], [None, d(2025, 3, 12), d(2025, 3, 21)]),  # other #2
        ("no-principal", None, ["54.5100", "54.5100"], [d(2025, 4, 1)]),  # other #1
        ("no-dates", "47.0901", [], None),
    ]
    t = pa.table(
        {
            "case_id": [r[0] for r in rows],
            "principal_dx": ["K35.800"] * len(rows),
            "principal_proc": [r[1] for r in rows],
            "other_procs": pa.array([r[2] for r in rows], pa.list_(pa.string())),
            "proc_dates": pa.array([r[3] for r in rows], pa.list_(pa.date32())),
            "admission_date": pa.array([d(2025, 3, 10)] * len(rows), pa.date32()),
            "discharge_date": pa.array([d(2025, 3, 20)] * len(rows), pa.date32()),
        }
    )
    got = [f for f in qc_edits(t, Codebook.load("chs-drg-1.1")).to_pylist() if f["edit"] == "Q12"]
    assert [(f["case_id"], f["code"], f["severity"], f["field"], f["position"]) for f in got] == [
        ("before", "DX_PROC_CONFLICT", "warning", "principal_proc", None),
        ("after", "DX_PROC_CONFLICT", "warning", "other_procs", 2),
        ("no-principal", "DX_PROC_CONFLICT", "warning", "other_procs", 1),
    ]
    assert got[0]["message_zh"] == "主要手术操作的手术操作日期不在住院期间（入院日期至出院日期）内"
    assert "第2个" in got[1]["message_zh"] and got[1]["message_en"].startswith(
        "other_procs #2: the procedure date"
    )
    assert all("2025" not in f["message_zh"] + f["message_en"] for f in got)  # never the dates themselves


def test_procedure_dates_are_read_one_per_procedure_from_an_export(tmp_path):
    # numbered 手术操作日期1…n columns keep an empty one in place: the k-th date belongs to the k-th procedure
    path = tmp_path / "export.csv"
    path.write_text(
        "结算ID,主要诊断编码,主要手术操作编码,其他手术操作编码,入院日期,出院日期,手术操作日期1,手术操作日期2,手术操作日期3\n"
        "a,K35.800,47.0901,54.5100,2025-03-10,2025-03-20,2025-03-11,,\n"
        "b,K35.800,47.0901,54.5100|54.5100,2025-03-10,2025-03-20,,2025/3/12,20250322\n",
        "utf-8",
    )
    table = next(read_discharges(path))
    assert table.column("proc_dates").to_pylist() == [
        [dt.date(2025, 3, 11)],
        [None, dt.date(2025, 3, 12), dt.date(2025, 3, 22)],
    ]
    got = [(f["case_id"], f["field"], f["position"]) for f in qc_edits(table, Codebook.load("chs-drg-1.1")).to_pylist()
           if f["edit"] == "Q12"]  # fmt: skip
    assert got == [("b", "other_procs", 2)]
