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
        "jingzhou",
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
    assert (s.tie_break, s.related_match) == ("jingzhou", "partial")
    cases = history(BLOCKS[:3]).append_column("case_id", pa.array([f"c{i}" for i in range(60)]))
    assert group_dip(cases, cat).equals(built.apply(cases))


def test_a_conflicting_explicit_setting_is_an_error(built):
    cat = built.to_catalogue()
    cases = history(BLOCKS[:1]).append_column("case_id", pa.array([f"c{i}" for i in range(20)]))
    with pytest.raises(SettingsError, match="tie_break: 'national' conflicts with 'jingzhou'"):
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
    assert clash.exit_code == 1 and "tie_break: 'jingzhou' conflicts with 'national'" in clash.output
