"""Synthetic region (grouper.synth): schema, determinism, distributions, populations, defects, regrouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import payment.cli.synth  # noqa: F401  (registers the command)
from grouper.dip import read_catalogue
from grouper.resources import data_path
from grouper.schema import DISCHARGE_SCHEMA, FEE_COLUMNS
from grouper.synth import (
    DEFECT_KINDS,
    FEE_FIELDS,
    HOSPITAL_SCHEMA,
    SYNTH_SCHEMA,
    RegionError,
    generate,
    load_region,
    plan_region,
    write_region,
)
from grouper.synth.blocks import generate_block
from payment.cli._app import app

N, YEARS, HOSPITALS, SEED = 300_000, [2022, 2023, 2024], 40, 11


@pytest.fixture(scope="module")
def region():
    return load_region()


@pytest.fixture(scope="module")
def data():
    table, hospitals = generate(N, YEARS, HOSPITALS, SEED, truth=True)
    return table, hospitals


@pytest.fixture(scope="module")
def df(data):
    table, hospitals = data
    frame = table.drop_columns(["other_dx", "other_procs"]).to_pandas()
    frame["n_other_dx"] = pa.compute.list_value_length(table["other_dx"]).to_numpy()
    level = dict(zip(hospitals["hospital_id"].to_pylist(), hospitals["level"].to_pylist(), strict=True))
    frame["level"] = frame["hospital_id"].map(level)
    frame["year"] = pd.to_datetime(frame["discharge_date"]).dt.year
    return frame


@pytest.fixture(scope="module")
def catalogue():
    return read_catalogue("pingdingshan-2025").table.to_pandas().set_index("dip_code")


@pytest.fixture(scope="module")
def ordinary(df):
    """Clean rows generated for a DIP group (no defect, not bed-day)."""
    return df[df["synthetic_defect"].isna() & df["synthetic_dip_group"].notna()]


def _dx_codes() -> set[str]:
    return set(pd.read_csv(data_path("chs-drg-1.1", "dx.csv"), dtype=str)["code"])


# ---------------------------------------------------------------- schema and determinism


def test_schema_and_filled_fields(data, df):
    table, hospitals = data
    assert table.schema.remove(table.schema.get_field_index("synthetic_dip_group")) == SYNTH_SCHEMA
    assert SYNTH_SCHEMA.remove(SYNTH_SCHEMA.get_field_index("synthetic_defect")) == DISCHARGE_SCHEMA
    assert hospitals.schema == HOSPITAL_SCHEMA
    assert table.num_rows == N
    always = [
        "case_id",
        "patient_id",
        "hospital_id",
        "insurance_type",
        "sex",
        "age_years",
        "admission_date",
        "discharge_date",
        "los_days",
        "discharge_mode",
        "department",
        "total_cost",
        "fund_paid",
        "patient_paid",
        "payment_method",
        "icu_hours",
        "vent_hours",
    ]
    assert table.select(always).to_pandas().notna().all().all()
    assert df.loc[df["synthetic_defect"] != "missing_pdx", "principal_dx"].notna().all()
    assert set(df["insurance_type"]) == {"employee", "resident", "self_pay"}
    assert set(df["discharge_mode"]) <= {1, 2, 3, 4, 5, 9}


def test_same_seed_same_bytes(tmp_path):
    a = write_region(tmp_path / "a", 20_000, YEARS, 12, seed=5)
    b = write_region(tmp_path / "b", 20_000, YEARS, 12, seed=5)
    c = write_region(tmp_path / "c", 20_000, YEARS, 12, seed=6)
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert a[0].read_bytes() != c[0].read_bytes()
    assert pq.read_table(a[0]).schema.remove_metadata() == SYNTH_SCHEMA


def test_fee_breakdown_sums_to_total():
    plain, _ = generate(30_000, [2024], 8, seed=4)
    with_fees, _ = generate(30_000, [2024], 8, seed=4, fees=True)
    others = [c for c in plain.column_names if c not in FEE_COLUMNS]
    assert with_fees.select(others).equals(plain.select(others))
    assert all(plain[c].null_count == plain.num_rows for c in FEE_COLUMNS)  # without fees: null
    fees = np.column_stack([with_fees[f.name].to_numpy() for f in FEE_FIELDS])
    fen = np.rint(fees * 100).astype(np.int64)
    assert (fen >= 0).all()
    assert (fen.sum(axis=1) == np.rint(with_fees["total_cost"].to_numpy() * 100)).all()
    drugs = fees[:, 8:11].sum() / fees.sum()
    assert 0.2 < drugs < 0.45


def test_blocks_independent_of_order():
    plan = plan_region(200_000, YEARS, 10, seed=3)
    assert plan.n_blocks > 2
    alone = generate_block(plan, 2)
    in_sequence = [generate_block(plan, b) for b in range(3)][2]
    assert alone.equals(in_sequence)


# ---------------------------------------------------------------- case mix and costs


def test_group_shares_follow_catalogue(ordinary, catalogue):
    share = ordinary["synthetic_dip_group"].value_counts(normalize=True)
    weights = catalogue.loc[catalogue["kind"].isin(["core", "comprehensive"]), "n_cases"]
    expected = (weights / weights.sum()).reindex(share.index)
    top = expected.sort_values().index[-30:]
    se = np.sqrt(expected[top] * (1 - expected[top]) / len(ordinary))
    assert (np.abs(share[top] - expected[top]) < 5 * se).all()
    assert 0.5 * (share - expected.reindex(share.index)).abs().sum() < 0.05


def test_mean_cost_by_group_matches_catalogue(ordinary, catalogue):
    base = ordinary[ordinary["year"] == 2024]
    stats = base.groupby("synthetic_dip_group")["total_cost"].agg(["mean", "size"])
    stats = stats[stats["size"] >= 300]
    cat = catalogue.loc[stats.index]
    ratio = stats["mean"] / cat["avg_cost"]
    tolerance = 0.02 + 5 * cat["cv"] / np.sqrt(stats["size"])
    assert len(stats) > 20
    assert (np.abs(ratio - 1) < tolerance).all()
    weighted = (stats["mean"] * stats["size"]).sum() / (cat["avg_cost"] * stats["size"]).sum()
    assert weighted == pytest.approx(1, abs=0.01)


def test_level_effects_and_growth(ordinary, catalogue, region):
    rel = ordinary["total_cost"] / ordinary["synthetic_dip_group"].map(catalogue["avg_cost"])
    rel = rel / (1 + region.get("growth.cost")) ** (ordinary["year"] - region["base_year"])
    by_level = rel.groupby(ordinary["level"]).mean()
    expected = np.asarray(region.get("levels.cost_factor"))
    assert (by_level / by_level[3]).to_numpy() == pytest.approx(expected, abs=0.03)
    surgical = ordinary["principal_proc"].notna().groupby(ordinary["level"]).mean()
    score = ordinary["synthetic_dip_group"].map(catalogue["score"]).groupby(ordinary["level"]).mean()
    assert surgical[1] < surgical[2] < surgical[3]
    assert score[1] < score[2] < score[3]
    per_year = (
        (ordinary["total_cost"] / ordinary["synthetic_dip_group"].map(catalogue["avg_cost"]))
        .groupby(ordinary["year"])
        .mean()
    )
    growth = per_year.to_numpy()[1:] / per_year.to_numpy()[:-1]
    assert growth == pytest.approx(1 + region.get("growth.cost"), abs=0.015)
    volume = ordinary["year"].value_counts().sort_index().to_numpy()
    assert (volume[1:] > volume[:-1]).all()


def test_los_near_catalogue(ordinary, catalogue):
    alive = ordinary[(ordinary["discharge_mode"] != 5) & (ordinary["year"] == 2024)]
    stats = alive.groupby("synthetic_dip_group")["los_days"].agg(["mean", "size"])
    stats = stats[stats["size"] >= 500]
    ratio = stats["mean"] / catalogue.loc[stats.index, "avg_los"]
    assert ratio.median() == pytest.approx(1, abs=0.08)
    lengths = ordinary["los_days"].to_numpy()
    days = (ordinary["discharge_date"] - ordinary["admission_date"]).map(lambda d: d.days).to_numpy()
    assert (lengths >= 1).all() and (lengths == days).all()


# ---------------------------------------------------------------- populations


def test_deaths_concentrate_in_severe_groups(ordinary, catalogue, region):
    dead = ordinary["discharge_mode"] == 5
    assert dead.mean() == pytest.approx(region.get("outcome.death_rate"), rel=0.15)
    score = ordinary["synthetic_dip_group"].map(catalogue["score"])
    low = score < score.quantile(0.2)
    high = score > score.quantile(0.9)
    assert dead[low].sum() > 0 and dead[low].mean() < 0.2 * dead[high].mean()


def test_readmissions_within_15_days(df, region):
    repeated = df[df["patient_id"].duplicated(keep=False) & df["synthetic_defect"].isna()]
    share = df["patient_id"].duplicated().mean()
    assert share == pytest.approx(region.get("readmission.share") * 0.985, rel=0.15)
    first = repeated.sort_values("admission_date").groupby("patient_id").head(2)
    pairs = first.groupby("patient_id").agg(
        gap=("admission_date", lambda s: (s.iloc[1] - first.loc[s.index[0], "discharge_date"]).days),
        sex=("sex", "nunique"),
        age=("age_years", "nunique"),
        dx=("principal_dx", "nunique"),
    )
    assert pairs["gap"].between(1, region.get("readmission.max_gap_days")).all()
    assert (pairs[["sex", "age", "dx"]] == 1).all().all()


def test_bed_day_population(df, region):
    bed = df[(df["payment_method"] == region.get("payment_method.bed_day")) & df["synthetic_defect"].isna()]
    cats = region.get("bed_day.categories")
    assert len(bed) / len(df) == pytest.approx(sum(c["share"] for c in cats), rel=0.1)
    prefixes = tuple(p for c in cats for p in c["dx"])
    assert bed["principal_dx"].str.startswith(prefixes).all()
    assert bed["los_days"].between(30, 180).all()
    assert bed["synthetic_dip_group"].isna().all()
    psych = bed["principal_dx"].str.startswith("F")
    assert psych.any() and (bed.loc[psych, "department"] == "15").all()


def test_per_case_population(df, region):
    rows = df[(df["payment_method"] == region.get("payment_method.per_case")) & df["synthetic_defect"].isna()]
    assert len(rows) > 100
    entries = region.get("per_case.list")
    ok = np.zeros(len(rows), dtype=bool)
    for e in entries:
        ok |= (
            rows["principal_dx"].str.startswith(tuple(e["dx"])) & rows["principal_proc"].isin(e["procs"])
        ).to_numpy()
    assert ok.all()


def test_insurance_split(df, region):
    clean = df[df["synthetic_defect"].isna()]
    money = region["insurance"]
    share = clean["insurance_type"].value_counts(normalize=True)
    for name, expected in zip(money["types"], money["share"], strict=True):
        assert share[name] == pytest.approx(expected, abs=0.01)
    fen = (clean[["total_cost", "fund_paid", "patient_paid"]] * 100).round().astype(np.int64)
    assert (fen["fund_paid"] + fen["patient_paid"] == fen["total_cost"]).all()
    assert (clean.loc[clean["insurance_type"] == "self_pay", "fund_paid"] == 0).all()
    deductible = np.asarray(money["deductible"])[clean["level"] - 1]
    in_scope = np.maximum(clean["total_cost"] * money["in_scope"] - deductible, 0)
    for name, ratio in zip(money["types"], money["ratio"], strict=True):
        rows = (clean["insurance_type"] == name).to_numpy() & (in_scope > 0).to_numpy()
        policy = clean.loc[rows, "fund_paid"].sum() / in_scope[rows].sum()
        assert policy == pytest.approx(ratio, abs=0.001)


def test_sex_and_age_follow_diagnosis(df, region):
    clean = df[df["synthetic_defect"].isna() & df["principal_dx"].notna()]
    obstetric = clean[clean["principal_dx"].str.startswith("O")]
    low, high = region.get("age.obstetric")
    assert (
        len(obstetric) and (obstetric["sex"] == 2).all() and obstetric["age_years"].between(low, high).all()
    )
    newborn = clean[clean["principal_dx"].str.startswith("P")]
    assert len(newborn) and (newborn["age_years"] == 0).all()
    assert newborn["age_days"].between(0, 28).all() and newborn["birth_weight_g"].notna().all()
    lbw = newborn[newborn["principal_dx"].str.startswith("P07.0")]
    assert (lbw["birth_weight_g"] < 1000).all()
    assert clean.loc[clean["principal_dx"].str.startswith("C61"), "sex"].eq(1).all()
    assert clean.loc[clean["age_years"] > 0, "age_days"].isna().all()


def test_secondary_diagnoses_carry_cc_and_mcc(data):
    table, _ = data
    other = pa.compute.list_flatten(table["other_dx"]).to_pandas()
    assert len(other) / table.num_rows > 1
    book = data_path("chs-drg-1.1")
    cc = set(pd.read_csv(book / "cc.csv", dtype=str)["code"])
    mcc = set(pd.read_csv(book / "mcc.csv", dtype=str)["code"])
    assert 0.15 < other.isin(cc).mean() < 0.45
    assert 0.02 < other.isin(mcc).mean() < 0.10
    assert other.isin(_dx_codes()).all()


# ---------------------------------------------------------------- hospitals and defects


def test_hospitals(data, region):
    _, hospitals = data
    h = hospitals.to_pandas()
    assert h["hospital_id"].is_unique and h["name"].is_unique
    assert set(h["type"]) == {"general", "tcm", "specialist", "primary-care"}
    assert set(h["region"]) <= {r["name"] for r in region["regions"]}
    counts = h["level"].value_counts()
    for level, share in zip((1, 2, 3), region.get("hospitals.level_share"), strict=True):
        assert abs(counts[level] - share * len(h)) <= 1
    assert (h.loc[h["type"] == "primary-care", "level"] == 1).all()


def test_defects_are_flagged_and_only_those(df, region):
    flagged = df["synthetic_defect"].notna()
    assert flagged.mean() == pytest.approx(region.get("defects.share"), rel=0.2)
    assert set(df.loc[flagged, "synthetic_defect"]) == set(DEFECT_KINDS)
    dx = _dx_codes()
    kind = df["synthetic_defect"]
    invalid = ~df["principal_dx"].isin(dx) & df["principal_dx"].notna()
    assert (invalid == (kind == "invalid_code")).all()
    assert (df["principal_dx"].isna() == (kind == "missing_pdx")).all()
    assert ((df["los_days"] < 0) == (kind == "los_negative")).all()
    assert (
        df.loc[kind == "los_negative", "admission_date"] > df.loc[kind == "los_negative", "discharge_date"]
    ).all()
    assert (df["case_id"].duplicated() == (kind == "duplicate_case_id")).all()
    male_code = df["principal_dx"].str.startswith(("N40", "C61"), na=False)
    assert not (male_code & (df["sex"] == 2) & (kind != "sex_conflict")).any()


def test_engine_catches_exactly_the_defects(data):
    import grouper
    from grouper.codebook import Codebook

    table, _ = data
    sample = table.slice(0, 100_000)
    result = grouper.group_drg(sample.drop_columns(["synthetic_dip_group"]), Codebook.load("chs-drg-1.1"))
    status = pd.Series(result["drg_status"].to_pylist())
    kind = pd.Series(sample["synthetic_defect"].to_pylist())
    expected = {
        "invalid_code": "PDX_UNKNOWN",
        "missing_pdx": "PDX_MISSING",
        "sex_conflict": "SEX_CONFLICT",
        "los_negative": "LOS_INVALID",
        "duplicate_case_id": "DUPLICATE_CASE",
    }
    for k, s in expected.items():
        hit = status[kind == k].eq(s).mean()
        assert hit > (0.95 if k == "los_negative" else 0.999), (k, hit)  # LOS_INVALID is a warning
        assert not status[kind != k].eq(s).any(), k
    assert status[kind.isna()].eq("OK").mean() > 0.99


def test_generated_cases_regroup_into_their_dip_group(data):
    from grouper.dip.group import group_dip

    table, _ = data
    sample = table.slice(0, 100_000)
    result = group_dip(sample, "pingdingshan-2025")
    frame = pd.DataFrame(
        {
            "want": sample["synthetic_dip_group"].to_pylist(),
            "got": result["dip_group"].to_pylist(),
            "defect": sample["synthetic_defect"].to_pylist(),
        }
    )
    clean = frame[frame["want"].notna() & frame["defect"].isna()]
    assert len(clean) > 90_000
    assert (clean["got"] == clean["want"]).all()


# ---------------------------------------------------------------- parameters and CLI


def test_region_file_is_validated(tmp_path):
    text = data_path("synth", "region-default.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("cost = 0.04", "cots = 0.04"), encoding="utf-8")
    with pytest.raises(RegionError, match=r"unknown key growth\.cots"):
        load_region(bad)
    bad.write_text(text.replace("share = [0.28, 0.67, 0.05]", "share = [0.28, 0.67, 0.15]"), encoding="utf-8")
    with pytest.raises(RegionError, match=r"insurance\.share"):
        load_region(bad)
    bad.write_text(text.replace("los_sigma = 0.45", 'los_sigma = "wide"'), encoding="utf-8")
    with pytest.raises(RegionError, match=r"cost\.los_sigma"):
        load_region(bad)


def test_cli_writes_region(tmp_path):
    out = tmp_path / "region"
    args = [
        "synth",
        "--cases",
        "5000",
        "--years",
        "2023,2024",
        "--hospitals",
        "6",
        "--seed",
        "2",
        "--out",
        str(out),
    ]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    table = pq.read_table(out / "discharges.parquet")
    assert table.num_rows == 5000
    assert len((out / "hospitals.csv").read_text(encoding="utf-8").splitlines()) == 7
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, [*args, "--force", "-q"]).exit_code == 0
    assert runner.invoke(app, [*args[:-2], "--years", "20x4", "--out", str(tmp_path / "x")]).exit_code == 1
