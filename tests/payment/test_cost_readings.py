"""A case's cost as exports write it (issue 11 items 1–3): ``1e15``, ``inf``, ``1,234.5`` are numbers, judged by the
plausibility rules in any format; a cost that is empty, NaN or not a number is COST_INVALID — paid by the policy's
``routing.invalid``, never by points — and the settlement says how many; a discharge file without a cost column is
one error naming the file and the column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from grouper.errors import InputError
from grouper.io.discharges import canonicalise
from grouper.io.formats import one_line
from grouper.io.values import convert, unreadable
from grouper.schema import DISCHARGE_SCHEMA
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"


@pytest.fixture(scope="module")
def region():
    return synth.pooled_region(120, 3, seed=7)


def _with_cost(cases: pa.Table, cost: pa.Array) -> pa.Table:
    return cases.set_column(cases.column_names.index("total_cost"), "total_cost", cost)


def test_costs_are_read_as_exports_write_numbers():
    written = ["1e15", "1E+11", "inf", "-Infinity", "1,234.5", "１２３", " 5 ", "", "nan", "NA", "-", "abc", "12元",
               "1,5"]  # fmt: skip
    cost = convert(DISCHARGE_SCHEMA.field("total_cost"), pa.array(written))
    assert cost.to_pylist()[:7] == [1e15, 1e11, float("inf"), float("-inf"), 1234.5, 123.0, 5.0]
    assert cost.to_pylist()[7:11] == [None] * 4  # empty, as an empty cell and a Parquet NaN are
    assert unreadable(cost).to_pylist() == [False] * 11 + [True] * 3  # abc, 12元, 1,5: present, not a number
    # whole numbers keep the reference groupers' reading: nan and NA are present but unreadable (-1, a status)
    age = convert(DISCHARGE_SCHEMA.field("age_years"), pa.array(["65", "nan", "NA", "1e2", "1,234", ""]))
    assert age.to_pylist() == [65, -1, -1, 100, -1, None]


@pytest.mark.parametrize("invalid", ["fee_for_service", "excluded"])
def test_a_case_without_a_readable_cost_is_cost_invalid_never_paid_by_points(region, invalid):
    cases, hospitals = region
    policy = Policy.load(DEMO)
    if invalid == "excluded":
        policy = policy.replace({"routing.invalid": {"value": "excluded", "source": "dip-2020"}})
    cost = cases.column("total_cost").to_numpy().copy()
    cost[[3, 4]] = np.nan  # 3: text that was not a number (the readers' UNREADABLE), 4: a Parquet NaN
    mask = np.zeros(len(cost), bool)
    mask[5] = True  # empty
    r = settle(_with_cost(cases, pa.array(cost, mask=mask)), hospitals, policy)
    rows = r.cases.to_pylist()
    route = "FEE_FOR_SERVICE" if invalid == "fee_for_service" else "EXCLUDED"
    for i in (3, 4, 5):
        assert (rows[i]["route"], rows[i]["route_reason"], rows[i]["points"]) == (route, "cost_invalid", 0.0)
    assert all(row["route_reason"] != "cost_invalid" for row in rows[6:] + rows[:3])
    assert r.region["invalid_cases"] == {
        "DATE_CONFLICT": 0,
        "COST_INVALID": 3,
        "LOS_INVALID": 0,
        "route": invalid,
    }
    said = [w for w in r.region["warnings"] if "COST_INVALID" in w]
    assert len(said) == 1 and "3 cases (2.5%) have no readable total_cost (1 empty, 2 not a number" in said[0]


def test_a_parquet_cost_nan_is_cost_invalid_and_inf_or_negative_an_error(tmp_path, region):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    cost = cases.column("total_cost").to_numpy().copy()
    cost[2] = np.nan
    pq.write_table(_with_cost(cases, pa.array(cost)), tmp_path / "cases.parquet")
    settle_files(tmp_path / "cases.parquet", tmp_path / "h.csv", DEMO, tmp_path / "out")
    region_json = json.loads((tmp_path / "out" / "region.json").read_text(encoding="utf-8"))
    assert region_json["invalid_cases"]["COST_INVALID"] == 1
    settled = pq.read_table(tmp_path / "out" / "cases.parquet")
    assert settled.column("route_reason")[2].as_py() == "cost_invalid"
    for value in (np.inf, -np.inf, -0.01):
        cost[2] = value
        pq.write_table(_with_cost(cases, pa.array(cost)), tmp_path / "bad.parquet")
        with pytest.raises(InputError, match=r"bad.parquet: row 3, column total_cost: outside its plausible"):
            settle_files(tmp_path / "bad.parquet", tmp_path / "h.csv", DEMO, tmp_path / "out2")
        assert not (tmp_path / "out2").exists()


def test_a_csv_cost_with_digit_groups_is_paid_like_the_plain_number(tmp_path, region):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    plain = [f"{x:.2f}" for x in cases.column("total_cost").to_pylist()]
    grouped = [f"{x:,.2f}" for x in cases.column("total_cost").to_pylist()]
    assert any("," in x for x in grouped)
    for name, text in (("plain", plain), ("grouped", grouped)):
        pacsv.write_csv(_with_cost(cases, pa.array(text)), tmp_path / f"{name}.csv")
        settle_files(tmp_path / f"{name}.csv", tmp_path / "h.csv", DEMO, tmp_path / name)
    for out in ("hospitals.csv", "region.json"):
        assert (tmp_path / "plain" / out).read_bytes() == (tmp_path / "grouped" / out).read_bytes()


def test_a_discharge_file_without_a_cost_column_is_one_error(tmp_path, region):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    pacsv.write_csv(cases.drop_columns(["total_cost"]), tmp_path / "cases.csv")
    with pytest.raises(
        InputError, match=r"cases.csv: no total cost column \(accepted headers: .*总费用"
    ) as info:
        settle_files(tmp_path / "cases.csv", tmp_path / "h.csv", DEMO, tmp_path / "out")
    assert info.value.column == "total_cost" and not (tmp_path / "out").exists()


def test_library_messages_do_not_repeat_the_values_they_could_not_convert():
    quoted = pa.ArrowInvalid("Failed to parse string: '张三 110101199001011234' as a scalar of type double")
    assert one_line(quoted) == "Failed to parse string: '…' as a scalar of type double"
    assert "65.5" not in one_line(pa.ArrowInvalid("Float value 65.5 was truncated converting to int16"))
    pair = pa.ArrowTypeError("Could not convert '张三' with type str: tried to convert to double",
                             "Conversion failed for column 总费用 with type object")  # fmt: skip
    assert one_line(pair) == (
        "Could not convert … with type str: tried to convert to double; "
        "Conversion failed for column 总费用 with type object"
    )
    import pandas as pd

    frame = pd.DataFrame({"结算ID": ["1", "2"], "主要诊断编码": ["K35.800", 3.5], "总费用": ["张三", 1.0]})
    with pytest.raises(InputError, match="Conversion failed for column 主要诊断编码") as info:
        canonicalise(frame)
    assert "张三" not in str(info.value) and "3.5" not in str(info.value)
