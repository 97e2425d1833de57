"""DIP grouper on the 平顶山 2025 catalogue: the worked examples of docs/dip.md §6.5 and one row per layer,
tie-break and treatment tier (cases in data/group_pingdingshan.csv), plus table-level properties."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from grouper.codebook import Codebook
from grouper.dip import Catalogue, CatalogueError, group_dip, read_catalogue, read_procedure_tiers
from grouper.status import Status

DATA = Path(__file__).parent / "data"
with (DATA / "group_pingdingshan.csv").open(encoding="utf-8", newline="") as f:
    CASES = list(csv.DictReader(f))
_TIER_OPTIONS = ("interventional_as",)


@pytest.fixture(scope="module")
def pds() -> Catalogue:
    return read_catalogue("pingdingshan-2025")


def _options(text: str) -> tuple[dict, dict]:
    group, tiers = {}, {}
    for item in filter(None, text.split(";")):
        key, value = item.split("=")
        value = {"false": False, "true": True}.get(value, value)
        (tiers if key in _TIER_OPTIONS else group)[key] = value
    return group, tiers


def _table(rows: list[dict]) -> pa.Table:
    return pa.table(
        {
            "case_id": [str(i) for i in range(len(rows))],
            "principal_dx": [r["principal_dx"] or None for r in rows],
            "principal_proc": [r["principal_proc"] or None for r in rows],
            "other_procs": pa.array([r["other_procs"].split("|") if r["other_procs"] else [] for r in rows]),
            "total_cost": pa.array([float(r["total_cost"]) if r["total_cost"] else None for r in rows]),
        }
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("with_codebook", [False, True], ids=["syntax", "codebook"])
def test_worked_cases(pds, case, with_codebook):
    group_opts, tier_opts = _options(case["options"])
    codebook = Codebook.load("chs-drg-1.1") if with_codebook else None
    got = group_dip(
        _table([case]), pds, tiers=read_procedure_tiers(**tier_opts), codebook=codebook, **group_opts
    ).to_pylist()[0]
    assert (got["dip_group"], got["dip_status"]) == (case["expect_group"], case["expect_status"]), case["why"]
    if got["dip_group"]:
        row = pds.table.filter(pc.equal(pds.table["dip_code"], got["dip_group"])).to_pylist()[0]
        assert (got["dip_kind"], got["dip_score"]) == (row["kind"], row["score"])
    else:
        assert (got["dip_kind"], got["dip_score"]) == ("", None)
    assert (got["aux_type"], got["aux_coef"]) == ("", 1.0)


def test_one_row_per_input_row_in_order(pds):
    rng = np.random.default_rng(7)
    rows = [CASES[i] for i in rng.integers(0, len(CASES), 2000)]
    table = _table(rows)
    out = group_dip(table, pds, explain=True)
    assert out.num_rows == table.num_rows
    assert out["case_id"].to_pylist() == table["case_id"].to_pylist()
    assert out.column_names == [
        "case_id", "dip_group", "dip_kind", "dip_score", "aux_type", "aux_coef", "dip_status", "reason"
    ]  # fmt: skip
    expected = [(r["expect_group"], r["expect_status"]) for r in rows if not r["options"]]
    got = [(g, s) for g, s, r in zip(out["dip_group"].to_pylist(), out["dip_status"].to_pylist(), rows, strict=True)
           if not r["options"]]  # fmt: skip
    assert got == expected


def test_empty_and_minimal_tables(pds):
    empty = group_dip(
        pa.table({"case_id": pa.array([], pa.string()), "principal_dx": pa.array([], pa.string())}), pds
    )
    assert empty.num_rows == 0
    out = group_dip(pa.table({"case_id": ["a", "b"], "principal_dx": ["K35.800x001", None]}), pds)
    assert out["dip_group"].to_pylist() == ["K35.8", ""]
    assert out["dip_status"].to_pylist() == ["OK", "PDX_MISSING"]


def test_pipe_joined_other_procs(pds):
    table = pa.table({"case_id": ["a"], "principal_dx": ["I21.000"], "principal_proc": ["36.0700"],
                      "other_procs": ["00.2400x001|00.6600x004"]})  # fmt: skip
    assert group_dip(table, pds)["dip_group"].to_pylist() == ["I21.0:36.0700_00.2400x001+00.6600x004"]


def test_duplicate_case_ids_are_grouped_and_flagged(pds):
    table = pa.table({"case_id": ["a", "b", "a"], "principal_dx": ["K35.800x001"] * 3})
    out = group_dip(table, pds)
    assert out["dip_group"].to_pylist() == ["K35.8"] * 3
    assert out["dip_status"].to_pylist() == ["OK", "OK", "DUPLICATE_CASE"]
    given = group_dip(
        table, pds, duplicate=np.array([0, 1, 0], np.uint8)
    )  # a caller's mask, any integer type
    assert given["dip_status"].to_pylist() == ["OK", "DUPLICATE_CASE", "OK"]


def test_without_kbbz_the_case_is_unmatched(pds):
    no_blank = Catalogue(pds.table.filter(pc.not_equal(pds.table["kind"], "blank")), dict(pds.meta))
    out = group_dip(pa.table({"case_id": ["a"], "principal_dx": ["K35.800x001"], "principal_proc": ["99.2500"]}),
                    no_blank)  # fmt: skip
    assert out.to_pylist()[0]["dip_group"] == "" and out.to_pylist()[0]["dip_status"] == "UNMATCHED"


def test_region_tier_table_demotes_a_procedure_to_conservative(pds, tmp_path):
    # docs/dip.md §3.8: a procedure listed 按保守治疗入组 is no main procedure → the 亚目's conservative group
    own = tmp_path / "region.csv"
    own.write_text("code,tier,rule\n45.2302,conservative,按保守治疗入组\n", encoding="utf-8")
    table = pa.table({"case_id": ["a"], "principal_dx": ["C18.900"], "principal_proc": ["45.2302"]})
    assert group_dip(table, pds)["dip_group"].to_pylist() == ["C18:ZDXCZ"]
    assert group_dip(table, pds, tiers=read_procedure_tiers(own))["dip_group"].to_pylist() == ["C18.9"]


def test_policy_errors_name_the_option(pds):
    table = pa.table({"case_id": ["a"], "principal_dx": ["K35.800x001"]})
    with pytest.raises(CatalogueError, match="unknown profile 'wuhan'"):
        group_dip(table, pds, tie_break="wuhan")
    with pytest.raises(CatalogueError, match="unknown criterion 'lowest_cost'"):
        group_dip(table, pds, tie_break=["most_related", "lowest_cost"])
    with pytest.raises(CatalogueError, match="related_match"):
        group_dip(table, pds, related_match="any")
    with pytest.raises(CatalogueError, match="tier_from"):
        group_dip(table, pds, tier_from="lowest")


def test_status_enum():
    assert Status.OK < Status.COMPREHENSIVE < Status.CODE_UNKNOWN < Status.BLANK
    assert not Status.BLANK.is_error and Status.UNMATCHED.is_error
    # one enum for DRG and DIP: every code has one meaning; the statuses both schemes report are shared
    assert len({int(s) for s in Status}) == len(Status)
    dip, drg = set(Status.of_scheme("dip")), set(Status.of_scheme("drg"))
    for name in (
        "OK",
        "CODE_UNKNOWN",
        "PDX_UNKNOWN",
        "PDX_MISSING",
        "NEWBORN_DATA_MISSING",
        "DUPLICATE_CASE",
    ):
        assert Status[name] in dip and Status[name] in drg
    assert Status.PDX_INVALID in dip - drg and Status.SEX_CONFLICT in drg - dip


def test_cases_encoded_ahead_group_as_the_table_does(pds):
    """``encode_dip_cases`` (taken beside the reading in a streamed run) then ``group_dip``: the same results;
    cases looked up for another codebook are refused rather than grouped against the wrong lookups."""
    import grouper
    from grouper.dip.group import encode_dip_cases

    table = pa.concat_tables(
        grouper.read_discharges(Path(__file__).parents[1] / "drg" / "data20" / "conformance_visible.csv")
    )
    codebook = Codebook.load("chs-drg-2.0")
    encoded = encode_dip_cases(table, pds, codebook=codebook)
    alone = group_dip(table, pds, codebook=codebook, explain=True)
    assert group_dip(encoded, pds, codebook=codebook, explain=True).equals(alone)
    with pytest.raises(ValueError, match="another catalogue, tiers, codebook or exclusions"):
        group_dip(encoded, pds, codebook=Codebook.load("chs-drg-1.1"))


def test_procedure_lists_put_the_principal_first_and_drop_empty_and_unknown_codes():
    """The CSR of known procedures (a compiled pass): principal first, others in order; -1 (empty) and -2
    (unknown) dropped, an unknown one flagging its case."""
    from grouper.dip._kernel import procedure_lists

    principal = np.array([5, -1, -2, 7], np.int64)
    o_off = np.array([0, 2, 2, 4, 5], np.int64)
    o_code = np.array([3, -1, 9, -2, 4], np.int64)
    off, flat, unknown = procedure_lists(principal, o_off, o_code)
    assert off.tolist() == [0, 2, 2, 3, 5]
    assert flat.tolist() == [5, 3, 9, 7, 4]
    assert unknown.tolist() == [False, False, True, False]
