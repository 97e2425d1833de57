"""`drgdip group`: one output row per input row, metadata, clear errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from payment.cli import app

CASES = Path(__file__).parents[1] / "grouper" / "drg" / "cases_1_1.csv"
runner = CliRunner()


def test_group_csv_to_parquet_and_csv(tmp_path):
    out = tmp_path / "g.parquet"
    result = runner.invoke(app, ["group", str(CASES), "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows == sum(1 for _ in CASES.open(encoding="utf-8")) - 1
    assert table.column_names == ["case_id", "mdc", "adrg", "drg", "drg_status"]
    assert table.schema.metadata[b"drgdip.codebook"] == b"chs-drg-2.0"  # the default scheme
    csv_out = tmp_path / "g.csv"
    assert runner.invoke(app, ["group", str(CASES), "-o", str(csv_out), "--explain", "-q"]).exit_code == 0
    assert csv_out.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel on Windows reads it
    assert (
        csv_out.read_text(encoding="utf-8-sig").splitlines()[0]
        == '"case_id","mdc","adrg","drg","drg_status","reason"'
    )
    meta = json.loads((tmp_path / "g.csv.meta.json").read_text(encoding="utf-8"))
    assert meta["drgdip.codebook_sha256"] == table.schema.metadata[b"drgdip.codebook_sha256"].decode()


def test_rerun_is_byte_identical(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out in (a, b):
        assert runner.invoke(app, ["group", str(CASES), "-o", str(out), "-q"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_existing_output_is_kept_without_force(tmp_path):
    out = tmp_path / "g.csv"
    out.write_text("keep")
    result = runner.invoke(app, ["group", str(CASES), "-o", str(out)])
    assert result.exit_code == 1
    assert "already exists; pass --force" in result.output
    assert out.read_text() == "keep"
    assert runner.invoke(app, ["group", str(CASES), "-o", str(out), "--force", "-q"]).exit_code == 0


def test_missing_column_is_one_error_line_and_nothing_written(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,sex\n1,1\n")
    out = tmp_path / "g.parquet"
    result = runner.invoke(app, ["group", str(bad), "-o", str(out)])
    assert result.exit_code == 1
    assert "bad.csv: required column 'principal_dx' is missing" in result.output
    assert not out.exists()


def test_dip_scheme_groups_against_the_shipped_catalogue(tmp_path):
    out = tmp_path / "dip.parquet"
    result = runner.invoke(
        app,
        ["group", str(CASES), "-o", str(out), "--scheme", "dip", "--catalogue", "pingdingshan-2025", "-q"],
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert "dip_group" in table.column_names and table.num_rows > 30
    assert table.schema.metadata[b"drgdip.catalogue"] == b"pingdingshan-2025"
    result = runner.invoke(app, ["group", str(CASES), "-o", str(tmp_path / "x.csv"), "--scheme", "dip"])
    assert result.exit_code == 2 and "needs --catalogue" in result.output


def test_command_line_mistake_exits_2():
    assert runner.invoke(app, ["group"]).exit_code == 2


def test_excel_output_is_byte_identical_on_rerun(tmp_path):
    a, b = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    for out in (a, b):
        assert runner.invoke(app, ["group", str(CASES), "-o", str(out), "-q"]).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_dash_writes_csv_to_stdout_and_an_unwritable_path_is_one_error(tmp_path):
    result = runner.invoke(app, ["group", str(CASES), "-o", "-", "-q"])
    assert result.exit_code == 0 and result.stdout.startswith('"case_id","mdc","adrg","drg","drg_status"')
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = runner.invoke(app, ["group", str(CASES), "-o", str(blocker / "out.csv")])
    assert result.exit_code == 1 and "cannot write here" in result.output
