"""Procedure treatment tiers: the derived default table on hand-checked codes, overrides, the 介入 switch."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from grouper.dip import TIERS, CatalogueError, read_procedure_tiers

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[3]
with (DATA / "procedure_tiers_checked.csv").open(encoding="utf-8") as f:
    CHECKED = list(csv.DictReader(f))


@pytest.fixture(scope="module")
def shipped() -> dict[str, tuple[str, str]]:
    table = pacsv.read_csv(ROOT / "codebooks" / "dip" / "procedure_tiers.csv").to_pylist()
    return {r["code"]: (r["tier"], r["rule"]) for r in table}


def test_every_procedure_has_a_tier(shipped):
    # all 13,686 医保版 2.0 procedures of chs-drg-1.1/proc.csv, none left to the catch-all rule
    assert len(shipped) == 13686
    assert {t for t, _ in shipped.values()} == {"surgery", "interventional", "therapeutic", "diagnostic"}
    assert not [c for c, (_, r) in shipped.items() if r == "other"]


@pytest.mark.parametrize("row", CHECKED, ids=[r["code"] for r in CHECKED])
def test_hand_checked_codes(shipped, row):
    assert shipped[row["code"]] == (row["tier"], row["rule"]), row["why"]


def test_interventional_switch():
    codes = pa.array(["36.0700", "47.0100", "99.2500"])
    assert [TIERS[i] for i in read_procedure_tiers().lookup(codes)] == ["surgery", "surgery", "therapeutic"]
    t = read_procedure_tiers(interventional_as="therapeutic")
    assert [TIERS[i] for i in t.lookup(codes)] == ["therapeutic", "surgery", "therapeutic"]
    t = read_procedure_tiers(interventional_as="interventional")
    assert TIERS[t.lookup(codes)[0]] == "interventional"
    with pytest.raises(CatalogueError, match="interventional_as"):
        read_procedure_tiers(interventional_as="medical")


def test_region_table_overrides_code_by_code(tmp_path):
    own = tmp_path / "region.csv"
    own.write_text(
        "code,tier,rule\n00.0100,conservative,按保守治疗入组\nZZ.9999,diagnostic,\n", encoding="utf-8"
    )
    t = read_procedure_tiers(own)
    got = t.lookup(pa.array(["00.0100", "ZZ.9999", "47.0100", "nope"]))
    assert [TIERS[i] if i >= 0 else None for i in got] == ["conservative", "diagnostic", "surgery", None]
    assert t.fingerprint != read_procedure_tiers().fingerprint


def test_bad_region_table(tmp_path):
    own = tmp_path / "bad.csv"
    own.write_text("code,tier\n00.0100,手术\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="row 1: tier '手术'"):
        read_procedure_tiers(own)
