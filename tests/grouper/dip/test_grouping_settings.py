"""A catalogue records the grouping settings it was built with; grouping with it uses them (issue 8 item 4)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from grouper.dip import group_dip, read_catalogue, read_procedure_tiers
from grouper.dip.catalogue_builder import DipCatalog
from grouper.dip.group import grouping_settings
from grouper.errors import SettingsError
from tests.grouper.dip.test_catalog_builder import TIERS, history

BLOCKS = [
    {"year": y, "principal_dx": "K35.800", "principal_proc": p, "total_cost": c, "n": 20}
    for y in (2022, 2023, 2024)
    for p, c in (("47.0100", 8000.0), ("99.2500", 3000.0), ("", 2000.0))
]


@pytest.fixture(scope="module")
def built():
    est = DipCatalog(
        tiers=TIERS, interventional_as="therapeutic", tie_break="jingzhou", related_match="partial"
    )
    return est.fit(history(BLOCKS))


def test_the_catalogue_records_its_grouping_settings(built, tmp_path):
    cat = read_catalogue(built.to_csv(tmp_path / "cat.csv"))
    g = cat.meta["grouping"]
    assert (g["tie_break"], g["related_match"], g["tier_from"], g["main_fallback"]) == (
        ["exact_set", "highest_score"],  # the jingzhou profile's criteria
        "partial",
        "main",
        True,
    )
    assert (g["tiers"], g["interventional_as"]) == (TIERS, "therapeutic")
    assert g["tiers_sha256"] == read_procedure_tiers(TIERS, interventional_as="therapeutic").fingerprint


def test_grouping_with_the_catalogue_uses_its_tiers_and_choices(built, tmp_path):
    cat = read_catalogue(built.to_parquet(tmp_path / "cat.parquet"))
    s = grouping_settings(cat)
    assert s.tiers.fingerprint == cat.meta["grouping"]["tiers_sha256"]
    assert s.tiers.fingerprint != read_procedure_tiers().fingerprint  # not the shipped table
    assert (s.tie_break, s.related_match) == (("exact_set", "highest_score"), "partial")
    cases = history(BLOCKS[:3]).append_column("case_id", pa.array([f"c{i}" for i in range(60)]))
    assert group_dip(cases, cat).equals(built.apply(cases))


def test_a_conflicting_explicit_setting_is_an_error(built):
    cat = built.to_catalogue()
    cases = history(BLOCKS[:1]).append_column("case_id", pa.array([f"c{i}" for i in range(20)]))
    with pytest.raises(
        SettingsError, match=r"tie_break: 'national' conflicts with \['exact_set', 'highest_score'\]"
    ):
        group_dip(cases, cat, tie_break="national")
    with pytest.raises(SettingsError, match="tiers: this procedure tier table"):
        group_dip(cases, cat, tiers=read_procedure_tiers())
    group_dip(cases, cat, tie_break="jingzhou", related_match="partial")  # the same settings are fine


def test_drgdip_group_uses_the_tiers_drgdip_catalog_was_built_with(tmp_path):
    """The issue's case: ``drgdip catalog --tiers`` made a catalogue ``drgdip group`` grouped with other tiers."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from payment.cli import app

    runner = CliRunner()
    pq.write_table(history(BLOCKS), tmp_path / "history.parquet")
    (tmp_path / "cases.csv").write_text("case_id,principal_dx,principal_proc\nc1,K35.800,99.2500\n", "utf-8")
    source = ["--history", str(tmp_path / "history.parquet"), "--tiers", TIERS]
    built = runner.invoke(app, ["catalog", *source, "--out", str(tmp_path / "cat.csv"), "--no-aux", "-q"])
    assert built.exit_code == 0, built.output
    args = ["group", str(tmp_path / "cases.csv"), "--scheme", "dip", "--catalogue", str(tmp_path / "cat.csv")]
    ok = runner.invoke(app, [*args, "-o", str(tmp_path / "g.parquet"), "-q"])
    assert ok.exit_code == 0, ok.output
    meta = pq.read_schema(tmp_path / "g.parquet").metadata
    assert meta[b"drgdip.tiers_sha256"].decode() == read_procedure_tiers(TIERS).fingerprint
    clash = runner.invoke(app, [*args, "-o", str(tmp_path / "h.parquet"), "--tie-break", "jingzhou", "-q"])
    assert (
        clash.exit_code == 1
        and "tie_break: 'jingzhou' conflicts with ['most_related', 'highest_score']" in clash.output
    )


def test_a_catalogue_from_the_policy_records_the_policy_and_its_assumptions():
    from grouper.resources import data_path
    from payment.policy import Policy

    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    est = DipCatalog.from_policy(policy, tiers=TIERS)
    assert est.year_weights == (0.1, 0.2, 0.7) and est.threshold == ("fixed", 15)
    assert est.tie_break == ("most_related", "highest_score") and est.trim_limits == (0.025, 0.975)
    cat = est.fit(history(BLOCKS)).to_catalogue()
    assert cat.meta["policy_sha256"] == policy.sha256
    assert "docs/dip.md §4.3" in cat.meta["policy_settings"]["year_weights"]
    assert "cv_ddof = 1 (DipCatalog default)" in cat.meta["assumptions"]
    assert cat.meta["grouping"]["tie_break"] == ["most_related", "highest_score"]
    plain = DipCatalog(tiers=TIERS).fit(history(BLOCKS))
    assert cat.table.equals(plain.to_catalogue().table)  # the demo policy writes the defaults out
    with pytest.raises(SettingsError, match="trim: 'iqr' conflicts with 'percentile' in the policy"):
        DipCatalog.from_policy(policy, trim="iqr")
    with pytest.raises(Exception, match="core_threshold or core_coverage"):
        policy.replace({"dip.catalogue.core_coverage": {"value": 0.9, "unit": "share", "source": "dip-2020"}})


def test_drgdip_catalog_takes_its_settings_from_a_policy(tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from grouper.resources import data_path
    from payment.cli import app

    pq.write_table(history(BLOCKS), tmp_path / "history.parquet")
    args = ["catalog", "--history", str(tmp_path / "history.parquet"), "--tiers", TIERS, "--no-aux", "-q"]
    args += ["--policy", str(data_path("policies", "demo-2025.toml"))]
    ok = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "cat.csv")])
    assert ok.exit_code == 0, ok.output
    assert read_catalogue(tmp_path / "cat.csv").meta["policy"].endswith("demo-2025.toml")
    clash = CliRunner().invoke(app, [*args, "--trim", "iqr", "--out", str(tmp_path / "c2.csv")])
    assert clash.exit_code == 1 and "trim: 'iqr' conflicts with 'percentile'" in clash.output


def test_settle_warns_when_the_catalogue_was_grouped_by_other_rules_than_the_policy(built):
    from grouper.resources import data_path
    from payment.policy import Policy
    from payment.settle import _grouping_warnings

    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    warned = _grouping_warnings(policy, built.to_catalogue())
    assert any("tie_break = ['exact_set', 'highest_score'], the policy says" in w for w in warned)
    assert any("related_match = 'partial'" in w for w in warned)
    assert not _grouping_warnings(
        policy, DipCatalog.from_policy(policy, tiers=TIERS).fit(history(BLOCKS)).to_catalogue()
    )
