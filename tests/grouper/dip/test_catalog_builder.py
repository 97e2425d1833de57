"""DipCatalog: hand-worked vectors (data_builder/vectors.toml), keys, trimming, settings, saved parameters."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from grouper._history import TrimSpec, trim_keep, year_weights
from grouper.dip.catalogue import read_catalogue
from grouper.dip.catalogue_builder import DipCatalog, coverage_threshold
from grouper.errors import InputError, SettingsError

DATA = Path(__file__).parent / "data_builder"
TIERS = str(DATA / "procedure_tiers.csv")
VECTORS = tomllib.loads((DATA / "vectors.toml").read_text(encoding="utf-8"))["cases"]


def history(blocks: list[dict]) -> pa.Table:
    """Expand blocks (n cases at one cost, or a list of costs) into a history table."""
    cols: dict[str, list] = {
        k: [] for k in ("year", "principal_dx", "principal_proc", "other_procs", "total_cost")
    }
    for b in blocks:
        costs = b.get("costs") or [b["total_cost"]] * b["n"]
        for c in costs:
            cols["year"].append(b["year"])
            cols["principal_dx"].append(b["principal_dx"])
            cols["principal_proc"].append(b.get("principal_proc", ""))
            cols["other_procs"].append(b.get("other_procs", []))
            cols["total_cost"].append(float(c))
    return pa.table(cols, schema=_SCHEMA)


_SCHEMA = pa.schema(
    [
        ("year", pa.int32()),
        ("principal_dx", pa.string()),
        ("principal_proc", pa.string()),
        ("other_procs", pa.list_(pa.string())),
        ("total_cost", pa.float64()),
    ]
)


def _settings(raw: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def _rows(est: DipCatalog) -> dict[str, dict]:
    return {r["dip_code"]: r for r in est.groups_.to_pylist()}


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vectors(case):
    est = DipCatalog(tiers=TIERS, **_settings(case.get("settings", {}))).fit(history(case["history"]))
    rows, tol = _rows(est), case.get("tol", 1e-9)
    for exp in case["expect"]:
        got = rows[exp["dip_code"]]
        for key, want in exp.items():
            if isinstance(want, float):
                assert got[key] == pytest.approx(want, abs=tol), (case["section"], exp["dip_code"], key)
            else:
                assert got[key] == want, (case["section"], exp["dip_code"], key)
    for key, want in case.get("expect_attrs", {}).items():
        assert getattr(est, key) == pytest.approx(want, abs=tol), (case["section"], key)
    if "expect_rows" in case:
        assert est.groups_.num_rows == case["expect_rows"]


def test_coverage_threshold_dip_thr():
    # docs/dip.md §4.2 DIP-THR: t = 40 (t = 20 would also reach 95 % but is not the largest).
    assert coverage_threshold([500, 300, 120, 40, 20, 10, 6, 4], 0.95) == 40
    assert coverage_threshold([10, 10, 10], 1.0) == 10
    assert coverage_threshold([100, 1], 0.5) == 100


def test_year_weights_window_and_normalisation():
    window, w = year_weights(np.array([2023, 2024, -1]), None, (1, 2, 7))
    assert window == (2022, 2023, 2024)
    np.testing.assert_allclose(w, [0.1, 0.2, 0.7])
    window, w = year_weights(np.array([2024]), (2024, 2022, 2023), (7, 1, 2))
    assert window == (2022, 2023, 2024)
    np.testing.assert_allclose(w, [0.1, 0.2, 0.7])
    with pytest.raises(SettingsError, match="distinct years"):
        year_weights(np.array([2024]), (2023, 2024), (1, 2, 7))


# -- keys -----------------------------------------------------------------------------------------------------


def _blocks(*specs):
    return history(
        [
            dict(zip(("principal_dx", "principal_proc", "other_procs", "total_cost", "n"), s, strict=True))
            | {"year": 2024}
            for s in specs
        ]
    )


def test_related_group_needs_threshold_and_uplift():
    h = _blocks(
        ("K35.800", "47.0100", [], 7000.0, 20),
        ("K35.800", "47.0100", ["54.5101"], 8000.0, 20),  # +14 % over the 47.0100 group → own group
        ("K35.800", "47.0901", [], 4500.0, 20),
        ("K35.800", "47.0901", ["54.5903"], 4600.0, 20),  # +1 % → stays in K35.8:47.0901
        ("K35.800", "47.0901", ["54.5101", "54.5903"], 9000.0, 5),  # too few → K35.8:47.0901
    )
    est = DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h)
    rows = _rows(est)
    assert set(rows) == {"K35.8:47.0100", "K35.8:47.0100_54.5101", "K35.8:47.0901"}
    assert rows["K35.8:47.0100_54.5101"]["related_procs"] == "54.5101"
    assert rows["K35.8:47.0901"]["n_cases"] == 45
    est = DipCatalog(tiers=TIERS, year_weights=(1,), related_min_uplift=None).fit(h)
    assert "K35.8:47.0901_54.5903" in _rows(est)


def test_related_set_is_sorted_distinct_and_ignores_main_and_simple_procedures():
    h = _blocks(
        ("I21.000", "36.0700", ["88.7200", "00.6600x004", "36.0700", "93.3900", "88.7200"], 40000.0, 10),
        ("I21.000", "36.0700", ["00.6600x004", "88.7200"], 40000.0, 10),
        ("I21.000", "36.0700", [], 20000.0, 20),
    )
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h))
    assert rows["I21.0:36.0700_00.6600x004+88.7200"]["n_cases"] == 20
    assert rows["I21.0:36.0700_00.6600x004+88.7200"]["related_procs"] == "00.6600x004+88.7200"


def test_related_max_limits_the_set():
    h = _blocks(
        ("I21.000", "36.0700", ["00.6600x004", "88.7200"], 40000.0, 20), ("I21.000", "36.0700", [], 2e4, 20)
    )
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,), related_max=1).fit(h))
    assert set(rows) == {"I21.0:36.0700"}


def test_fallback_to_comprehensive_by_tier_and_blank():
    h = _blocks(
        ("K35.800", "47.0100", [], 9000.0, 10),  # thin core keys of a surgery tier → K35:SS (20)
        ("K35.300", "47.0901", [], 8000.0, 10),
        ("K35.800", "45.1300", [], 3000.0, 16),  # diagnostic main, 16 cases → its own core group
        ("K35.900", "99.2500", [], 2000.0, 10),  # therapeutic, 10 < 15 → blank
        ("K35.800", "93.3900", [], 1500.0, 20),  # conservative procedure → conservative core group K35.8
        ("K35.800", "", [], 1500.0, 5),
        ("K35.800", "36.0700", [], 30000.0, 15),  # interventional alone reaches the threshold
        ("K37.800", "36.0700", [], 30000.0, 8),  # interventional → surgery (default) or therapeutic 综合
        ("K37.800", "47.0100", [], 9000.0, 8),
    )
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h))
    assert rows["K35:SS"]["n_cases"] == 20 and rows["K35:SS"]["tier"] == "surgery"
    assert rows["K35.8"]["n_cases"] == 25 and rows["K35.8"]["main_proc"] == ""
    assert rows["K35.8:45.1300"]["n_cases"] == 16
    assert rows["K35.8:36.0700"]["n_cases"] == 15
    assert rows["K37:SS"]["n_cases"] == 16 and rows["K37:SS"]["name"] == "K37-相关手术组"
    assert rows["KBBZ"]["n_cases"] == 10
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,), interventional_as="therapeutic").fit(h))
    assert "K37:SS" not in rows and rows["KBBZ"]["n_cases"] == 26


def test_main_fallback_takes_the_first_other_procedure():
    h = _blocks(("K35.800", "", ["47.0100", "54.5101"], 9000.0, 20), ("K35.800", "47.0100", [], 9000.0, 20))
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,), related_min_uplift=None).fit(h))
    assert set(rows) == {"K35.8:47.0100_54.5101", "K35.8:47.0100"}
    rows = _rows(DipCatalog(tiers=TIERS, year_weights=(1,), main_fallback=False).fit(h))
    assert rows["K35.8"]["n_cases"] == 20


def test_unknown_procedure_tier_is_a_setting():
    h = _blocks(("K35.800", "XX.0000", [], 1000.0, 20))
    assert set(_rows(DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h))) == {"K35.8"}
    est = DipCatalog(tiers=TIERS, year_weights=(1,), unknown_tier="surgery").fit(h)
    assert set(_rows(est)) == {"K35.8:XX.0000"}


def test_bad_rows_are_counted_not_used():
    h = history(
        [
            {
                "year": 2024,
                "principal_dx": "K35.800",
                "principal_proc": "47.0100",
                "total_cost": 9000,
                "n": 20,
            },
            {"year": 2024, "principal_dx": "K35.800", "principal_proc": "47.0100", "total_cost": 0, "n": 2},
            {"year": 2024, "principal_dx": "", "principal_proc": "47.0100", "total_cost": 100, "n": 3},
            {"year": 2019, "principal_dx": "K35.800", "principal_proc": "47.0100", "total_cost": 100, "n": 4},
        ]
    )
    est = DipCatalog(tiers=TIERS).fit(h)
    assert est.n_excluded_ == {"year_outside": 4, "cost_invalid": 2, "pdx_invalid": 3, "ungrouped": 0}
    assert est.n_cases_ == 20 and est.history_["rows"] == 29


def test_regroup_with_a_codebook_leaves_out_unknown_principals():
    h = _blocks(("K35.800", "47.0100", [], 9000.0, 20), ("K35.899", "47.0100", [], 1000.0, 5))
    est = DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h)  # K35.899 looks like ICD-10: same key K35.8
    assert _rows(est)["K35.8:47.0100"]["n_cases"] == 25
    est = DipCatalog(tiers=TIERS, year_weights=(1,), codebook="chs-drg-1.1").fit(h)
    assert _rows(est)["K35.8:47.0100"]["n_cases"] == 20 and est.n_excluded_["ungrouped"] == 5


def test_no_usable_case_is_an_error_naming_the_reasons():
    h = history([{"year": 2024, "principal_dx": "K35.800", "total_cost": 0, "n": 2}])
    with pytest.raises(InputError, match=r"no usable case \(cost invalid 2\)"):
        DipCatalog(tiers=TIERS).fit(h)


def test_other_procs_as_pipe_joined_strings():
    h = _blocks(("K35.800", "47.0100", ["54.5101"], 8000.0, 20), ("K35.800", "47.0100", [], 7000.0, 20))
    flat = h.set_column(3, "other_procs", pa.array(["54.5101"] * 20 + [""] * 20))
    a = DipCatalog(tiers=TIERS, year_weights=(1,)).fit(h).groups_
    b = DipCatalog(tiers=TIERS, year_weights=(1,)).fit(flat).groups_
    assert a.equals(b)


# -- trimming ---------------------------------------------------------------------------------------------------


def test_trim_methods_match_numpy_per_group():
    rng = np.random.default_rng(1)
    cost = rng.lognormal(8, 0.7, 3000)
    gid = rng.integers(0, 7, 3000)
    gid[:10] = 7  # a group of 10 (< min_n) is never trimmed
    for spec in (TrimSpec("percentile"), TrimSpec("iqr"), TrimSpec("log_sd", k=2.0), TrimSpec("none")):
        keep = trim_keep(cost, gid, 8, spec)
        for g in range(8):
            c = cost[gid == g]
            if spec.method == "percentile":
                lo, hi = np.percentile(c, [2.5, 97.5])
            elif spec.method == "iqr":
                q1, q3 = np.percentile(c, [25, 75])
                lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
            elif spec.method == "log_sd":
                m, s = np.log(c).mean(), np.log(c).std(ddof=1)
                lo, hi = np.exp(m - 2 * s), np.exp(m + 2 * s)
            else:
                lo, hi = -np.inf, np.inf
            want = (c >= lo) & (c <= hi) if c.size >= 25 else np.ones(c.size, bool)
            np.testing.assert_array_equal(keep[gid == g], want, err_msg=f"{spec.method} group {g}")


def test_trim_rate_warning_and_none():
    h = _blocks(("K35.800", "47.0100", [], 1000.0, 30))
    h = pa.concat_tables([h, _blocks(("K35.800", "47.0100", [], 9e5, 1))])
    est = DipCatalog(tiers=TIERS, year_weights=(1,), max_trim_rate=0.0).fit(h)
    assert est.n_trimmed_ == 1 and est.warnings_
    est = DipCatalog(tiers=TIERS, year_weights=(1,), trim="none").fit(h)
    assert est.n_trimmed_ == 0 and not est.warnings_


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"threshold": ("median", 3)}, "unknown kind"),
        ({"threshold": ("coverage", 1.5)}, "coverage share"),
        ({"trim": "winsor"}, "unknown method"),
        ({"trim_limits": (0.9, 0.1)}, "trim_limits"),
        ({"score_method": "reference_group"}, "reference_group"),
        ({"score_method": "standard_amount"}, "point_amount"),
        ({"year_weights": (1, -1, 7)}, "year_weights"),
        ({"cv_ddof": 2}, "cv_ddof"),
        ({"interventional_as": "diagnostic"}, "interventional_as"),
    ],
)
def test_settings_are_checked_in_fit(settings, message):
    est = DipCatalog(tiers=TIERS, **settings)  # the constructor stores; fit checks
    with pytest.raises(SettingsError, match=message):
        est.fit(_blocks(("K35.800", "47.0100", [], 1000.0, 20)))


# -- saving -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_settings_and_fingerprint_round_trip_through_the_file(tmp_path, suffix):
    h = history(VECTORS[0]["history"])
    est = DipCatalog(
        tiers=TIERS,
        threshold=("coverage", 0.9),
        trim="iqr",
        trim_k=2.0,
        year_weighting="cases",
        score_scale=100,
    ).fit(h)
    path = est.to_parquet(tmp_path / "cat") if suffix == ".parquet" else est.to_csv(tmp_path / "cat")
    assert path.suffix == suffix
    cat = read_catalogue(path)
    back = DipCatalog.from_catalogue(cat)
    assert back.get_params() == est.get_params()
    assert back.history_ == est.history_ and back.history_["rows"] == 120
    assert cat.meta["history"]["years"] == [2022, 2023, 2024]
    assert cat.meta["region_avg_cost"] == pytest.approx(est.region_avg_cost_)
    assert cat.table.column("score").to_pylist() == pytest.approx(est.groups_.column("score").to_pylist())
    refit = DipCatalog(**back.get_params()).fit(h)
    assert refit.groups_.equals(est.groups_)
    assert refit.history_["sha256"] == est.history_["sha256"]


def test_refit_replaces_results_and_discharge_date_gives_the_year():
    h = history(VECTORS[0]["history"])
    import pyarrow.compute as pc

    dated = h.append_column(
        "discharge_date",
        pc.strptime(
            pc.binary_join_element_wise(h["year"].cast(pa.string()), "06-30", "-"),
            format="%Y-%m-%d",
            unit="s",
        ).cast(pa.date32()),
    ).drop_columns(["year"])
    est = DipCatalog(tiers=TIERS)
    a = est.fit(h).groups_
    est.fit(dated)
    assert est.groups_.equals(a)
    assert est.years_ == (2022, 2023, 2024)
