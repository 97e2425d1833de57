"""CLI error handling (issue 8 item 3, issue 11 item 4): the family is one plain line and exit 1; anything else is
a bug — one line asking for a report, or the traceback with --debug."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import grouper.batch
from payment.cli import app

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests/grouper/drg/data/conformance_visible.csv"
runner = CliRunner()


def test_an_error_of_the_family_is_one_plain_line(tmp_path):
    missing = tmp_path / "[/b]no[red]such.csv"
    result = runner.invoke(app, ["group", str(missing), "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: {missing}: no such file"


def test_a_bug_is_an_internal_error_line_or_a_traceback_with_debug(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("grouper.pipeline.group_files", broken)
    args = ["group", str(CASES), "-o", str(tmp_path / "o.parquet"), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == "error: internal error, please report (rerun with --debug)"
    result = runner.invoke(app, [*args, "--debug"])
    assert result.exit_code == 1
    assert "RuntimeError" in result.output and "a bug" in result.output
    assert not (tmp_path / "o.parquet").exists()
    assert grouper.batch.group_files is not broken


def test_an_output_under_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    result = runner.invoke(app, ["synth", "--cases", "100", "-o", str(blocker / "region"), "-q"])
    assert (
        result.exit_code == 1 and result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    )
