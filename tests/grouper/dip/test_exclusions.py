"""DIP exclusion lists (docs/dip.md §3.2, docs/records.md §5 Q04) on the 平顶山 2025 catalogue: each rule with
hand-made cases (the region rows of a case are its own tiny table), loader errors, one output row per input row
and the CLI option."""

from __future__ import annotations

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.codebook import Codebook
from grouper.dip import (
    Catalogue,
    CatalogueError,
    group_dip,
    read_catalogue,
    read_exclusions,
    read_procedure_tiers,
)
from grouper.dip.exclusions import EXCLUSION_COLUMNS
from grouper.status import Status

HEADER = ",".join(EXCLUSION_COLUMNS)
SRC = "hand-made test row"

# One case per line. `region`: the case's own exclusion rows, `;`-separated, fields `kind code match rule
# [pdx_scope]`; `before`: the group with the shipped table only; `options`: group_dip keywords.
CASES = list(csv.DictReader(io.StringIO("""\
name,region,principal_dx,principal_proc,other_procs,options,before,expect_group,expect_status,why
dx exact code cannot be the principal,dx Z37.000 exact not_principal,Z37.000,,,,KBBZ,,PDX_INVALID,Z37 单一活产 is no group of the catalogue (KBBZ); listed → PDX_INVALID and no group
dx exact does not reach a longer code,dx Z37.000 exact not_principal,Z37.000x001,,,,KBBZ,KBBZ,BLANK,exact: Z37.000x001 is another code
dx 类目 prefix,dx Z37 prefix not_principal,Z37.000x001,,,,KBBZ,,PDX_INVALID,prefix Z37 covers every Z37 code
dx 亚目 prefix leaves the other 亚目,dx K35.3 prefix not_principal,K35.800x001,,,,K35.8,K35.8,OK,prefix K35.3 does not cover K35.8
dx prefix is case-insensitive on the x extension,dx I10.X prefix not_principal,I10.x05,,,,I10.x,,PDX_INVALID,I10.X and I10.x are the same 亚目 (docs/dip.md §6.1)
a lone asterisk code is not a principal,,M49.0*,,,,,,PDX_INVALID,shipped suffix rule *: docs/records.md §5 Q04
the dagger code of a pair is the principal,,A18.000x047+M49.0*,,,,A18.0,A18.0,OK,the asterisk rule sees the dagger code A18.000x047
不可作为主要手术操作 promotes the next procedure,proc 47.0100 exact not_main,K35.800x001,47.0100,47.0901,,K35.8:47.0100,K35.8:47.0901,OK,47.0100 can never be main → 47.0901 heads the core group (801.89 instead of 1291.91)
the promoted main keeps the related set,proc 54.5101 exact not_main,K35.800x001,54.5101,47.0100,,K35:SS,K35.8:47.0100_54.5101,OK,54.5101 heads no K35.8 group (综合 SS); not main it still counts as a related procedure of 47.0100
不可作为主要手术操作 with nothing left is conservative,proc 47.0100 exact not_main,K35.800x001,47.0100,,,K35.8:47.0100,K35.8,OK,no procedure may be main → the 亚目 conservative group
a procedure that may not be main sets no tier,proc 45.7300 exact not_main,C18.100,45.7300,,tier_from=highest,C18:SS,C18:BSZL,COMPREHENSIVE,C18.1 has no core group; 45.7300 (surgery) is skipped → 保守 even when the highest tier decides
an excluded flagged main passes on without the fallback,proc 47.0100 exact not_main,K35.800x001,47.0100,47.0901,main_fallback=false,K35.8:47.0100,K35.8:47.0901,OK,main_fallback only concerns cases without a flagged main procedure
限范围可作主要手术操作 inside the scope,proc 47.0100 exact main_in_scope K35.3|K35.8,K35.800x001,47.0100,47.0901,,K35.8:47.0100,K35.8:47.0100,OK,K35.800x001 starts with K35.8
限范围可作主要手术操作 outside the scope,proc 47.0100 exact main_in_scope K35.3,K35.800x001,47.0100,47.0901,,K35.8:47.0100,K35.8:47.0901,OK,K35.8 is outside K35.3 → 47.0100 skipped like 不可作为主要手术操作
限范围 outside the scope and nothing left,proc 47.0100 exact main_in_scope K35.3,K35.800x001,47.0100,,,K35.8:47.0100,K35.8,OK,47.0100 skipped → no main → the 亚目 conservative group
限范围 inside a 亚目 scope,proc 47.0100 exact main_in_scope K35.3,K35.300,47.0100,47.0901,,K35.3:47.0100,K35.3:47.0100,OK,K35.300 is inside K35.3
按保守治疗入组 makes the case conservative,proc 45.2302 exact conservative,C18.900,45.2302,,,C18:ZDXCZ,C18.9,OK,docs/dip.md §3.8: the main procedure counts as 保守 → the 亚目 conservative group
按保守治疗入组 by chapter prefix,proc 45.2 prefix conservative,C18.100,45.2302,,,C18:ZDXCZ,C18:BSZL,COMPREHENSIVE,C18.1 has no core group → 类目 C18 × 保守 (BSZL)
the exact row beats the prefix row,proc 47 prefix not_main;proc 47.0901 exact conservative,K35.800x001,47.0100,47.0901,,K35.8:47.0100,K35.8,OK,47.0100 skipped (prefix 47); 47.0901 is main but 按保守治疗入组 (exact) → conservative
""")))  # fmt: skip
IDS = [c["name"] for c in CASES]


