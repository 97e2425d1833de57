"""A case's length of stay as exports write it (issue 11): negative, or written but not a number (``abc``, ``3天``:
the readers' -1), is LOS_INVALID — paid by the policy's ``routing.invalid``, never by points or bed days — under
both schemes, counted and warned once; empty is accepted except on a bed-day case (whose amount is its days); above
its hard maximum it stops the run with one error naming the file, the row and the column, never the value."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from grouper.errors import InputError
from grouper.io.values import convert
from grouper.schema import DISCHARGE_SCHEMA
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
DRG = ROOT / "codebooks/policies/example-drg-2025.toml"


@pytest.fixture(scope="module")
def region():
    return synth.pooled_region(200, 3, seed=7)


def _with_los(cases: pa.Table, los) -> pa.Table:
    return cases.set_column(cases.column_names.index("los_days"), "los_days", los)


def test_a_length_of_stay_is_read_as_a_whole_number_and_text_as_minus_one():
    los = convert(DISCHARGE_SCHEMA.field("los_days"), pa.array(["5", "65.7", "abc", "3天", "", "-2", "1e12"]))
    assert los.to_pylist() == [5, 65, -1, -1, None, -2, -1]


@pytest.mark.parametrize("invalid", ["fee_for_service", "excluded"])
def test_dip_a_stay_negative_or_not_a_number_is_los_invalid_and_empty_only_on_a_bed_day_case(region, invalid):
    cases, hospitals = region
    policy = Policy.load(DEMO)
    if invalid == "excluded":
        policy = policy.replace({"routing.invalid": {"value": "excluded", "source": "dip-2020"}})
    dx = cases.column("principal_dx").to_pylist()
    scheme = [i for i, d in enumerate(dx) if d == "K35.800"]
    bed_day = [i for i, d in enumerate(dx) if d == "F20.000"]
    los = cases.column("los_days").to_numpy().copy()
    los[scheme[0]] = -1  # written but not a number (the reader's -1)
    los[scheme[1]] = -3  # written negative
    empty = np.zeros(len(los), bool)
    empty[[scheme[2], bed_day[0]]] = True  # empty: accepted on a scheme case, not on a bed-day one
    r = settle(_with_los(cases, pa.array(los, pa.int32(), mask=empty)), hospitals, policy)
    rows = r.cases.to_pylist()
    route = "FEE_FOR_SERVICE" if invalid == "fee_for_service" else "EXCLUDED"
    for i in (scheme[0], scheme[1], bed_day[0]):
        assert (rows[i]["route"], rows[i]["route_reason"], rows[i]["points"]) == (route, "los_invalid", 0.0)
    assert (rows[scheme[2]]["route"], rows[scheme[2]]["route_reason"]) == ("DIP", "scheme")
    assert rows[bed_day[1]]["route"] == "BED_DAY"
    assert sum(row["route_reason"] == "los_invalid" for row in rows) == 3
    assert r.region["invalid_cases"]["LOS_INVALID"] == 3
    said = [w for w in r.region["warnings"] if "LOS_INVALID" in w]
    assert len(said) == 1 and said[0].startswith("3 cases (1.5%) have no usable los_days")


def test_drg_a_stay_not_a_number_is_los_invalid_too():
    policy = Policy.load(DRG)
    cases = pa.table(
        {
            "case_id": ["c1", "c2", "c3"],
            "hospital_id": ["A", "A", "B"],
            "insurance_type": ["employee"] * 3,
            "los_days": pa.array([-1, None, 4], pa.int32()),
            "discharge_date": [dt.date(2025, 3, 1)] * 3,
            "total_cost": [12000.0, 6000.0, 6000.0],
            "fund_paid": [8400.0, 4200.0, 4200.0],
            "patient_paid": [3600.0, 1800.0, 1800.0],
            "drg": ["X1", "X2", "X2"],
            "drg_status": ["OK"] * 3,
        }
    )
    hospitals = pa.table({"hospital_id": ["A", "B"], "name": ["a", "b"], "level": [3, 2]})
    weights = pa.table({"drg": ["X1", "X2"], "rw": [1.2, 0.6]})
    r = settle(cases, hospitals, policy, weights=weights)
    got = [(x["route"], x["route_reason"]) for x in r.cases.to_pylist()]
    assert got == [("FEE_FOR_SERVICE", "los_invalid"), ("DRG", "scheme"), ("DRG", "scheme")]
    assert r.region["invalid_cases"]["LOS_INVALID"] == 1


def test_a_csv_stay_as_text_is_los_invalid_and_above_ten_years_one_error(tmp_path, region):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    los = [str(x) for x in cases.column("los_days").to_pylist()]
    dx = cases.column("principal_dx").to_pylist()
    scheme = [i for i, d in enumerate(dx) if d == "K35.800"]
    los[scheme[0]], los[scheme[1]] = "abc", "3天"
    pacsv.write_csv(_with_los(cases, pa.array(los)), tmp_path / "cases.csv")
    settle_files(tmp_path / "cases.csv", tmp_path / "h.csv", DEMO, tmp_path / "out")
    region_json = json.loads((tmp_path / "out" / "region.json").read_text(encoding="utf-8"))
    assert region_json["invalid_cases"]["LOS_INVALID"] == 2
    assert sum("LOS_INVALID" in w for w in region_json["warnings"]) == 1
    los[scheme[0]], los[scheme[1]] = "3661", "5000"  # above case_los's 3,660 days: a date typo
    pacsv.write_csv(_with_los(cases, pa.array(los)), tmp_path / "bad.csv")
    with pytest.raises(InputError) as info:
        settle_files(tmp_path / "bad.csv", tmp_path / "h.csv", DEMO, tmp_path / "out2")
    row = scheme[0] + 2  # the CSV's line: the header is line 1
    assert str(info.value).startswith(
        f"{tmp_path / 'bad.csv'}: row {row}, column los_days: outside its plausible range"
    )
    assert "3661" not in str(info.value) and not (tmp_path / "out2").exists()
