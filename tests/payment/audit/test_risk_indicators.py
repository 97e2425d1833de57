"""Risk classes and indicators (docs/audit.md §1, §1.1) against hand-worked numbers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from payment.audit import audit
from payment.audit.indicators import group_table, indicator_table
from payment.audit.risk import RISK_CLASSES, risk_classes


def test_worked_example_population_sd():
    # docs/audit.md §1.1: ln m = −6.908 −6.215 −4.605 −2.996 −1.609; mean −4.467, sd (÷ n) 1.968
    cls, z = risk_classes(np.full(5, 1000), np.array([1, 2, 10, 50, 200]))
    assert np.round(z, 3).tolist() == [-1.241, -0.888, -0.070, 0.747, 1.452]
    assert [RISK_CLASSES[c] for c in cls] == ["low", "mid_low", "mid_low", "mid_high", "high"]


def test_worked_example_sample_sd():
    # the sample sd (÷ (n − 1)) is 2.200: z = −1.110, −0.795, −0.063, 0.669, 1.299, the same classes
    cls, z = risk_classes(np.full(5, 1000), np.array([1, 2, 10, 50, 200]), sd="sample")
    assert np.round(z, 3).tolist() == [-1.110, -0.795, -0.063, 0.669, 1.299]
    assert [RISK_CLASSES[c] for c in cls] == ["low", "mid_low", "mid_low", "mid_high", "high"]


def test_small_groups_are_unclassed_and_deathless_groups_low():
    # ln 0.001, ln 0.02, ln 0.1 → z −1.328, 0.242, 1.086; 29 cases < 30: unclassed; no death: low
    cls, z = risk_classes(np.array([1000, 1000, 1000, 29, 500]), np.array([1, 20, 100, 3, 0]), min_cases=30)
    assert np.round(z[:3], 3).tolist() == [-1.328, 0.242, 1.086]
    assert [RISK_CLASSES[c] for c in cls] == ["low", "mid_high", "high", "unclassed", "low"]
    cls, _ = risk_classes(np.array([1000, 500]), np.array([1, 0]), zero_deaths="unclassed")
    assert RISK_CLASSES[cls[1]] == "unclassed"


def _cases(group, hospital, cost, los, weight, grouped=None, dead=None, low=None):
    n = len(group)
    return {
        "group": np.array(group, dtype=object),
        "grouped": np.ones(n, bool) if grouped is None else np.array(grouped),
        "weight": np.array(weight, float),
        "cost": np.array(cost, float),
        "los": np.array(los, float),
        "dead": np.zeros(n, bool) if dead is None else np.array(dead),
        "low_risk": np.zeros(n, bool) if low is None else np.array(low),
        "expected": np.full(n, np.nan),
        "std_cost": np.full(n, np.nan),
        "std_los": np.full(n, np.nan),
    }, {"hospital_id": np.array(hospital, dtype=object)}


def test_cost_and_time_index_grouping_rate_and_cmi():
    # region: A = (300, 300, 100, 100) mean 200, LOS (6, 6, 2, 2) mean 4; B = (500, 500) mean 500, LOS 10
    # H1: 2 × A at 300 (1.5 × region) and 1 × B at 500 (1.0): cost index (2 × 1.5 + 1 × 1) / 3 = 4/3;
    #     LOS 6 vs 4 (1.5) and 10 vs 10: time index 4/3; one more H1 case not grouped: 入组率 3/4
    c, keys = _cases(
        ["A", "A", "B", "", "A", "A", "B"],
        ["H1", "H1", "H1", "H1", "H2", "H2", "H2"],
        [300, 300, 500, 50, 100, 100, 500],
        [6, 6, 10, 1, 2, 2, 10],
        [0.8, 0.8, 2.0, np.nan, 0.8, 0.8, 2.0],
        grouped=[True, True, True, False, True, True, True],
    )
    rows = {
        r["hospital_id"]: r
        for r in indicator_table(c, keys, np.ones(7, bool), relative_cmi=False).to_pylist()
    }
    h1 = rows["H1"]
    assert h1["cases"] == 4 and h1["grouped_cases"] == 3 and h1["grouping_rate"] == pytest.approx(0.75)
    assert h1["n_groups"] == 2
    assert h1["total_weight"] == pytest.approx(3.6) and h1["cmi"] == pytest.approx(
        1.2
    )  # (0.8 + 0.8 + 2.0) / 3
    assert h1["cost_index"] == pytest.approx(4 / 3) and h1["time_index"] == pytest.approx(4 / 3)
    assert h1["region_mean_cost"] == pytest.approx(
        300.0
    )  # (2 × 200 + 1 × 500) / 3: the region's cost of H1's mix
    h2 = rows["H2"]
    assert h2["cost_index"] == pytest.approx((2 * 0.5 + 1) / 3)


def test_dip_cmi_is_relative_to_the_region_mean_score():
    # DIP: hospital mean score per case ÷ region mean score per case: H1 (1 + 3) / 2 = 2 over (1 + 3 + 1 + 1) / 4
    c, keys = _cases(["A", "B", "A", "A"], ["H1", "H1", "H2", "H2"], [1, 1, 1, 1], [1, 1, 1, 1], [1, 3, 1, 1])
    rows = indicator_table(c, keys, np.ones(4, bool), relative_cmi=True).to_pylist()
    assert rows[0]["cmi"] == pytest.approx(2 / 1.5)


def test_low_risk_mortality_of_the_worked_example():
    # docs/audit.md §1.1: a hospital with 400 cases and 1 death in the first (low-risk) group: 0.25 %
    n = 400
    t = pa.table(
        {
            "case_id": [f"c{i}" for i in range(n)],
            "hospital_id": ["H"] * n,
            "sex": pa.array([1] * n, pa.int8()),
            "age_years": pa.array([70] * n, pa.int16()),
            "principal_dx": ["J18.900"] * n,
            "discharge_mode": pa.array([5] + [1] * (n - 1), pa.int8()),
            "total_cost": [3000.0] * n,
            "los_days": pa.array([7] * n, pa.int32()),
        }
    )
    reference = pa.table(
        {"group": ["ES35", "X2", "X3", "X4", "X5"], "cases": [1000] * 5, "deaths": [1, 2, 10, 50, 200]}
    )
    result = audit(t, scheme="chs-drg-1.1", risk_reference=reference)
    summary = {r["item"]: r["value"] for r in result["summary"].to_pylist()}
    assert summary["low_risk_mortality"] == pytest.approx(0.0025)
    assert result["cases"].column("risk_class").to_pylist()[0] == "low"
    flags = result["flags"].to_pylist()
    assert [(f["case_id"], f["flag"]) for f in flags if f["flag"] == "LOW_RISK_DEATH"] == [
        ("c0", "LOW_RISK_DEATH")
    ]


def test_shares_standard_means_and_gain_loss_by_hand():
    # hospital H: groups A, A, B. Drug share Σ drug / Σ cost = 80 / 600; consumables 20 / 600. Standard mean
    # cost for H's mix: (2 × 250 + 1 × 100) / 3 = 200; LOS (2 × 3 + 1 × 5) / 3. 盈亏 over the priced cases only:
    # (150 + 200) − (100 + 300) = −50 (the B case has no expected payment: left out of both sides).
    c = {
        "group": np.array(["A", "A", "B"], object),
        "grouped": np.ones(3, bool),
        "weight": np.array([1.0, 1.0, 2.0]),
        "cost": np.array([100.0, 300.0, 200.0]),
        "los": np.array([2.0, 4.0, 6.0]),
        "dead": np.zeros(3, bool),
        "low_risk": np.zeros(3, bool),
        "expected": np.array([150.0, 200.0, np.nan]),
        "std_cost": np.array([250.0, 250.0, 100.0]),
        "std_los": np.array([3.0, 3.0, 5.0]),
        "drug": np.array([10.0, 30.0, 40.0]),
        "consumable": np.array([5.0, 15.0, 0.0]),
    }
    hospital = np.array(["H"] * 3, object)
    (h,) = indicator_table(c, {"hospital_id": hospital}, np.ones(3, bool), relative_cmi=False).to_pylist()
    assert h["drug_share"] == pytest.approx(80 / 600) and h["consumable_share"] == pytest.approx(20 / 600)
    assert h["standard_mean_cost"] == pytest.approx(200.0) and h["standard_mean_los"] == pytest.approx(11 / 3)
    assert h["mean_cost"] == pytest.approx(200.0) and h["cost_index"] == pytest.approx(1.0)
    assert (h["paid_cases"], h["expected_payment"], h["paid_cost"]) == (2, 350.0, 400.0)
    assert h["gain_loss"] == pytest.approx(-50.0)
    groups = {g["group"]: g for g in group_table(c, np.ones(3, bool), {"A": "low"}).to_pylist()}
    a, b = groups["A"], groups["B"]
    assert (a["cases"], a["mean_cost"], a["standard_cost"], a["risk_class"]) == (2, 200.0, 250.0, "low")
    assert a["gain_loss"] == pytest.approx(-50.0) and a["gain_loss_per_case"] == pytest.approx(-25.0)
    assert b["paid_cases"] == 0 and b["gain_loss"] is None and b["risk_class"] == "unclassed"
