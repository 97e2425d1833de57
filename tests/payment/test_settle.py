"""Settlement (payment.settle): one row per case, money reconciles, routes and reruns are stable."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grouper.errors import InputError, OutputError
from payment.budget import budget_cascade
from payment.money import round_fen
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
EXACT = DEMO.replace({"point_value.decimals": None})


def _fen(s) -> int:
    """Fen of a yuan amount: a decimal string (region.json) or a Decimal (the hospitals table)."""
    return int(format(s, "f").replace(".", "") if not isinstance(s, str) else s.replace(".", ""))


def test_one_row_per_case_in_input_order():
    cases, hospitals = synth.region(2_000, 9, seed=3)
    result = settle(cases, hospitals, DEMO)
    assert result.cases.num_rows == cases.num_rows
    assert result.cases.column("case_id").to_pylist() == cases.column("case_id").to_pylist()
    assert result.hospitals.num_rows == hospitals.num_rows


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 300),
    n_h=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    form=st.sampled_from(["ratio", "subtraction"]),
)
def test_hospital_shares_add_up_to_the_distributable_budget(n, n_h, seed, form):
    cases, hospitals = synth.region(n, n_h, seed=seed)
    policy = EXACT.replace({"point_value.form": form})
    result = settle(cases, hospitals, policy)
    for pool, info in result.region["pools"].items():
        if Fraction(info["settlement_point_value_exact"]) == 0:
            continue
        distributable = budget_cascade(policy.budget[pool]).distributable
        assert _fen(info["allocated"]) == round_fen(distributable)
    total = sum(_fen(x) for x in result.hospitals.column("allocated").to_pylist())
    assert total == _fen(result.region["totals"]["allocated"])


def test_no_bands_no_assessment_means_payment_due_equals_the_share():
    cases, hospitals = synth.region(3_000, 5, seed=1)
    policy = EXACT.replace({"settlement.surplus_bands": None, "settlement.overspend_bands": None})
    result = settle(cases, hospitals, policy)
    h = result.hospitals
    assert h.column("payment_due").to_pylist() == h.column("allocated").to_pylist()
    distributable = sum(_fen(p["cascade"]["distributable"]) for p in result.region["pools"].values())
    assert sum(_fen(x) for x in h.column("payment_due").to_pylist()) == distributable


def _small_cases() -> tuple[pa.Table, pa.Table]:
    hospitals = pa.table({"hospital_id": ["A", "B"], "name": ["a", "b"], "level": [3, 2]})
    d = dt.date(2025, 3, 1)
    rows = [
        # case_id, hospital, 险种, dx, proc, dept, los, cost, score, kind
        ("c1", "A", "employee", "K35.800", "", "外科", 5, 6000.0, 1000.0, "core"),
        ("c2", "A", "employee", "J35.300", "28.3x00", "耳鼻喉科", 3, 9000.0, 800.0, "core"),
        ("c3", "A", "employee", "J35.300", "28.3x00", "耳鼻喉科", 3, 20000.0, 800.0, "core"),
        ("c4", "B", "resident", "F20.000", "", "精神科", 61, 20000.0, 900.0, "core"),
        ("c5", "B", "self_pay", "K35.800", "", "外科", 5, 6000.0, 1000.0, "core"),
        ("c6", "Z", "resident", "K35.800", "", "外科", 5, 6000.0, 1000.0, "core"),
        ("c7", "B", "resident", "R99.x00", "", "内科", 5, 6000.0, None, ""),
        ("c8", "B", "resident", "I10.x00", "", "内科", 5, 4000.0, 1485.0, "blank"),
        ("c9", "B", "resident", "K35.800", "", "外科", 5, 6000.0, 1000.0, "core"),
    ]
    cols = list(zip(*rows, strict=True))
    cost = np.array(cols[7])
    cases = pa.table(
        {
            "case_id": cols[0],
            "hospital_id": cols[1],
            "insurance_type": cols[2],
            "principal_dx": cols[3],
            "principal_proc": cols[4],
            "department": cols[5],
            "los_days": pa.array(cols[6], pa.int32()),
            "discharge_date": [d] * len(rows),
            "total_cost": cost,
            "fund_paid": cost * 0.7,
            "patient_paid": cost * 0.3,
            "dip_group": ["K35.8", "J35.3", "J35.3", "F20.0", "K35.8", "K35.8", None, "KBBZ", "K35.8"],
            "dip_status": [
                "COMPREHENSIVE",
                "OK",
                "OK",
                "OK",
                "OK",
                "OK",
                "UNMATCHED",
                "BLANK",
                "DUPLICATE_CASE",
            ],
            "dip_kind": cols[9],
            "dip_score": pa.array(cols[8], pa.float64()),
            "aux_coef": [1.0] * len(rows),
            "dip_avg_cost": [6000.0, 5000.0, 5000.0, 5000.0, 6000.0, 6000.0, None, 9000.0, 6000.0],
        }
    )
    return cases, hospitals


def test_routes_follow_the_policy_lists_with_reasons():
    cases, hospitals = _small_cases()
    out = settle(cases, hospitals, DEMO).cases.to_pydict()
    got = {c: (r, why) for c, r, why in zip(out["case_id"], out["route"], out["route_reason"], strict=True)}
    assert got == {
        "c1": ("DIP", "scheme"),
        "c2": ("PER_CASE", "per_case_list"),
        "c3": ("DIP", "per_case_exit_to_scheme"),  # 20,000 > 2 × 9,500 (E-4)
        "c4": ("BED_DAY", "bed_day_category"),
        "c5": ("EXCLUDED", "self_pay_or_unknown_insurance"),
        "c6": ("EXCLUDED", "unknown_hospital"),
        "c7": ("FEE_FOR_SERVICE", "ungrouped"),
        "c8": ("DIP", "scheme"),
        "c9": ("EXCLUDED", "duplicate_case"),  # the grouper's DUPLICATE_CASE is never paid twice
    }
    pay = dict(
        zip(out["case_id"], zip(out["standard_payment"], out["fund_payment"], strict=True), strict=True)
    )
    assert pay["c2"] == (9500.0, 5700.0)  # E-1: 三级 9,500 × 60 %
    assert pay["c4"][0] == 250 * 60 + 250 * 0.9  # level-2 psych rate 250, day 61 in the 0.9 band
    assert pay["c7"] == (6000.0, 4200.0)
    assert pay["c5"] == (0.0, 0.0)
    dev = dict(zip(out["case_id"], out["deviation"], strict=True))
    assert dev["c8"] == "unmatched"
    pts = dict(zip(out["case_id"], out["points"], strict=True))
    assert pts["c8"] == pytest.approx(1485 * 4000 / 9000 * 0.7)  # 空白病种, no k (§3.5)
    assert pts["c1"] == pytest.approx(1000 * 1.07)


def test_special_cases_are_capped_region_wide_in_declared_order():
    cases, hospitals = synth.region(1_000, 4, seed=5)
    cost = cases.column("total_cost").to_numpy()
    avg = cases.column("dip_avg_cost").to_numpy()
    paid = np.asarray(cases.column("insurance_type").cast(pa.string())) != "self_pay"
    expensive = [f"C{i}" for i in np.flatnonzero((cost > 4 * avg * 1.07) & paid)]
    result = settle(cases, hospitals, DEMO, special_cases=[*expensive, *expensive[:1], "nope"])
    sc = result.region["special_cases"]
    assert sc["cap"] == int(result.region["routes"]["DIP"] * 0.005)
    assert sc["approved"] == min(sc["cap"], len(expensive))
    flagged = np.asarray(result.cases.column("case_id"))[np.asarray(result.cases.column("special_case"))]
    assert list(flagged) == sorted(expensive[: sc["approved"]], key=lambda c: int(c[1:]))


def test_drg_policy_settles_with_a_weights_table():
    policy = Policy.load(ROOT / "codebooks/policies/example-drg-2025.toml")
    cases, hospitals = synth.region(500, 3, seed=2)
    cases = cases.append_column("drg", pa.array(np.where(np.arange(500) % 2, "GB11", "ES23")))
    weights = pa.table({"drg": ["GB11", "ES23"], "rw": [1.8, 0.6]})
    result = settle(cases, hospitals, policy, weights=weights)
    assert result.region["routes"]["DRG"] > 0
    pts = result.cases.filter(pa.compute.equal(result.cases.column("deviation"), "normal"))
    assert set(np.round(np.asarray(pts.column("base_points")), 6)) <= {180.0, 60.0}
    info = result.region["pools"]["all"]
    assert info["form"] == "subtraction"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settle")
    cases, hospitals = synth.region(5_000, 12, seed=11)
    pq.write_table(cases, d / "cases.parquet")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    return d


def test_rerun_is_byte_identical(files):
    base = (files / "cases.parquet", files / "hospitals.csv", ROOT / "codebooks/policies/demo-2025.toml")
    for out in ("a", "b"):
        settle_files(*base, files / out)
    for name in ("cases.parquet", "hospitals.csv", "region.json"):
        assert (files / "a" / name).read_bytes() == (files / "b" / name).read_bytes()
    meta = pq.read_schema(files / "a" / "cases.parquet").metadata
    assert meta[b"drgdip.policy_sha256"].decode() == DEMO.sha256
    with pytest.raises(OutputError, match="already exists"):
        settle_files(*base, files / "a")


def test_history_gives_the_budget_point_value(files):
    hist = files / "hist"
    hist.mkdir()
    (hist / "region_years.csv").write_text(
        "pool,year,total_cost,total_points\n"
        + "".join(
            f"{p},{y},{c},{q}\n"
            for p in ("employee", "resident")
            for y, c, q in ((2022, 900, 90), (2023, 960, 94), (2024, 1000, 96))
        ),
        encoding="utf-8",
    )
    policy = files / "hist.toml"
    text = (ROOT / "codebooks/policies/demo-2025.toml").read_text(encoding="utf-8")
    policy.write_text(
        text.replace('budget_method    = { value = "given"', 'budget_method    = { value = "history"'),
        encoding="utf-8",
    )
    settle_files(files / "cases.parquet", files / "hospitals.csv", policy, files / "h", history=hist)
    import json

    region = json.loads((files / "h" / "region.json").read_text(encoding="utf-8"))
    assert region["pools"]["employee"]["budget_point_value_published"] == "10.3368000000"  # V-1


def test_a_missing_column_is_an_input_error(files, tmp_path):
    bad = tmp_path / "h.csv"
    bad.write_text("hospital_id,name\nH0000,x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"missing column\(s\) level"):
        settle_files(files / "cases.parquet", bad, ROOT / "codebooks/policies/demo-2025.toml", tmp_path / "o")


@settings(max_examples=200, deadline=None)
@given(
    units=st.integers(0, 10**16),
    pat=st.integers(0, 10**10),
    v=st.fractions(Fraction(1, 100), Fraction(100)),
    ratio=st.sampled_from([Fraction(9, 10), Fraction(95, 100), Fraction(1)]),
)
def test_fast_monthly_rounding_matches_the_exact_formula(units, pat, v, ratio):
    from payment.clearing import monthly_presettlement
    from payment.money import POINT_UNITS
    from payment.settle import _monthly_fen

    exact_value = monthly_presettlement(Fraction(units, POINT_UNITS), v, Fraction(pat, 100), ratio)
    one = np.array([units], dtype=object), np.array([pat], dtype=object)
    assert _monthly_fen(one[0], v, one[1], ratio).tolist() == [round_fen(exact_value)]


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(-(10**17), 10**17), st.integers(-(10**11), 10**11)), max_size=20),
    v=st.fractions(Fraction(1, 100), Fraction(100)),
    ratio=st.sampled_from([Fraction(9, 10), Fraction(95, 100), Fraction(1)]),
)
def test_monthly_rounding_of_many_months_at_once_is_each_months(rows, v, ratio):
    """The pre-settlement of a pool's month in all hospitals at once (object arrays of ints) rounds each one as
    alone, negative amounts (payments above the points' value) included."""
    from payment.clearing import monthly_presettlement
    from payment.money import POINT_UNITS
    from payment.settle import _monthly_fen

    units = np.array([u for u, _ in rows], dtype=object)
    pat = np.array([p for _, p in rows], dtype=object)
    each = [
        round_fen(monthly_presettlement(Fraction(u, POINT_UNITS), v, Fraction(p, 100), ratio))
        for u, p in rows
    ]
    assert _monthly_fen(units, v, pat, ratio).tolist() == each


def _pooled_points(result, pool: str) -> Fraction:
    return Fraction(result.region["pools"][pool]["total_points"])


def test_fixed_regime_pays_points_at_the_fixed_value():
    cases, hospitals = synth.region(3_000, 4, seed=8)
    policy = EXACT.replace(
        {
            "point_value.regime": "fixed",
            "point_value.employee.fixed": {"value": 6.0, "unit": "yuan/point", "source": "dip-2020"},
            "point_value.resident.fixed": {"value": 6.0, "unit": "yuan/point", "source": "dip-2020"},
        }
    )
    info = settle(cases, hospitals, policy).region["pools"]["employee"]
    assert info["settlement_point_value"] == "6.0000000000"
    assert info["cascade"]["distributable"] == "112700000.00"  # 126M − 5 % − 7M carve-outs; not the value


def test_elastic_regime_caps_the_increment_value_and_keeps_the_rest():
    cases, hospitals = synth.region(3_000, 4, seed=8)
    policy = EXACT.replace(
        {
            "point_value.regime": "elastic",
            "point_value.employee.fixed": {"value": 1.0, "unit": "yuan/point", "source": "dip-2020"},
            "point_value.resident.fixed": {"value": 1.0, "unit": "yuan/point", "source": "dip-2020"},
        }
    )
    info = settle(cases, hospitals, policy).region["pools"]["employee"]
    # a low fixed value: the base volume exceeds the actual points, all paid at V_fixed, the rest kept
    assert info["settlement_point_value"] == "1.0000000000"
    assert _fen(info["kept_by_fund"]) > 0


def test_unified_points_pool_bed_day_and_per_case_money():
    cases, hospitals = synth.region(20_000, 6, seed=4, codes=True)
    policy = EXACT.replace({"budget.design": "unified"})
    result = settle(cases, hospitals, policy)
    t = result.cases.to_pydict()
    bd = [i for i, r in enumerate(t["route"]) if r == "BED_DAY"]
    assert bd and all(t["point_value"][i] is not None and t["points"][i] > 0 for i in bd)
    for pool, info in result.region["pools"].items():
        distributable = budget_cascade(policy.budget[pool], design="unified").distributable
        assert _fen(info["allocated"]) == round_fen(distributable)


def test_history_gives_efficient_values_and_level_coefficients(files):
    hist = files / "hist2"
    hist.mkdir()
    (hist / "hospital_years.csv").write_text(
        "pool,hospital_id,total_cost,total_points\n"
        + "".join(f"{p},{h},{c},{q}\n" for p in ("employee", "resident")
                  for h, c, q in (("H1", 52000000, 5000000), ("H2", 24000000, 2500000), ("H3", 9000000, 1000000))),
        encoding="utf-8",
    )  # fmt: skip
    (hist / "level_years.csv").write_text(
        "year,level,mean_cost\n"
        + "".join(f"{y},{lv},{m}\n" for y in (2022, 2023, 2024)
                  for lv, m in ((0, 10500), (1, 8400), (2, 9975), (3, 12600))),
        encoding="utf-8",
    )  # fmt: skip
    text = (ROOT / "codebooks/policies/demo-2025.toml").read_text(encoding="utf-8")
    text = text.replace('budget_method    = { value = "given"', 'budget_method    = { value = "efficient_1d"')
    text = text.replace(
        'method  = { value = "table", source = "dip-2020" }',
        'method  = { value = "history", source = "dip-2020" }',
    )
    policy = files / "hist2.toml"
    policy.write_text(text, encoding="utf-8")
    out = files / "h2"
    settle_files(files / "cases.parquet", files / "hospitals.csv", policy, out, history=hist)
    import json

    region = json.loads((out / "region.json").read_text(encoding="utf-8"))
    assert region["pools"]["resident"]["budget_point_value_published"] == "9.4286000000"  # V-5
    cases = pq.read_table(out / "cases.parquet").to_pandas()
    levels = dict(zip(*pacsv.read_csv(files / "hospitals.csv").select(["hospital_id", "level"]).to_pydict().values(),
                      strict=True))  # fmt: skip
    coef = cases.dropna(subset=["hospital_coef"]).assign(level=lambda d: d.hospital_id.map(levels))
    assert set(coef[coef.level == 3].hospital_coef.round(12)) == {1.2}  # K-1: 12,600 / 10,500
    assert set(coef[coef.level == 1].hospital_coef.round(12)) == {0.8}


def test_monthly_point_values_change_the_prepayment():
    cases, hospitals = synth.region(4_000, 3, seed=9)
    series = {"unit": "yuan/point", "source": "assumption", "note": "test", "values": {"2025-07": 11.4364}}
    base = settle(cases, hospitals, EXACT).region["totals"]["prepaid"]
    more = settle(cases, hospitals, EXACT.replace({"point_value.employee.monthly": series})).region["totals"]
    assert _fen(more["prepaid"]) > _fen(base)


def test_a_hospital_level_outside_1_to_3_is_an_error():
    cases, hospitals = _small_cases()
    hospitals = hospitals.set_column(2, "level", pa.array([3, 4]))
    with pytest.raises(InputError, match="level must be 1, 2 or 3 \\(hospital B\\)"):
        settle(cases, hospitals, DEMO)


def test_grouping_columns_are_joined_onto_the_discharges(files, tmp_path):
    table = pq.read_table(files / "cases.parquet")
    grouping = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]
    pq.write_table(table.select(grouping), tmp_path / "grouped.parquet")
    pq.write_table(table.drop_columns(grouping[1:]), tmp_path / "discharges.parquet")
    common = (files / "hospitals.csv", ROOT / "codebooks/policies/demo-2025.toml")
    settle_files(
        tmp_path / "grouped.parquet", *common, tmp_path / "joined", discharges=tmp_path / "discharges.parquet"
    )
    settle_files(files / "cases.parquet", *common, tmp_path / "whole")
    assert (tmp_path / "joined" / "hospitals.csv").read_bytes() == (
        tmp_path / "whole" / "hospitals.csv"
    ).read_bytes()
    pq.write_table(table.select(grouping).slice(1), tmp_path / "short.parquet")
    with pytest.raises(InputError, match="rows do not line up"):
        settle_files(
            tmp_path / "short.parquet", *common, tmp_path / "bad", discharges=tmp_path / "discharges.parquet"
        )


def test_a_k_per_pool_replaces_the_hospital_coefficient_in_every_formula():
    """k = "by_pool" (docs/formulas.md §3.3, 泰安's 0.611 职工 / 0.631 居民): normal S·k, high S·(q − 2 + k)."""
    policy = Policy.load(ROOT / "codebooks/policies/taian-2025.toml")
    cases, hospitals = _small_cases()
    out = settle(cases, hospitals, policy).cases.to_pydict()
    pts = dict(zip(out["case_id"], out["points"], strict=True))
    assert pts["c1"] == pytest.approx(1000 * 0.611)  # employee, q = 1: normal
    assert pts["c3"] == pytest.approx(800 * (4 - 2 + 0.611))  # employee, q = 4: high
    assert pts["c4"] == pytest.approx(900 * (4 - 2 + 0.631))  # resident, q = 4: high
