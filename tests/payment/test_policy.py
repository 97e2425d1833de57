"""Policy loader (payment.policy): shipped policies load; each broken file fails with its message."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from payment.policy import Policy, PolicyError

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "codebooks" / "policies").glob("*.toml"))
INVALID = Path(__file__).parent / "invalid"
BROKEN = sorted(p for p in INVALID.glob("*.toml") if not p.name.startswith("_"))


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        if v == "__delete__":
            out.pop(k, None)
        elif isinstance(v, dict) and "value" not in v and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


@pytest.mark.parametrize("path", POLICIES, ids=[p.name for p in POLICIES])
def test_shipped_policy_loads_and_cites_every_number(path):
    policy = Policy.load(path)
    assert policy.sha256 == Policy.load(path).sha256
    for key in policy.cited:
        assert policy.source_of(key)


def _rule(policy: Policy) -> tuple:
    d = policy.deviation
    return (
        policy.scheme,
        d.low.formula,
        d.high.formula,
        None if d.extreme is None else d.extreme.formula,
        d.k,
    )


def test_shipped_policies_cover_every_profile_and_drg():
    """The docs/formulas.md §3.3 profiles national_2020, guangzhou_2018 (same kinds, no extreme band), yichang, jining,
    taian (k by 险种) and a DRG rule are each shipped as formula kinds."""
    rules = {_rule(Policy.load(p)) for p in POLICIES}
    assert {
        ("dip", "cost", "minus_one", "high", "hospital"),
        ("dip", "cost", "minus_one", None, "hospital"),
        ("dip", "cost_k", "minus_one_k", None, "hospital"),
        ("dip", "cost", "minus_two_plus_k", "standard", "hospital"),
        ("dip", "cost", "minus_two_plus_k", None, "by_pool"),
        ("drg", "points_no_factor", "linear_add", None, "hospital"),
    } <= rules


def test_deviation_kinds_come_from_the_kernel():
    """A policy's formula kinds are the kernel's closed set: no region name anywhere in the loader or kernel."""
    from payment import points

    p = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    for band in ("low", "high", "extreme"):
        formula = p.deviation[band].formula
        assert formula in points.FORMULAS["dip"][band]
        with pytest.raises(PolicyError, match=rf"deviation\.{band}\.formula"):
            p.replace({f"deviation.{band}.formula": "linear_add"})
    with pytest.raises(points.SettingsError, match="is not one of"):
        points.DeviationRule("cost", 0.5, "<", "bogus", 2.0, ">")
    with pytest.raises(points.SettingsError, match="boundary"):
        points.DeviationRule("cost", 0.5, ">", "minus_one", 2.0, ">")


def test_k_by_pool_replaces_the_hospital_coefficient():
    p = Policy.load(ROOT / "codebooks/policies/taian-2025.toml")
    assert p.deviation.k == "by_pool"
    assert dict(p.deviation.k_by_pool) == {"employee": 0.611, "resident": 0.631}
    assert "职工 0.611" in p.source_of("deviation.k_by_pool")


def test_demo_policy_reads_like_the_style_guide():
    p = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    assert (p.scheme, p.header["catalogue"], p.pools) == (
        "dip",
        "pingdingshan-2025",
        ("employee", "resident"),
    )
    assert p.deviation.high.ratio == 2.0
    assert (
        p.source_of("deviation.high.ratio")
        == "国家医疗保障按病种分值付费(DIP)技术规范 (医保办发〔2020〕50号)"
    )
    q = p.replace({"deviation.high.ratio": 2.5})
    assert (q.deviation.high.ratio, p.deviation.high.ratio) == (2.5, 2.0)
    assert q.sha256 != p.sha256
    assert "budget.employee.inpatient_fund" in p.assumptions()
    with pytest.raises(AttributeError):
        p.deviation.high.ratio = 3


def test_replace_revalidates():
    p = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    with pytest.raises(PolicyError, match=r"point_value\.elastic_split: a share must lie in 0–1"):
        p.replace({"point_value.elastic_split": {"value": 8, "unit": "share", "source": "dip-2020"}})


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_policy_names_the_key(path):
    text = path.read_text(encoding="utf-8")
    expected = text.splitlines()[0].removeprefix("# error: ")
    raw = _merge(tomllib.loads((INVALID / "_base.toml").read_text(encoding="utf-8")), tomllib.loads(text))
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(raw, path.name)
    assert str(info.value).startswith(f"{path.name}: ")
    assert expected in str(info.value)


def test_base_of_the_broken_files_is_valid():
    Policy.load(INVALID / "_base.toml")


def test_unreadable_file_is_a_policy_error(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[policy\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid TOML"):
        Policy.load(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "missing.toml")


def test_a_shipped_policy_is_found_by_its_name_as_a_shipped_catalogue_is(tmp_path, monkeypatch):
    """``--policy demo-2025`` as ``--catalogue pingdingshan-2025``: a bare name that is no file here is the policy
    shipped under codebooks/policies/; a file of that name in the working folder comes first; an unknown name is
    refused with the shipped names."""
    shipped = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    assert Policy.load("demo-2025").sha256 == shipped.sha256
    assert Policy.problems("jining-2025") == []
    with pytest.raises(PolicyError, match=r"demo-2024: cannot read.*shipped policy: .*demo-2025"):
        Policy.load("demo-2024")
    (tmp_path / "demo-2025").write_bytes((ROOT / "codebooks/policies/jining-2025.toml").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert Policy.load("demo-2025").sha256 == Policy.load(ROOT / "codebooks/policies/jining-2025.toml").sha256


def test_values_by_level_have_one_shape_and_one_accessor():
    import numpy as np

    p = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    level = np.array([3, 1, 2, 0], np.int8)
    assert np.array_equal(p.hospital_coef.table.at(level), [1.07, 0.82, 0.95, np.nan], equal_nan=True)
    assert p.deviation.avg_cost_factor.at(level, missing=1.0).tolist() == [1.0] * 4
    cat = p.bed_day.categories[0]
    assert cat["rate"].at(level, missing=0.0).tolist() == [300.0, 200.0, 250.0, 0.0]
    price = p.per_case.entries[0]["price"].at(level)  # no 一级 price: not covered there
    assert np.array_equal(price, [9500.0, np.nan, 8500.0, np.nan], equal_nan=True)
    with pytest.raises(PolicyError, match=r"hospital_coef\.table\.by_level\.4: unknown key"):
        p.replace({"hospital_coef.table": {"by_level": {"4": 1.0}, "unit": "ratio", "source": "dip-2020"}})


def test_bands_are_half_open_everywhere():
    """One convention: a band holds [from, to); days count as elapsed days (day d is [d − 1, d))."""
    import numpy as np

    from payment.bedday import band_day_sum

    drg = Policy.load(ROOT / "codebooks/policies/example-drg-2025.toml").deviation.drg.high_bands
    assert drg.at(np.array([0.0, 0.999, 1.0, 4.99, 5.0, 40.0])).tolist() == [3.0, 3.0, 2.5, 1.5, 1.3, 1.3]
    days = Policy.load(ROOT / "codebooks/policies/demo-2025.toml").bed_day.bands
    assert band_day_sum(np.array([60, 61, 90, 91]), days).tolist() == [60.0, 60.9, 87.0, 87.8]
    with pytest.raises(PolicyError, match="must cover every RW from 0 up"):
        Policy.load(ROOT / "codebooks/policies/example-drg-2025.toml").replace(
            {"deviation.drg.high_bands": [{"from": 1, "ratio": 2.0, "source": "drgx-fee"}]}
        )


def test_every_engine_default_applied_is_listed_as_an_assumption():
    p = Policy.load(INVALID / "_base.toml")  # silent on nearly everything
    listed = {a.split(" = ")[0]: a for a in p.assumptions()}
    assert listed["special_case.eligible_ratio"].startswith(
        "special_case.eligible_ratio = 2.0 (engine default"
    )
    assert p.special_case.cap_rate == 0.005 and "special_case.cap_rate" in listed
    assert "point_value.year_weights" not in listed  # only matters for a budget point value from history
    q = p.replace({"point_value.budget_method": {"value": "history", "source": "s"}})
    assert "point_value.year_weights = [0.1, 0.2, 0.7]" in " ".join(q.assumptions())
    demo = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")  # writes eligible_ratio with its source
    assert not any(a.startswith("special_case.eligible_ratio") for a in demo.assumptions())
