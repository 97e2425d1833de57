"""Trimmed budget point value (分位数法, docs/formulas.md §2.1/§2.6) and monthly audit deductions (审核扣款, §6)
through :func:`payment.pipeline.settle_files` (what ``drgdip settle`` calls) and :func:`payment.settle.settle`; the hand-worked vectors are in
``vectors/trimmed_budget.toml`` and ``vectors/prepaid_deductions.toml``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from grouper.errors import InputError
from payment.deductions import parse_deductions
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATH = ROOT / "codebooks/policies/demo-2025.toml"
DEMO = Policy.load(DEMO_PATH)
#: vectors/trimmed_budget.toml, third case: year, total_cost, points → V_budget 366/29 = 12.6207
VECTOR = (
    (2022, 800, 100), (2022, 1000, 100), (2022, 2200, 200), (2022, 1800, 150), (2022, 3000, 100),
    (2023, 500, 100), (2023, 1100, 100), (2023, 2400, 200), (2023, 1300, 100), (2023, 1950, 150),
    (2024, 1200, 100), (2024, 2600, 200), (2024, 1400, 100), (2024, 3000, 200), (2024, 100, 100),
)  # fmt: skip
TRIMMED = """budget_method    = { value = "history_trimmed", source = "dip-3-0", clause = "分位数法" }
budget_trim_lower = { value = 0.025, unit = "share", source = "dip-3-0", clause = "2.5%" }
budget_trim_upper = { value = 0.975, unit = "share", source = "dip-3-0", clause = "97.5%" }"""


def _fen(s: str) -> int:
    return int(s.replace(".", ""))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("trim")
    cases, hospitals = synth.region(3_000, 5, seed=7)
    pq.write_table(cases, d / "cases.parquet")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    text = DEMO_PATH.read_text(encoding="utf-8")
    old = 'budget_method    = { value = "given", source = "assumption", note = "demo has no history" }'
    assert old in text
    (d / "trimmed.toml").write_text(text.replace(old, TRIMMED), encoding="utf-8")
    return d


def _run(files: Path, out: Path, policy: Path | None = None, **inputs) -> dict:
    """What `drgdip settle` does, through the library (payment.pipeline.settle_files)."""
    return settle_files(files / "cases.parquet", files / "hospitals.csv", policy or DEMO_PATH, out, **inputs)


def _history(folder: Path, header: str, rows: list[str], name: str = "history_cases.csv") -> Path:
    folder.mkdir()
    (folder / name).write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return folder


def test_trims_case_history_before_the_1_2_7_value(files, tmp_path):
    rows = [f"{p},{y},{c},{q}" for p in ("employee", "resident") for y, c, q in VECTOR]
    hist = _history(tmp_path / "h", "pool,year,total_cost,points", rows)
    _run(files, tmp_path / "o", history=hist, policy=files / "trimmed.toml")
    region = json.loads((tmp_path / "o" / "region.json").read_text(encoding="utf-8"))
    for pool in ("employee", "resident"):
        info = region["pools"][pool]
        assert info["budget_point_value"] == "12.6206896552"  # 366 / 29
        assert info["budget_point_value_published"] == "12.6207000000"
        trim = info["budget_trim"]
        assert (trim["lower"], trim["upper"]) == (0.025, 0.975)
        assert [(y["year"], y["cases"], y["kept"], y["total_cost"]) for y in trim["years"]] == [
            (2022, 5, 3, "5000.00"),
            (2023, 5, 4, "6750.00"),
            (2024, 5, 3, "5200.00"),
        ]


def test_maps_insurance_types_to_pools_and_leaves_self_pay_out(files, tmp_path):
    rows = [f"{t},{y},{c},{q}" for t in ("employee", "resident") for y, c, q in VECTOR]
    rows += ["self_pay,2024,99999,1", "self_pay,2022,1,100"]  # in no pool: would change the value otherwise
    hist = _history(tmp_path / "h", "insurance_type,year,total_cost,points", rows)
    _run(files, tmp_path / "o", history=hist, policy=files / "trimmed.toml")
    region = json.loads((tmp_path / "o" / "region.json").read_text(encoding="utf-8"))
    assert region["pools"]["resident"]["budget_point_value_published"] == "12.6207000000"


def test_trimmed_history_reads_parquet_too(files, tmp_path):
    import pyarrow as pa

    hist = tmp_path / "h"
    hist.mkdir()
    y, c, q = zip(*VECTOR, strict=True)
    pq.write_table(
        pa.table({"pool": ["employee"] * 15 + ["resident"] * 15, "year": y * 2, "total_cost": c * 2,
                  "points": q * 2}),
        hist / "history_cases.parquet",
    )  # fmt: skip
    _run(files, tmp_path / "o", history=hist, policy=files / "trimmed.toml")
    region = json.loads((tmp_path / "o" / "region.json").read_text(encoding="utf-8"))
    assert region["pools"]["employee"]["budget_point_value_published"] == "12.6207000000"


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        ("pool,year,total_cost,points", ["employee,2024,100,0"], "row 2, column points: 0 is not a number of points > 0"),
        ("pool,year,total_cost,points", ["employee,2024,100,1", "x,2024,1,1"], "row 3, column pool: 'x' is not one of"),
        ("pool,year,total_cost,points", ["employee,2024,abc,1"], "row 2, column total_cost: 'abc' is not an amount"),
        ("pool,year,total_cost,points", ["employee,2024.5,1,1"], "row 2, column year: 2024.5 is not a year"),
        ("pool,year,cost,points", ["employee,2024,1,1"], "missing column(s) total_cost"),
        ("pool,year,total_cost,points", ["employee,2024,1,1", "resident,2024,1,1"],
         "pool 'employee': history_cases needs exactly three years of cases, got 1 (2024)"),
    ],
)  # fmt: skip
def test_bad_case_history_names_the_file_row_and_column(files, tmp_path, header, rows, message):
    hist = _history(tmp_path / "h", header, rows)
    with pytest.raises(InputError) as info:
        _run(files, tmp_path / "o", history=hist, policy=files / "trimmed.toml")
    assert message in " ".join(str(info.value).split())


def test_trimmed_method_without_case_history_is_an_error(files, tmp_path):
    hist = _history(tmp_path / "h", "pool,year,total_cost,total_points", [], name="region_years.csv")
    with pytest.raises(InputError) as info:
        _run(files, tmp_path / "o", history=hist, policy=files / "trimmed.toml")
    assert "needs case history (history_cases.parquet or .csv" in " ".join(str(info.value).split())


def _deductions(path: Path, rows: list[str]) -> Path:
    path.write_text("hospital_id,month,amount,reason\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_deductions_come_off_the_prepayment_once(files, tmp_path):
    base = tmp_path / "base"
    _run(files, base)
    d = _deductions(
        tmp_path / "d.csv", ["H0001,2025-02,1234.56,重复收费", "H0001,2025-11,0.44,", "H0003,2025-07,10,"]
    )
    _run(files, tmp_path / "o", deductions=d)
    before = pacsv.read_csv(base / "hospitals.csv", convert_options=pacsv.ConvertOptions(
        column_types={c: "string" for c in ("prepaid", "payment_due", "clearing", "audit_deduction")})).to_pylist()  # fmt: skip
    after = pacsv.read_csv(tmp_path / "o" / "hospitals.csv", convert_options=pacsv.ConvertOptions(
        column_types={c: "string" for c in ("prepaid", "payment_due", "clearing", "audit_deduction",
                                            "monthly_deduction")})).to_pylist()  # fmt: skip
    expected = {"H0001": 123500, "H0003": 1000}  # 1,234.56 + 0.44 = 1,235.00; 10.00 (fen)
    for b, a in zip(before, after, strict=True):
        d_fen = expected.get(a["hospital_id"], 0)
        assert _fen(a["monthly_deduction"]) == d_fen
        assert _fen(b["prepaid"]) - _fen(a["prepaid"]) == d_fen
        assert _fen(a["audit_deduction"]) - _fen(b["audit_deduction"]) == d_fen
        assert _fen(b["payment_due"]) - _fen(a["payment_due"]) == d_fen
        assert a["clearing"] == b["clearing"]
    region = json.loads((tmp_path / "o" / "region.json").read_text(encoding="utf-8"))
    assert region["totals"]["monthly_deduction"] == "1245.00"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("NOPE,2025-03,1,", "row 3, column hospital_id: not a hospital of the hospitals table"),
        ("H0001,2025-13,1,", "row 3, column month: not a month YYYY-MM"),
        ("H0001,2025/03,1,", "row 3, column month: not a month YYYY-MM"),
        ("H0001,2024-12,1,", "row 3, column month: outside the policy period 2025-01 … 2025-12"),
        ("H0001,2025-03,-5,", "row 3, column amount: negative (a deduction is ≥ 0)"),
        ("H0001,2025-03,1.005,", "row 3, column amount: more than two decimals"),
        ("H0001,2025-03,,", "row 3, column amount: not an amount in yuan"),
        ("H0001,2025-03,ten,", "row 3, column amount: not an amount in yuan"),
    ],
)
def test_bad_deductions_name_the_file_row_and_column(files, tmp_path, row, message):
    d = _deductions(tmp_path / "d.csv", ["H0000,2025-01,1,", row])
    with pytest.raises(InputError) as info:
        _run(files, tmp_path / "o", deductions=d)
    text = " ".join(str(info.value).split())
    assert f"{d.name}: {message}" in text
    changed = [c for c, base in zip(row.split(","), ["H0001", "2025-03", "1", ""], strict=True) if c != base]
    assert not any(c and c in text.removeprefix(str(d)) for c in changed), text  # no value of the row
    assert not (tmp_path / "o" / "hospitals.csv").exists()


def test_deductions_for_an_unknown_hospital_are_refused_by_the_engine_too():
    cases, hospitals = synth.region(100, 2, seed=1)
    with pytest.raises(InputError, match="a hospital_id not in the hospitals table"):
        settle(cases, hospitals, DEMO, deductions={("X", 3): 100})


def test_parse_deductions_adds_rows_of_one_month_exactly():
    import pyarrow as pa

    t = pa.table({"hospital_id": ["A", "A", "B"], "month": ["2025-03", "2025-03", "2025-12"],
                  "amount": pa.array([0.1, 0.2, 3], pa.float64())})  # fmt: skip
    assert parse_deductions(t, ["A", "B"], DEMO) == {("A", 3): 30, ("B", 12): 300}  # 0.1 + 0.2 = 0.30 exactly