@pytest.fixture(scope="module")
def pds() -> Catalogue:
    return read_catalogue("pingdingshan-2025")


def _table(cases) -> pa.Table:
    return pa.table(
        {
            "case_id": [str(i) for i in range(len(cases))],
            "principal_dx": [c["principal_dx"] or None for c in cases],
            "principal_proc": [c["principal_proc"] or None for c in cases],
            "other_procs": pa.array(
                [c["other_procs"].split("|") if c["other_procs"] else [] for c in cases],
                pa.list_(pa.string()),
            ),
        }
    )


def _region(tmp_path, rows: list[str]):
    path = tmp_path / "region_exclusions.csv"
    path.write_text("\n".join([HEADER, *(f"{r},{SRC}," for r in rows)]) + "\n", encoding="utf-8")
    return path


def _rows(region: str) -> list[str]:
    """``proc 47.0100 exact main_in_scope K35.3;…`` → table rows ``kind,code,match,rule,pdx_scope``."""
    return [",".join([*row.split(), ""][:5]) for row in filter(None, region.split(";"))]


def _options(text: str) -> dict:
    return {k: {"false": False}.get(v, v) for k, v in (o.split("=") for o in filter(None, text.split(";")))}


@pytest.mark.parametrize("with_codebook", [False, True], ids=["syntax", "codebook"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rule(pds, tmp_path, case, with_codebook):
    codebook = Codebook.load("chs-drg-1.1") if with_codebook else None
    options = _options(case["options"])
    table = _table([case])
    region = _region(tmp_path, _rows(case["region"]))
    got = group_dip(table, pds, codebook=codebook, exclusions=region, **options).to_pylist()[0]
    assert (got["dip_group"], got["dip_status"]) == (case["expect_group"], case["expect_status"]), case["why"]
    if case["expect_status"] == "PDX_INVALID":
        assert (got["dip_kind"], got["dip_score"]) == ("", None)
    # with the shipped table only, the case groups as before
    before = group_dip(table, pds, codebook=codebook, **options)["dip_group"].to_pylist()
    assert before == [case["before"]], case["name"]


def test_conservative_rule_is_the_tier_override(pds, tmp_path):
    # 按保守治疗入组 in the exclusion table = tier `conservative` in a region tier table (docs/dip.md §3.8)
    tiers = tmp_path / "tiers.csv"
    tiers.write_text("code,tier,rule\n45.2302,conservative,按保守治疗入组\n", encoding="utf-8")
    table = pa.table({"case_id": ["a", "b"], "principal_dx": ["C18.900", "C18.100"],
                      "principal_proc": ["45.2302", "45.2302"], "other_procs": ["45.7300", ""]})  # fmt: skip
    by_tiers = group_dip(table, pds, tiers=read_procedure_tiers(tiers), tier_from="highest")
    by_rule = group_dip(
        table, pds, exclusions=_region(tmp_path, ["proc,45.2302,exact,conservative,"]), tier_from="highest"
    )
    assert by_rule.equals(by_tiers)
    assert by_rule["dip_group"].to_pylist() == ["C18.9", "C18:BSZL"]


def test_one_row_per_input_row_in_order(pds, tmp_path):
    rows = [
        "dx,Z37,prefix,not_principal,",
        "proc,47.0100,exact,main_in_scope,K35.3",
        "proc,45.2,prefix,conservative,",
    ]
    ex = read_exclusions(_region(tmp_path, rows))
    picked = [CASES[i] for i in np.random.default_rng(11).integers(0, len(CASES), 3000)]
    table = _table(picked)
    out = group_dip(table, pds, exclusions=ex, explain=True)
    assert out.num_rows == table.num_rows
    assert out["case_id"].to_pylist() == table["case_id"].to_pylist()
    single = {c["name"]: group_dip(_table([c]), pds, exclusions=ex)["dip_group"][0].as_py() for c in CASES}
    assert out["dip_group"].to_pylist() == [single[c["name"]] for c in picked]
    statuses = set(out["dip_status"].to_pylist())
    assert "PDX_INVALID" in statuses and statuses <= {s.name for s in Status.of_scheme("dip")}
    reasons = out["reason"].to_pylist()
    assert any("(next listed: exclusion list)" in r for r in reasons)
    assert any(r.startswith("error: principal diagnosis cannot be the principal") for r in reasons)


def test_pdx_invalid_status():
    assert Status.PDX_INVALID.is_error
    assert Status.UNMATCHED < Status.PDX_INVALID < Status.PDX_UNKNOWN < Status.DUPLICATE_CASE


def test_shipped_table_is_the_asterisk_rule_only():
    ex = read_exclusions()
    assert [(r["kind"], r["code"], r["match"], r["rule"]) for r in ex.rows] == [
        ("dx", "*", "suffix", "not_principal")
    ]
    codes = pa.array(["M49.0*", "G01*", "A18.000x047", "K35.800x001", None])
    assert ex.invalid_principal(codes).tolist() == [True, True, False, False, False]


def test_region_rows_add_to_and_replace_shipped_rows(tmp_path):
    base = read_exclusions()
    ex = read_exclusions(_region(tmp_path, ["dx,z37,prefix,not_principal,", "proc,3.31,prefix,not_main,"]))
    assert len(ex.rows) == 3 and ex.fingerprint != base.fingerprint
    assert [r["code"] for r in ex.rows[1:]] == ["Z37", "03.31"]  # codes normalised like the cases'
    conservative, scope = ex.procedure_rules(pa.array(["03.3101", "47.0100", None]))
    assert conservative.tolist() == [False] * 3 and scope.tolist() == [1, 0, 0]
    # the fingerprint ignores source and note
    other = tmp_path / "other.csv"
    other.write_text(f"{HEADER}\ndx,Z37,prefix,not_principal,,another source,a note\n"
                     "proc,03.31,prefix,not_main,,x,\n", encoding="utf-8")  # fmt: skip
    assert read_exclusions(other).fingerprint == ex.fingerprint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"{HEADER}\ndx,Z37,prefix,not_principal,,s,\nicd,Z37,prefix,not_principal,,s,\n",
            "row 2: kind 'icd'",
        ),
        (f"{HEADER}\ndx,Z37,begins,not_principal,,s,\n", "row 1: match 'begins' is not one of exact, prefix"),
        (f"{HEADER}\nproc,47.0100,exact,按保守治疗入组,,s,\n", "row 1: rule '按保守治疗入组' of kind proc"),
        (
            f"{HEADER}\ndx,Z37,prefix,not_main,,s,\n",
            "row 1: rule 'not_main' of kind dx is not one of not_principal",
        ),
        (
            f"{HEADER}\nproc,47.0100,exact,main_in_scope,,s,\n",
            "row 1: pdx_scope is required for main_in_scope",
        ),
        (f"{HEADER}\nproc,47.0100,exact,not_main,K35,s,\n", "row 1: pdx_scope is required for main_in_scope"),
        (f"{HEADER}\ndx,Z37,prefix,not_principal,,,\n", "row 1: no source"),
        (f"{HEADER}\ndx, ,exact,not_principal,,s,\n", "row 1: empty code"),
        (
            f"{HEADER}\ndx,Z37,prefix,not_principal,,s,\ndx,z37,prefix,not_principal,,t,\n",
            "row 2: dx prefix 'z37'",
        ),
        ("kind,code,rule,source\ndx,Z37,not_principal,s\n", "missing column match"),
        (f"{HEADER},scope\n", "unknown column 'scope'"),
    ],
)
def test_loader_errors_name_file_and_row(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"bad\.csv: ") as err:
        read_exclusions(path)
    assert message in str(err.value)


