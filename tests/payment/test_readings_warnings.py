"""The spec's open readings as policy keys (both settings each), invalid cases, and warnings before a wrong
clearing (issue 10 items 2–4). Figures are worked by hand in the comments."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from grouper.errors import PolicyError
from payment.points import DeviationRule, dip_points
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATH = ROOT / "codebooks/policies/demo-2025.toml"
DEMO = Policy.load(DEMO_PATH)
HOSPITALS = pa.table({"hospital_id": ["A", "B"], "name": ["a", "b"], "level": [3, 2]})


def _cases(rows: list[tuple], **extra) -> pa.Table:
    """rows: (case_id, hospital_id, score, aux, cost, avg_cost); employee, discharged 2025-03-10, 3 days."""
    ids, hosp, score, aux, cost, avg = (list(c) for c in zip(*rows, strict=True))
    n = len(rows)
    cost = np.array(cost, dtype=float)
    cols = {
        "case_id": ids,
        "hospital_id": hosp,
        "insurance_type": ["employee"] * n,
        "los_days": pa.array([3] * n, pa.int32()),
        "admission_date": [dt.date(2025, 3, 7)] * n,
        "discharge_date": [dt.date(2025, 3, 10)] * n,
        "total_cost": cost,
        "fund_paid": cost * 0.7,
        "patient_paid": cost * 0.3,
        "dip_group": ["G1"] * n,
        "dip_status": ["OK"] * n,
        "dip_kind": ["core"] * n,
        "dip_score": pa.array(score, pa.float64()),
        "aux_coef": pa.array(aux, pa.float64()),
        "dip_avg_cost": pa.array(avg, pa.float64()),
    }
    return pa.table(cols | extra)


def _row(result, case_id: str) -> dict:
    return next(r for r in result.cases.to_pylist() if r["case_id"] == case_id)


# --- 2a 特例单议 eligibility basis -------------------------------------------------------------------------


def _special(policy: Policy):
    # hospital A is level 3 (k 1.07); S 1000, V_budget 5.7182; C 12,000 with A 10,000 (normal cost band)
    # group standard S × V = 5,718.20 → 2 × = 11,436.40 < 12,000: eligible
    # case standard S · k · a × V = 6,118.474 → 2 × = 12,236.948 > 12,000: not eligible
    cases = _cases([("s1", "A", 1000.0, 1.0, 12000.0, 10000.0), ("n1", "B", 1000.0, 1.0, 5000.0, 5000.0)])
    return settle(cases, HOSPITALS, policy.replace({"special_case.cap_rate": 1.0}), special_cases=["s1"])


def test_special_case_eligibility_against_the_group_standard_by_default():
    assert DEMO.special_case.eligible_basis == "group_standard"
    assert any(a.startswith("special_case.eligible_basis = 'group_standard'") for a in DEMO.assumptions())
    assert _special(DEMO).region["special_cases"]["approved"] == 1


def test_special_case_eligibility_against_the_case_standard():
    p = DEMO.replace({"special_case.eligible_basis": {"value": "case_standard", "source": "dip-2020"}})
    assert not any(a.startswith("special_case.eligible_basis") for a in p.assumptions())
    assert _special(p).region["special_cases"]["approved"] == 0


# --- 2c how approved special cases are paid ----------------------------------------------------------------


def test_approved_special_case_paid_in_points_at_its_cost_by_default():
    r = _special(DEMO)
    s1 = _row(r, "s1")
    assert (s1["route"], s1["special_case"]) == ("DIP", True)
    assert s1["points"] == pytest.approx(12000 / 5.7182)  # C / V_budget
    assert r.region["routes"]["DIP"] == 2


def test_approved_special_case_paid_by_item():
    p = DEMO.replace({"special_case.payment": {"value": "fee_for_service", "source": "dip-2020"}})
    r = _special(p)
    s1 = _row(r, "s1")
    assert (s1["route"], s1["route_reason"], s1["special_case"]) == (
        "FEE_FOR_SERVICE",
        "special_case_fee_for_service",
        True,
    )
    assert (s1["points"], s1["fund_payment"]) == (0.0, 8400.0)  # its fund payment as billed (12,000 × 0.7)
    assert (r.region["routes"]["DIP"], r.region["routes"]["FEE_FOR_SERVICE"]) == (1, 1)
    h = {
        x["hospital_id"]: {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in x.items()}
        for x in r.hospitals.to_pylist()
    }  # fmt: skip  (exact decimals as the yuan strings they print as)
    assert h["A"]["fee_for_service_fund"] == "8400.00" and h["A"]["points"] == "0.0000000000"


# --- 2b the auxiliary coefficient on deviation cases -------------------------------------------------------


@pytest.mark.parametrize(
    ("aux_on_deviation", "expect"),
    # S 1000, k 1.05, a 1.5, A 10,000; 2020 national kinds (low cost, high minus_one)
    # C 4,000 low: S · C/A = 400 (× a = 600); C 30,000 high: S · (C/A − 1) = 2,000 (× a = 3,000);
    # C 12,000 normal: S · k · a = 1,575 either way
    [(False, [400.0, 2000.0, 1575.0]), (True, [600.0, 3000.0, 1575.0])],
)
def test_aux_coefficient_on_deviation_cases(aux_on_deviation, expect):
    rule = DeviationRule("cost", 0.5, "<", "minus_one", 2.0, ">", aux_on_deviation=aux_on_deviation)
    ones = np.ones(3)
    pts, _ = dip_points(
        ones * 1000, ones * 1.05, ones * 1.5, np.array([4000.0, 30000, 12000]), ones * 1e4, rule
    )
    assert pts.tolist() == pytest.approx(expect)


def test_aux_on_deviation_default_follows_the_profile():
    # the 2020 national kinds carry no a on deviation cases (docs/formulas.md §3.3); 济宁's kinds do
    assert DEMO.deviation.aux_on_deviation is False
    assert "deviation.aux_on_deviation = false" in " ".join(DEMO.assumptions())
    jining = DEMO.replace({"deviation.high.formula": "minus_two_plus_k"})
    assert jining.deviation.aux_on_deviation is True
    written = DEMO.replace({"deviation.aux_on_deviation": {"value": True, "source": "dip-2020"}})
    assert written.deviation.aux_on_deviation is True
    assert "deviation.aux_on_deviation" not in " ".join(written.assumptions())
    # in settle: a low case at a level-3 hospital, a 1.5: 1000 × 4,000 / 10,000 = 400 (600 with a)
    cases = _cases([("low", "A", 1000.0, 1.5, 4000.0, 10000.0)])
    assert _row(settle(cases, HOSPITALS, DEMO), "low")["points"] == pytest.approx(400.0)
    assert _row(settle(cases, HOSPITALS, written), "low")["points"] == pytest.approx(600.0)


# --- 3 discharge before admission --------------------------------------------------------------------------


def _conflict(policy: Policy):
    cases = _cases([("ok", "A", 1000.0, 1.0, 5000.0, 5000.0), ("bad", "B", 1000.0, 1.0, 5000.0, 5000.0)])
    adm = pa.array([dt.date(2025, 3, 7), dt.date(2025, 3, 12)])  # "bad" discharged 03-10, admitted 03-12
    cases = cases.set_column(cases.column_names.index("admission_date"), "admission_date", adm)
    return settle(cases, HOSPITALS, policy)


def test_discharge_before_admission_is_paid_by_item_not_points():
    r = _conflict(DEMO)
    bad = _row(r, "bad")
    assert (bad["route"], bad["route_reason"], bad["points"]) == ("FEE_FOR_SERVICE", "date_conflict", 0.0)
    assert bad["fund_payment"] == 3500.0
    assert r.region["invalid_cases"] == {
        "DATE_CONFLICT": 1,
        "COST_INVALID": 0,
        "LOS_INVALID": 0,
        "route": "fee_for_service",
    }
    assert any("DATE_CONFLICT" in w and "paid by item" in w for w in r.region["warnings"])
    assert "routing.invalid = 'fee_for_service'" in " ".join(DEMO.assumptions())


def test_discharge_before_admission_excluded_when_the_policy_says_so():
    r = _conflict(DEMO.replace({"routing.invalid": {"value": "excluded", "source": "dip-2020"}}))
    assert _row(r, "bad")["route"] == "EXCLUDED"
    assert r.region["invalid_cases"]["DATE_CONFLICT"] == 1
    assert any("DATE_CONFLICT" in w and "EXCLUDED" in w for w in r.region["warnings"])


# --- 4 warnings --------------------------------------------------------------------------------------------


def test_warns_of_carve_outs_no_route_pays():
    cases, hospitals = synth.region(500, 3, seed=2)
    r = settle(cases, hospitals, DEMO.replace({"per_case.entries": None}))
    w = [x for x in r.region["warnings"] if "carves" in x]
    assert w == [
        f"budget.{p}.per_case carves 1000000.00 yuan out of the pool, but the policy defines no per-case "
        "entries: no case is paid from that money"
        for p in ("employee", "resident")
    ]
    assert not any("carves" in x for x in settle(cases, hospitals, DEMO).region["warnings"])


def test_warns_when_the_budget_point_value_is_far_from_the_settlement_value():
    cases, hospitals = synth.region(2_000, 4, seed=2)
    ok = settle(cases, hospitals, DEMO).region
    far = settle(cases, hospitals, DEMO.replace({"point_value.employee.budget": 50.0})).region
    gap = far["pools"]["employee"]["point_value_gap"]
    assert gap > 0.1 and ok["pools"]["employee"]["point_value_gap"] != gap
    assert next(x for x in far["warnings"] if "budget point value" in x).startswith(
        "pool employee: the budget point value 50.0000000000 is"
    )
    loose = DEMO.replace(
        {
            "point_value.employee.budget": 50.0,
            "settlement.clearing_share_limit": {"value": 100.0, "unit": "ratio", "source": "dip-2020"},
        }
    )
    assert not any("budget point value" in x for x in settle(cases, hospitals, loose).region["warnings"])


def test_warns_when_one_hospital_takes_the_whole_pool():
    cases = _cases([("a1", "A", 1000.0, 1.0, 5000.0, 5000.0), ("a2", "A", 800.0, 1.0, 4000.0, 4000.0)])
    w = settle(cases, HOSPITALS, DEMO).region["warnings"]
    assert "pool employee: hospital A receives 100.0% of the pool among 2 hospitals" in " ".join(w)


def test_warns_when_every_case_lacks_a_hospital_id():
    cases = _cases([("a1", "A", 1000.0, 1.0, 5000.0, 5000.0), ("a2", "B", 800.0, 1.0, 4000.0, 4000.0)])
    cases = cases.set_column(1, "hospital_id", pa.array([None, None], pa.string()))
    r = settle(cases, HOSPITALS, DEMO)
    assert r.region["routes"]["EXCLUDED"] == 2
    assert r.region["warnings"][0] == (
        "every case (2) is EXCLUDED: the cases have no hospital_id, so nothing is paid to any hospital"
    )


def test_a_policy_without_deviation_is_a_policy_error():
    raw = tomllib.loads(DEMO_PATH.read_text(encoding="utf-8"))
    del raw["deviation"]
    with pytest.raises(PolicyError, match=r"deviation: missing: the \[deviation\] section"):
        Policy.from_dict(raw, "p.toml")
