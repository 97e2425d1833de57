"""`drgdip settle` as a user runs it (the QA pass): discharges read as `drgdip group` reads them, hospitals tables
checked with one error line and exit 1, warnings for cases left out on stderr and in region.json, the publication
difference, output folders and the drgdip version. The library behind it is tested in tests/payment/."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper
import payment.cli.settle  # noqa: F401  (registers the command)
from payment.cli._app import app
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
GROUPING = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]


def _cli(*args: str):
    return CliRunner().invoke(app, ["settle", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A grouped output and its discharges (canonical headers, ISO dates, UTF-8), hospitals, a settlement."""
    d = tmp_path_factory.mktemp("qa")
    cases, hospitals = synth.region(800, 4, seed=3, codes=True)
    plain = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
                     names=cases.column_names)  # fmt: skip
    frame = plain.drop_columns(GROUPING[1:]).to_pandas()
    frame["discharge_date"] = frame["discharge_date"].astype(str)
    frame.to_csv(d / "discharges.csv", index=False)
    pacsv.write_csv(plain.select(GROUPING), d / "grouped.csv")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    r = _settle(d, "discharges.csv", "base")
    assert r.exit_code == 0, r.output
    return d


def _settle(d: Path, discharges: str, out: str, *extra: str, cases: str = "grouped.csv"):
    return _cli("--cases", str(d / cases), "--discharges", str(d / discharges), "--hospitals",
                str(d / "hospitals.csv"), "--policy", str(DEMO), "--out", str(d / out), "-q", *extra)  # fmt: skip


def _variant(d: Path, name: str, change, encoding: str = "utf-8") -> str:
    frame = pd.read_csv(d / "discharges.csv", dtype=str, keep_default_na=False)
    changed = change(frame)  # a new frame, or None when changed in place
    frame = frame if changed is None else changed
    frame.to_csv(d / name, index=False, encoding=encoding)
    return name


def _same_settlement(d: Path, out: str) -> None:
    for name in ("hospitals.csv",):
        assert (d / out / name).read_bytes() == (d / "base" / name).read_bytes()
    got = pq.read_table(d / out / "cases.parquet").drop_columns(["case_id"])
    assert got.equals(pq.read_table(d / "base" / "cases.parquet").drop_columns(["case_id"]))


@pytest.mark.parametrize(
    "name, change",
    [
        ("slash.csv", lambda f: f.__setitem__("discharge_date", f.discharge_date.str.replace("-", "/"))),
        ("compact.csv", lambda f: f.__setitem__("discharge_date", f.discharge_date.str.replace("-", ""))),
        ("chinese.csv", lambda f: f.rename(columns={"case_id": "结算ID", "hospital_id": "定点医药机构编号"})),
        ("spaces.csv", lambda f: f.__setitem__("case_id", f.case_id + "  ")),
    ],
)
def test_discharges_are_read_as_group_reads_them(files, name, change):
    r = _settle(files, _variant(files, name, change), name + ".out")
    assert r.exit_code == 0, r.output
    _same_settlement(files, name + ".out")


def test_gbk_discharges_with_or_without_encoding(files):
    name = _variant(files, "gbk.csv", lambda f: f.rename(columns={"case_id": "结算ID"}), "gbk")
    for extra in ((), ("--encoding", "gbk")):
        r = _settle(files, name, f"gbk{len(extra)}", *extra)
        assert r.exit_code == 0, r.output
        _same_settlement(files, f"gbk{len(extra)}")


def test_a_bad_date_is_one_error_line_naming_the_row_not_a_case_settled_in_another_period(files):
    """A date written but unreadable is an error (issue 11 item 2): read as empty, its case would leave the
    policy's period filter and be paid from this year's budget whatever year it belongs to."""
    name = _variant(files, "onebad.csv", lambda f: f.loc.__setitem__((100, "discharge_date"), "2025-13-45"))
    r = _settle(files, name, "onebad")
    assert r.exit_code == 1, r.output
    assert f"{files / name}: row 102, column discharge_date: not a date" in r.output.replace("\n", "")
    assert "2025-13-45" not in r.output and not (files / "onebad").exists()


def test_grouped_output_as_excel(files):
    pd.read_csv(files / "grouped.csv", dtype=str).to_excel(files / "grouped.xlsx", index=False)
    r = _settle(files, "discharges.csv", "xlsx", cases="grouped.xlsx")
    assert r.exit_code == 0, r.output
    _same_settlement(files, "xlsx")


def test_rows_that_do_not_line_up_name_both_files_and_the_row(files):
    name = _variant(files, "swapped.csv", lambda f: f.loc.__setitem__((5, "case_id"), "X5"))
    r = _settle(files, name, "swapped")
    assert r.exit_code == 1
    assert f"{files / 'grouped.csv'}: rows do not line up with {files / name}" in r.output.replace("\n", "")
    # the 6th case is line 7 of either CSV file (its header is line 1): rows as the user sees them
    assert "row 7: another case_id than in" in r.output.replace("\n", "")
    assert f"row 7 of {files / name} has no grouped row" in r.output.replace("\n", "")
    assert "C5" not in r.output and "X5" not in r.output  # the row, never its case_id


def test_cases_that_hold_only_grouping_columns_need_the_discharges(files, tmp_path):
    r = _cli("--cases", str(files / "grouped.csv"), "--hospitals", str(files / "hospitals.csv"), "--policy",
             str(DEMO), "--out", str(tmp_path / "o"))  # fmt: skip
    assert r.exit_code == 1 and "pass the discharges that were grouped with --discharges" in r.output


def _hospitals(files: Path, name: str, change) -> str:
    frame = pd.read_csv(files / "hospitals.csv", dtype=str)
    frame = change(frame)
    frame.to_csv(files / name, index=False)
    return name