def test_missing_file_is_a_catalogue_error(tmp_path):
    with pytest.raises(CatalogueError, match=r"no-such\.csv"):
        read_exclusions(tmp_path / "no-such.csv")


def test_cli_option_and_metadata(tmp_path):
    from payment.cli import app

    runner = CliRunner()
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,principal_dx,principal_proc\na,K35.800x001,47.0100\nb,Z37.000,\nc,M49.0*,\n",
        encoding="utf-8",
    )
    region = _region(tmp_path, ["dx,Z37,prefix,not_principal,", "proc,47.0100,exact,not_main,"])
    out = tmp_path / "out.parquet"
    args = ["group", str(cases), "-o", str(out), "--scheme", "dip", "--catalogue", "pingdingshan-2025", "-q"]
    result = runner.invoke(app, [*args, "--exclusions", str(region)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table["dip_group"].to_pylist() == ["K35.8", "", ""]
    assert table["dip_status"].to_pylist() == ["OK", "PDX_INVALID", "PDX_INVALID"]
    meta = table.schema.metadata
    assert meta[b"drgdip.exclusions_sha256"].decode() == read_exclusions(region).fingerprint
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert (
        pq.read_table(out).schema.metadata[b"drgdip.exclusions_sha256"].decode()
        == read_exclusions().fingerprint
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\ndx,Z37,prefix,nope,,s,\n", encoding="utf-8")
    result = runner.invoke(app, [*args, "--force", "--exclusions", str(bad)])
    assert result.exit_code == 1 and "bad.csv: row 1: rule 'nope'" in result.output
    drg = runner.invoke(
        app, ["group", str(cases), "-o", str(tmp_path / "d.csv"), "--exclusions", str(region)]
    )
    assert drg.exit_code != 0 and "--exclusions" in drg.output
