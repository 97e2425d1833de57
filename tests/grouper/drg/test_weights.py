"""DrgWeights: vectors of docs/drg.md §7.1 (data_weights/vectors.toml), apply, settings, saved parameters."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from grouper.drg.weights import DrgWeights
from grouper.errors import SettingsError

DATA = Path(__file__).parent / "data_weights"
VECTORS = tomllib.loads((DATA / "vectors.toml").read_text(encoding="utf-8"))["cases"]


def history(blocks: list[dict]) -> pa.Table:
    years, drgs, costs = [], [], []
    for b in blocks:
        cs = b.get("costs") or [b["total_cost"]] * b["n"]
        years += [b["year"]] * len(cs)
        drgs += [b["drg"]] * len(cs)
        costs += [float(c) for c in cs]
    return pa.table({"year": pa.array(years, pa.int32()), "drg": drgs, "total_cost": costs})


def _settings(raw: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vectors(case):
    est = DrgWeights(**_settings(case.get("settings", {}))).fit(history(case["history"]))
    rows = {r["drg"]: r for r in est.weights_.to_pylist()}
    tol = case.get("tol", 1e-9)
    for exp in case["expect"]:
        got = rows[exp["drg"]]
        for key, want in exp.items():
            if isinstance(want, float):
                assert got[key] == pytest.approx(want, abs=tol), (case["section"], exp["drg"], key)
            else:
                assert got[key] == want, (case["section"], exp["drg"], key)
    for key, want in case.get("expect_attrs", {}).items():
        assert getattr(est, key) == pytest.approx(want, abs=tol), (case["section"], key)
    if "expect_rows" in case:
        assert est.weights_.num_rows == case["expect_rows"]


def test_apply_gives_rw_per_case_and_nan_for_unknown():
    est = DrgWeights(year_weights=(1,)).fit(history(VECTORS[0]["history"]))
    cases = pa.table({"drg": ["GB29", "GB19", "ZZ99", None]})
    np.testing.assert_allclose(est.apply(cases)["rw"].to_numpy(), [0.5, 2.0, np.nan, np.nan])


def test_ungrouped_and_bad_costs_are_counted():
    h = history(
        [
            {"year": 2024, "drg": "GB19", "total_cost": 100, "n": 20},
            {"year": 2024, "drg": "0000", "total_cost": 5, "n": 2},
        ]
    )
    h = pa.concat_tables(
        [
            h,
            pa.table(
                {
                    "year": pa.array([2024, 2010], pa.int32()),
                    "drg": ["GB19", "GB19"],
                    "total_cost": [float("nan"), 100.0],
                }
            ),
        ]
    )
    est = DrgWeights().fit(h)
    assert est.n_excluded_ == {"year_outside": 1, "cost_invalid": 1, "drg_excluded": 2}
    assert est.n_cases_ == 20


def test_thin_adrg_is_warned():
    est = DrgWeights(year_weights=(1,)).fit(
        history([{"year": 2024, "drg": "GB19", "total_cost": 1.0, "n": 3}])
    )
    assert est.weights_["basis"].to_pylist() == ["adrg"] and est.warnings_


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"min_n": 0}, "min_n"), ({"trim": "x"}, "unknown method"), ({"year_weighting": "x"}, "year_weighting")],
)
def test_settings_are_checked_in_fit(settings, message):
    with pytest.raises(SettingsError, match=message):
        DrgWeights(**settings).fit(history(VECTORS[0]["history"]))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_through_the_file(tmp_path, suffix):
    h = history(VECTORS[1]["history"])
    est = DrgWeights(trim="log_sd", trim_k=2.5, year_weighting="cases", min_n=5).fit(h)
    path = tmp_path / f"w{suffix}"
    (est.to_parquet if suffix == ".parquet" else est.to_csv)(path)
    back = DrgWeights.read(path)
    assert back.get_params() == est.get_params()
    assert back.weights_.equals(est.weights_)
    assert back.history_ == est.history_ and back.overall_mean_ == est.overall_mean_
    refit = DrgWeights(**back.get_params()).fit(h)
    assert refit.weights_.equals(est.weights_)