def _with_hospitals(files: Path, hospitals: str, out: str, *extra: str):
    return _cli("--cases", str(files / "grouped.csv"), "--discharges", str(files / "discharges.csv"), "--hospitals",
                str(files / hospitals), "--policy", str(DEMO), "--out", str(files / out), *extra)  # fmt: skip


def test_hospitals_missing_from_the_table_are_a_warning(files):
    name = _hospitals(files, "hosp_2.csv", lambda f: f.head(2))
    r = _with_hospitals(files, name, "hosp_2")
    assert r.exit_code == 0, r.output
    cases = pd.read_parquet(files / "hosp_2" / "cases.parquet")
    missing = cases[~cases.hospital_id.isin(["H0000", "H0001"])]
    region = json.loads((files / "hosp_2" / "region.json").read_text(encoding="utf-8"))
    expected = (
        f"{len(missing):,} cases ({len(missing) / 800:.1%}) of 2 hospital_ids not in the hospitals table"
    )
    assert any(w.startswith(expected) for w in region["warnings"])
    assert expected in r.output.replace("\n", "")


@pytest.mark.parametrize(
    "name, change, message",
    [
        ("hosp_empty.csv", lambda f: f.head(0), "no hospital rows (only a header)"),
        (
            "hosp_dup.csv",
            lambda f: pd.concat([f, f.tail(1)]),
            "rows 5, 6, column hospital_id: the same hospital_id more than once",
        ),
        (
            "hosp_level.csv",
            lambda f: f.assign(level=["3", "四级", "1", "2"]),
            "row 3, column level: not a hospital level",
        ),
    ],
)
def test_bad_hospitals_tables_are_one_error_line(files, name, change, message):
    r = _with_hospitals(files, _hospitals(files, name, change), name + ".out")
    assert r.exit_code == 1
    assert r.output.startswith(f"error: {files / name}: ") and message in r.output.replace("\n", "")
    assert "H0003" not in r.output and "四级" not in r.output  # row and column, never the row's values


def test_chinese_hospital_levels_are_levels(files):
    levels = {"1": "一级", "2": "二级甲等", "3": "三级"}
    name = _hospitals(files, "hosp_cn.csv", lambda f: f.assign(level=f.level.map(levels)))
    r = _with_hospitals(files, name, "hosp_cn", "-q")
    assert r.exit_code == 0, r.output
    assert (files / "hosp_cn" / "hospitals.csv").read_bytes() == (
        files / "base" / "hospitals.csv"
    ).read_bytes()


def test_publication_difference_is_recorded_per_pool(files):
    region = json.loads((files / "base" / "region.json").read_text(encoding="utf-8"))
    for pool in region["pools"].values():  # docs/formulas.md §0: allocated + kept − distributable
        diff = (
            Fraction(pool["allocated"])
            + Fraction(pool["kept_by_fund"])
            - Fraction(pool["cascade"]["distributable"])
        )
        assert Fraction(pool["publication_difference"]) == diff
        assert pool["publication_difference_is"] == ("over" if diff > 0 else "under" if diff < 0 else "none")


def test_cases_outside_the_policy_period_and_unknown_special_cases_are_warnings(files):
    policy = files / "late.toml"
    text = DEMO.read_text(encoding="utf-8").replace("2025-01-01", "2025-07-01", 1)
    policy.write_text(text, encoding="utf-8")
    pacsv.write_csv(pa.table({"case_id": ["C1", "nope", "also-nope"]}), files / "special.csv")
    r = _cli("--cases", str(files / "grouped.csv"), "--discharges", str(files / "discharges.csv"), "--hospitals",
             str(files / "hospitals.csv"), "--policy", str(policy), "--out", str(files / "late"),
             "--special-cases", str(files / "special.csv"))  # fmt: skip
    assert r.exit_code == 0, r.output
    region = json.loads((files / "late" / "region.json").read_text(encoding="utf-8"))
    dates = pd.read_csv(files / "discharges.csv").discharge_date
    early = int((dates < "2025-07-01").sum())
    assert (
        f"{early:,} cases ({early / 800:.1%}) were discharged outside the policy's effective period"
        in " ".join(region["warnings"])
    )
    assert "2 of the 3 declared special cases (特例单议) are not among the cases" in region["warnings"]


def test_output_folder_that_is_a_file(files, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, "it is a file"), (afile / "sub", f"{afile} is a file")):
        r = _with_hospitals(files, "hospitals.csv", str(out))
        assert r.exit_code == 1 and r.output.startswith(f"error: {out}: ") and message in r.output


def test_outputs_record_the_drgdip_version(files):
    region = json.loads((files / "base" / "region.json").read_text(encoding="utf-8"))
    assert region["drgdip_version"] == grouper.__version__
    meta = pq.read_schema(files / "base" / "cases.parquet").metadata
    assert meta[b"drgdip.version"].decode() == grouper.__version__


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_one_full_table_with_export_headers_as_cases(files, suffix):
    frame = pd.concat(
        [
            pd.read_csv(files / "discharges.csv", dtype=str),
            pd.read_csv(files / "grouped.csv").drop(columns="case_id"),
        ],
        axis=1,
    ).rename(columns={"case_id": "结算ID", "hospital_id": "定点医药机构编号"})
    path = files / f"full.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path, index=False)
    r = _cli("--cases", str(path), "--hospitals", str(files / "hospitals.csv"), "--policy", str(DEMO), "--out",
             str(files / f"full_{suffix}"), "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    _same_settlement(files, f"full_{suffix}")


def test_unknown_encoding_is_one_error_line(files):
    r = _settle(files, "discharges.csv", "enc", "--encoding", "foo")
    assert r.exit_code == 1 and r.output.startswith("error: --encoding: unknown encoding 'foo'")
