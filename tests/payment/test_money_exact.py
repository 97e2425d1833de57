"""Money exact to the fen (docs/formulas.md §0): points carried in fixed point, one half-up rounding at the output.

Hand-worked vectors where an amount is exactly half a fen. 120.05 points are 120.04999999999999715… as a
float, so a float sum pays 12.005 yuan as 12.00; the exact reading pays 12.01. Every figure below is worked by
hand in the comments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from payment.policy import Policy
from payment.settle import settle

ROOT = Path(__file__).resolve().parents[2]
ONES = {"by_level": {"1": 1.0, "2": 1.0, "3": 1.0}, "unit": "ratio", "source": "assumption", "note": "test"}


def _fixed(policy: Policy, pools: tuple[str, ...]) -> Policy:
    """V_budget = V_settlement = 0.1 (fixed), k = 1, prepayment 100 % of (P × V − patient payments)."""
    changes = {
        "point_value.regime": "fixed",
        "point_value.decimals": None,
        "hospital_coef.table": ONES,
        "settlement.prepay_ratio": 1.0,
        "settlement.quality_reserve": 0.0,
        "settlement.surplus_bands": None,
        "settlement.overspend_bands": None,
    }
    for p in pools:
        changes[f"point_value.{p}.fixed"] = {
            "value": 0.1,
            "unit": "yuan/point",
            "source": "assumption",
            "note": "t",
        }
        changes[f"point_value.{p}.budget"] = 0.1
    return policy.replace(changes)


HOSPITALS = pa.table({"hospital_id": ["A", "B"], "name": ["a", "b"], "level": [3, 2]})


def _cases(extra: dict) -> pa.Table:
    # A: one case of 120.05 points; B: two cases of 60.025 points (120.05 together). Each case: cost C,
    # fund paid = patient paid = C / 2, so the region's fund ratio r = 1/2 exactly.
    cost = [12.0, 6.0, 6.0]
    return pa.table(
        {
            "case_id": ["c1", "c2", "c3"],
            "hospital_id": ["A", "B", "B"],
            "insurance_type": ["employee"] * 3,
            "los_days": pa.array([3, 3, 3], pa.int32()),
            "discharge_date": [dt.date(2025, 3, 1)] * 3,
            "total_cost": cost,
            "fund_paid": [c / 2 for c in cost],
            "patient_paid": [c / 2 for c in cost],
            **extra,
        }
    )


def _by(table: pa.Table, key: str) -> dict[str, dict]:
    """Rows by key; exact decimals (hospital money) as the yuan strings they print as."""
    return {
        r[key]: {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in r.items()}
        for r in table.to_pylist()
    }


def _check(result) -> None:
    h = _by(result.hospitals, "hospital_id")
    # pool: Σ P·V·r = (120.05 + 120.05) × 0.1 × 1/2 = 12.005 → 12.01 (1,201 fen), shared by largest remainder:
    # A 600.25 fen, B 600.25 fen → floors 600 + 600, the tie's extra fen to the first hospital_id → A 6.01, B 6.00
    assert (h["A"]["allocated"], h["B"]["allocated"]) == ("6.01", "6.00")
    # prepayment: (120.05 × 0.1 − 6.00) × 1.0 = 6.005 → 6.01 for each (a float sum gives 6.00)
    assert (h["A"]["prepaid"], h["B"]["prepaid"]) == ("6.01", "6.01")
    assert (h["A"]["clearing"], h["B"]["clearing"]) == ("0.00", "-0.01")
    c = _by(result.cases, "case_id")
    # per case, one rounding: c1 P·V = 12.005 → 12.01; P·V·r = 6.0025 → 6.00 (not round(12.01 × 0.5) = 6.01)
    assert (c["c1"]["standard_payment"], c["c1"]["fund_payment"]) == (12.01, 6.00)
    assert (c["c2"]["standard_payment"], c["c2"]["fund_payment"]) == (6.00, 3.00)  # 6.0025, 3.00125
    assert result.region["pools"]["employee"]["total_points"] == "240.1000000000"


def test_dip_half_fen_prepayment_clearing_and_case_payment():
    policy = _fixed(Policy.load(ROOT / "codebooks/policies/demo-2025.toml"), ("employee", "resident"))
    cases = _cases(
        {
            "dip_group": ["G1", "G2", "G2"],
            "dip_status": ["OK"] * 3,
            "dip_kind": ["core"] * 3,
            "dip_score": [120.05, 60.025, 60.025],
            "aux_coef": [1.0] * 3,
            "dip_avg_cost": [12.0, 6.0, 6.0],  # C = A: normal cases, P = S · k · a = S
        }
    )
    _check(settle(cases, HOSPITALS, policy))


def test_drg_half_fen_prepayment_and_clearing():
    policy = Policy.load(ROOT / "codebooks/policies/example-drg-2025.toml")
    policy = _fixed(policy, ("all",)).replace({"deviation.drg.city_avg_cost": 10})
    cases = _cases({"drg": ["X1", "X2", "X2"], "drg_status": ["OK"] * 3}).set_column(
        2, "insurance_type", pa.array(["employee"] * 3)
    )
    weights = pa.table({"drg": ["X1", "X2"], "rw": [1.2005, 0.60025]})  # × 100 = 120.05 and 60.025 points
    result = settle(cases, HOSPITALS, policy, weights=weights)
    h = _by(result.hospitals, "hospital_id")
    # subtraction form: gross Σ P·V = 24.01 shared by largest remainder (12.005 each, tie → A 12.01, B 12.00),
    # less each hospital's patient payments (6.00) → A 6.01, B 6.00
    assert (h["A"]["allocated"], h["B"]["allocated"]) == ("6.01", "6.00")
    # prepayment: (120.05 × 0.1 − 6.00) × 1.0 = 6.005 → 6.01 each
    assert (h["A"]["prepaid"], h["B"]["prepaid"]) == ("6.01", "6.01")
    assert (h["A"]["clearing"], h["B"]["clearing"]) == ("0.00", "-0.01")
    c = _by(result.cases, "case_id")
    # c1: P·V = 12.005 → 12.01, fund = 12.01 − 6.00 patient = 6.01
    assert (c["c1"]["standard_payment"], c["c1"]["fund_payment"]) == (12.01, 6.01)
    assert result.region["pools"]["all"]["total_points"] == "240.1000000000"
