"""Supervision flags (docs/audit.md §2) on hand-made cases; expected payment by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from grouper.resources import data_path
from payment.audit import AuditSettings, audit
from payment.audit.flags import case_flags
from payment.policy import Policy

D = dt.date


def _c(**over):
    """Per-case arrays of :func:`case_flags` for n cases; defaults: nothing to flag."""
    n = len(over["case_id"])
    base = {
        "hospital_id": np.array(["H1"] * n, object),
        "patient_id": np.array([None] * n, object),
        "admission": np.full(n, np.nan),
        "discharge": np.full(n, np.nan),
        "los": np.full(n, 8.0),
        "cost": np.full(n, 1000.0),
        "mode": np.ones(n, np.int64),
        "group": np.array(["G"] * n, object),
        "grouped": np.ones(n, bool),
        "mdc": np.array([""] * n, object),
        "group_cost": np.full(n, 1000.0),
        "group_los": np.full(n, 8.0),
        "risk": np.full(n, 4, np.int8),
        "deviation": np.array([""] * n, object),
        "route": np.array([""] * n, object),
        "payment_method": np.array([None] * n, object),
        "low_standard_dx": np.zeros(n, bool),
    }
    base.update(
        {
            k: np.array(
                v,
                dtype=object
                if k in ("case_id", "hospital_id", "patient_id", "group", "deviation", "route")
                else None,
            )
            for k, v in over.items()
        }
    )
    return base


def _days(*dates):
    return [float((d - D(1970, 1, 1)).days) for d in dates]


def _flags(c):
    return [
        (f["case_id"], f["flag"], f["linked_case_id"])
        for f in case_flags(c, AuditSettings.load()).to_pylist()
    ]


def test_readmissions_same_and_other_hospital_with_the_linked_case():
    # P1: a (H1, out 01-10) → b (H1, in 01-25: 15 days, the limit) → c (H2, in 02-26, 31 days after b's 01-26)
    # P2: d (out 03-01) → e (in 04-02: 32 days): not flagged
    c = _c(
        case_id=["a", "b", "c", "d", "e"],
        hospital_id=["H1", "H1", "H2", "H1", "H1"],
        patient_id=["P1", "P1", "P1", "P2", "P2"],
        admission=_days(D(2025, 1, 2), D(2025, 1, 25), D(2025, 2, 26), D(2025, 2, 20), D(2025, 4, 2)),
        discharge=_days(D(2025, 1, 10), D(2025, 1, 26), D(2025, 3, 5), D(2025, 3, 1), D(2025, 4, 9)),
    )
    assert _flags(c) == [("b", "READMISSION_15", "a"), ("c", "READMISSION_31", "b")]


def test_an_overlapping_stay_is_a_readmission():
    # a second stay admitted before the first one's discharge (two re-admissions of one index case)
    c = _c(
        case_id=["a", "b"],
        patient_id=["P1", "P1"],
        admission=_days(D(2025, 3, 5), D(2025, 3, 9)),
        discharge=_days(D(2025, 3, 20), D(2025, 3, 20)),
    )
    flags = case_flags(c, AuditSettings.load()).to_pylist()
    assert [(f["case_id"], f["flag"], f["linked_case_id"]) for f in flags] == [("b", "READMISSION_15", "a")]
    assert "重叠11天" in flags[0]["detail"]


def test_low_standard_admission_long_stay_deviation_and_low_risk_death():
    c = _c(
        case_id=[
            "short",
            "short-death",
            "long",
            "long-abs",
            "bed-day",
            "high",
            "low",
            "death",
            "bed-day-hint",
        ],
        los=[2, 2, 24, 61, 90, 8, 8, 8, 90],  # long: 24 ≥ 3 × 8
        cost=[299, 100, 1000, 1000, 1000, 1000, 1000, 1000, 1000],  # short: 299 < 0.3 × 1000
        mode=[1, 5, 1, 1, 1, 1, 1, 5, 1],
        deviation=["", "", "", "", "", "high", "low", "", ""],
        route=["", "", "", "", "BED_DAY", "", "", "", ""],
        payment_method=[None] * 8 + ["5"],  # hi_paymtd 5 按床日付费, no policy to route it
        risk=np.array([4, 4, 4, 4, 4, 4, 4, 0, 4], np.int8),
    )
    assert _flags(c) == [
        ("short", "LOW_STANDARD_ADMISSION", None),
        ("long", "LONG_STAY", None),
        ("long-abs", "LONG_STAY", None),
        ("high", "HIGH_DEVIATION", None),
        ("low", "LOW_DEVIATION", None),
        ("death", "LOW_RISK_DEATH", None),
    ]


def _table(rows):
    fields = {"case_id": pa.string(), "hospital_id": pa.string(), "insurance_type": pa.string(), "sex": pa.int8(),
              "age_years": pa.int16(), "principal_dx": pa.string(), "other_dx": pa.list_(pa.string()),
              "total_cost": pa.float64(), "los_days": pa.int32()}  # fmt: skip
    return pa.Table.from_pylist(rows, schema=pa.schema(list(fields.items())))


#: a case of K22.301, grouped GZ13 with the CC K11.901 and GZ15 without it
_K22_CASE = {
    "hospital_id": "H",
    "insurance_type": "employee",
    "sex": 2,
    "age_years": 88,
    "principal_dx": "K22.301",
}


def test_possible_upcoding_names_the_lower_group_and_the_payment_difference():
    # K22.301 + K11.901 (CC) → GZ13; without it GZ15 (RW 0.8 < 1.2), whose cases cost 6000 and stay 5 days:
    # the case at 5000 yuan and 3 days sits in the lower group's range. example-drg-2025: RW × 100 points × k,
    # point value 100 yuan; 5000 is a normal case in both groups (≥ 0.35 × 12,000 and × 8,000), so the
    # expected payments are 12,000 and 8,000 × k: difference 4,000 × k.
    case = _K22_CASE
    rows = [{**case, "case_id": "u", "other_dx": ["K11.901"], "total_cost": 5000.0, "los_days": 3}]
    rows += [
        {**case, "case_id": f"n{i}", "other_dx": [], "total_cost": 6000.0, "los_days": 5} for i in range(5)
    ]
    weights = pa.table({"drg": ["GZ13", "GZ15"], "rw": [1.2, 0.8]})
    policy = Policy.load(data_path("policies", "example-drg-2025.toml"))
    result = audit(_table(rows), scheme="chs-drg-1.1", weights=weights)
    up = [f for f in result["flags"].to_pylist() if f["flag"] == "POSSIBLE_UPCODING"]
    assert [(f["case_id"], f["group"], f["alt_group"], f["alt_weight"]) for f in up] == [
        ("u", "GZ13", "GZ15", 0.8)
    ]
    assert "第1个" in up[0]["detail"]
    paid = audit(_table(rows), scheme="chs-drg-1.1", weights=weights, policy=policy, level=3)
    up = [f for f in paid["flags"].to_pylist() if f["flag"] == "POSSIBLE_UPCODING"]
    cases = {r["case_id"]: r for r in paid["cases"].to_pylist()}
    assert up[0]["payment_difference"] == pytest.approx(
        cases["u"]["expected_payment"] - up[0]["alt_expected_payment"]
    )
    k = cases["u"]["expected_payment"] / 12_000
    assert up[0]["payment_difference"] == pytest.approx(4_000 * k) and k > 0


def test_a_file_without_costs_is_audited_without_upcoding_means():
    # No case has a cost (a coding file such as the conformance sets): the group means are empty, not an error.
    case = _K22_CASE
    rows = [{**case, "case_id": "u", "other_dx": ["K11.901"]}, {**case, "case_id": "n", "other_dx": []}]
    weights = pa.table({"drg": ["GZ13", "GZ15"], "rw": [1.2, 0.8]})
    result = audit(_table(rows), scheme="chs-drg-1.1", weights=weights)
    assert result["cases"].num_rows == 2


def test_pdx_choice_reports_the_alternative_group_as_information():
    rows = [{"case_id": "p", "hospital_id": "H", "insurance_type": "employee", "sex": 1, "age_years": 70,
             "principal_dx": "K22.301", "other_dx": ["J18.900"], "total_cost": 3000.0, "los_days": 7}]  # fmt: skip
    flags = audit(_table(rows), scheme="chs-drg-1.1")["flags"].to_pylist()
    choice = [f for f in flags if f["flag"] == "PDX_CHOICE"]
    assert [(f["group"], f["alt_group"], f["severity"]) for f in choice] == [
        ("GZ13", "ES31", "info")
    ]  # K22.301 is an MCC of the pneumonia
    assert "非编码建议" in choice[0]["detail"]


def test_expected_payment_of_a_dip_case_by_hand():
    # A04.9 (score 385.176247, avg_cost 2202.4969), level 3 k = 1.07, normal (2000 / 2202.50 in 0.5–2):
    # 385.176247 × 1.07 = 412.13858429 points × 5.7182 (employee budget point value) = 2,356.69 yuan
    t = pa.table({"case_id": ["a"], "hospital_id": ["H"], "insurance_type": ["employee"], "sex": pa.array([1], pa.int8()),
                  "age_years": pa.array([40], pa.int16()), "principal_dx": ["A04.900"], "total_cost": [2000.0],
                  "los_days": pa.array([5], pa.int32()), "admission_date": [D(2025, 2, 24)], "discharge_date": [D(2025, 3, 1)]})  # fmt: skip
    result = audit(t, scheme="dip", policy=Policy.load(data_path("policies", "demo-2025.toml")), level=3)
    row = result["cases"].to_pylist()[0]
    assert (row["group"], row["route"], row["deviation"]) == ("A04.9", "DIP", "normal")
    assert row["points"] == pytest.approx(412.13858429)
    assert row["expected_payment"] == 2356.69 and row["gain_loss"] == pytest.approx(356.69)


def test_a_qc_error_is_not_paid_by_points():
    # discharge before admission (Q10): DIP and DRG alike, no expected payment
    t = pa.table({"case_id": ["a"], "hospital_id": ["H"], "insurance_type": ["employee"], "sex": pa.array([1], pa.int8()),
                  "age_years": pa.array([40], pa.int16()), "principal_dx": ["A04.900"], "total_cost": [2000.0],
                  "los_days": pa.array([5], pa.int32()), "admission_date": [D(2025, 3, 6)], "discharge_date": [D(2025, 3, 1)]})  # fmt: skip
    row = audit(t, scheme="dip", policy=Policy.load(data_path("policies", "demo-2025.toml")), level=3)[
        "cases"
    ].to_pylist()[0]
    assert (row["route"], row["expected_payment"], row["qc_error"]) == ("QC_ERROR", None, True)


def test_a_stay_not_a_number_takes_no_part_in_the_los_means_and_flags():
    # four A04.900 cases of 5 days and one whose stay was not a number (the reader's -1): without the fix the
    # -1 made it a LOW_STANDARD_ADMISSION (≤ 3 days) and pulled the group's mean LOS to 3.8
    n = 5
    t = pa.table({"case_id": [f"c{i}" for i in range(n)], "hospital_id": ["H"] * n, "insurance_type": ["employee"] * n,
                  "sex": pa.array([1] * n, pa.int8()), "age_years": pa.array([40] * n, pa.int16()),
                  "principal_dx": ["A04.900"] * n, "total_cost": [500.0] * n,
                  "los_days": pa.array([5, 5, 5, 5, -1], pa.int32()),
                  "admission_date": [D(2025, 2, 24)] * n, "discharge_date": [D(2025, 3, 1)] * n})  # fmt: skip
    result = audit(t, scheme="dip", policy=Policy.load(data_path("policies", "demo-2025.toml")), level=3)
    flagged = {(r["case_id"], r["flag"]) for r in result["flags"].to_pylist()}
    assert ("c4", "LOW_STANDARD_ADMISSION") not in flagged
    assert result["groups"].to_pylist()[0]["mean_los"] == 5.0
    row = result["cases"].to_pylist()[4]
    assert (row["los_days"], row["route"], row["expected_payment"]) == (None, "QC_ERROR", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[readmission]\nshort_dayz = { value = 1, unit = 'days', source = 'assumption', note = 'x' }",
            "unknown key",
        ),
        ("[risk]\nsd = { value = 'median', source = 'assumption', note = 'x' }", "is not one of"),
        (
            "[long_stay]\nlos_ratio = { value = 3.0, unit = 'days', source = 'assumption', note = 'x' }",
            "unit must be",
        ),
        ("[long_stay]\nlos_ratio = { value = 3.0, unit = 'ratio', source = 'nowhere' }", "not declared"),
        ("[long_stay]\nlos_ratio = { value = 3.0, unit = 'ratio', source = 'assumption' }", "needs a note"),
    ],
)
def test_settings_refuse_what_they_do_not_know(tmp_path, text, message):
    from payment.policy import PolicyError

    path = tmp_path / "bad.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(PolicyError, match=message):
        AuditSettings.load(path)
