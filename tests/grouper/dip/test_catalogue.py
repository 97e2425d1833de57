"""Catalogue format: the shipped 平顶山 2025 catalogue (docs/dip.md §6) and CSV/Parquet round trips."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from grouper.dip import Catalogue, CatalogueError, read_catalogue, write_catalogue


@pytest.fixture(scope="module")
def pds() -> Catalogue:
    return read_catalogue("pingdingshan-2025")


def test_counts_match_the_reference(pds):
    # docs/dip.md §6: 3,877 core + 567 comprehensive + 88 placeholders + 3 export-only + 1 KBBZ = 4,536
    kinds = pds.table.column("kind").value_counts().to_pylist()
    assert {k["values"]: k["counts"] for k in kinds} == {
        "core": 3877,
        "comprehensive": 567,
        "placeholder": 88,
        "export_only": 3,
        "blank": 1,
    }
    core = pds.table.filter(pc.equal(pds.table["kind"], "core"))
    assert pc.sum(pc.not_equal(core["main_proc"], "")).as_py() == 2409
    assert pc.sum(pc.not_equal(core["related_procs"], "")).as_py() == 508
    comp = pds.table.filter(pc.equal(pds.table["kind"], "comprehensive"))
    tiers = {k["values"]: k["counts"] for k in comp["tier"].value_counts().to_pylist()}
    assert tiers == {"surgery": 293, "therapeutic": 138, "diagnostic": 100, "conservative": 36}
    assert len(set(comp["subcategory"].to_pylist())) == 395


def test_identity_score_for_every_row(pds):
    # docs/dip.md §6: score = avg_fee / region_avg_fee × 1000 for every row "within 1.1e-6". The largest gap is
    # 1.105e-6 (I72.0:39.7205_88.4101, score 26,954): all three values are rounded to 6 dp, so the bound is
    # 0.5e-6 (score) + 0.5e-6 × 1000 / M (avg) + score × 0.5e-6 / M (region average M).
    meta = pds.meta
    m, scale = meta["region_avg_cost"], meta["score_scale"]
    assert (m, scale) == (5718.153489, 1000)
    score = pds.table["score"].to_numpy()
    avg = pds.table["avg_cost"].to_numpy()
    bound = 0.5e-6 + 0.5e-6 * scale / m + score * 0.5e-6 / m
    assert np.all(np.abs(avg / m * scale - score) <= bound)
    assert np.abs(avg / m * scale - score).max() < 1.2e-6


@pytest.mark.parametrize(
    ("code", "score", "avg_cost", "n", "cv"),
    [  # docs/dip.md §6
        ("K35.8", 393.804594, 2251.835112, 3097, 0.543),
        ("K35.8:47.0100", 1291.910037, 7387.339886, 1736, 0.352),
        ("K35.8:47.0100_54.5101", 1260.754470, 7209.187569, 1169, 0.308),
        ("K35.8:47.0901", 801.886422, 4585.309642, 335, 0.307),
        ("K35.8:47.0901_54.5903", 932.984201, 5334.946861, 39, 0.425),
        ("K35:SS", 1669.282886, 9545.215758, 189, 0.518),
        ("K35:ZDXCZ", 806.713111, 4612.909393, 77, 0.463),
        ("I21.0:36.0700", 3879.636857, 22184.359029, 96, 0.294),
        ("I21.0:36.0700_00.2400x001+00.6600x004", 7742.035835, 44270.149218, 136, 0.307),
        ("I21.0:36.0700_00.6600x004+00.6601", 4104.351181, 23469.310022, 203, 0.284),
        ("KBBZ", 1485.354916, 8493.487397, 23605, 1.114),
    ],
)
def test_example_rows(pds, code, score, avg_cost, n, cv):
    row = pds.table.filter(pc.equal(pds.table["dip_code"], code)).to_pylist()
    assert len(row) == 1
    row = row[0]
    assert row["score"] == pytest.approx(score, abs=1e-6)
    assert row["avg_cost"] == pytest.approx(avg_cost, abs=1e-6)
    assert row["n_cases"] == n
    assert row["cv"] == pytest.approx(cv, abs=5e-4)


def test_key_parts(pds):
    row = pds.table.filter(
        pc.equal(pds.table["dip_code"], "I21.0:36.0700_00.2400x001+00.6600x004")
    ).to_pylist()[0]
    assert (row["kind"], row["subcategory"], row["main_proc"], row["related_procs"], row["tier"]) == (
        "core",
        "I21.0",
        "36.0700",
        "00.2400x001+00.6600x004",
        "",
    )
    cp = pds.table.filter(pc.equal(pds.table["dip_code"], "CP01:SS")).to_pylist()[0]
    assert (cp["kind"], cp["tier"], cp["score"]) == ("placeholder", "surgery", 1000.0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(pds, tmp_path, suffix):
    path = write_catalogue(pds, tmp_path / f"cat{suffix}")
    back = read_catalogue(path)
    assert back == pds and back.fingerprint == pds.fingerprint
    assert back.table.equals(pds.table) and dict(back.meta) == dict(pds.meta)


def test_fingerprint_changes_with_content(pds):
    other = Catalogue(pds.table.slice(1), dict(pds.meta))
    assert other.fingerprint != pds.fingerprint
    assert Catalogue(pds.table, {**pds.meta, "year": 2026}).fingerprint != pds.fingerprint


def test_errors_name_the_problem(tmp_path, pds):
    with pytest.raises(CatalogueError, match="no such catalogue"):
        read_catalogue("no-such-region-2099")
    bad = pds.table.set_column(1, "kind", pa.array(["core"] * (len(pds) - 1) + ["bogus"]))
    with pytest.raises(CatalogueError, match="row 4536: kind 'bogus'"):
        Catalogue(bad, {})
    with pytest.raises(CatalogueError, match="missing column"):
        Catalogue(pds.table.drop_columns(["tier"]), {})
    with pytest.raises(CatalogueError, match="occurs more than once"):
        Catalogue(pa.concat_tables([pds.table, pds.table.slice(0, 1)]), {})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_nested_metadata_round_trip(pds, tmp_path, suffix):
    # a built catalogue records its settings and history fingerprint; TOML has no null → ""
    meta = {**pds.meta, "params": {"year_weights": [0.1, 0.2, 0.7], "trim": "percentile", "cv_ddof": 1}}
    cat = Catalogue(pds.table, meta)
    back = read_catalogue(write_catalogue(cat, tmp_path / f"built{suffix}"))
    assert back.meta["params"] == meta["params"] and back.fingerprint == cat.fingerprint
