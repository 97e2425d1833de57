"""Error paths under attack (issue 11 item 6): every user mistake and environment failure is one line and exit 1,
nothing half-written is left behind; a traceback comes only with --debug and only for a bug."""

from __future__ import annotations

import errno
import importlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from payment.cli import app
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests/grouper/drg/data/conformance_visible.csv"
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
runner = CliRunner()


def _one_line(result, start: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), result.output
    assert "Traceback" not in result.output


@pytest.fixture
def region(tmp_path) -> dict[str, Path]:
    cases, hospitals = synth.region(200, 3, seed=2, codes=True)
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns]
    pq.write_table(pa.table(cols, names=cases.column_names), tmp_path / "cases.parquet")
    pacsv.write_csv(hospitals, tmp_path / "hospitals.csv")
    return {"cases": tmp_path / "cases.parquet", "hospitals": tmp_path / "hospitals.csv"}


def _settle(region, out: Path, *extra: str):
    args = ["settle", "--cases", str(region["cases"]), "--hospitals", str(region["hospitals"])]
    return runner.invoke(app, [*args, "--policy", str(DEMO), "-o", str(out), "-q", *extra])


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_while_grouping_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full_disk)
    out = tmp_path / "out" / "grouped.parquet"
    result = runner.invoke(app, ["group", str(CASES), "-o", str(out), "-q"])
    _one_line(result, f"error: {out}: cannot write here (No space left on device)")
    assert _left(tmp_path) == []  # not even the folder out/ that the run created


def test_a_full_disk_while_settling_is_one_line_and_leaves_nothing(tmp_path, region, monkeypatch):
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full_disk)
    result = _settle(region, tmp_path / "settlement")
    _one_line(result, f"error: {tmp_path / 'settlement'}: cannot write here (No space left on device)")
    assert _left(tmp_path) == ["cases.parquet", "hospitals.csv"]


def test_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.open

    def guarded(
        path, *args, **kwargs
    ):  # what a folder without write permission answers (root writes anywhere)
        if Path(path).parent == ro:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)
    result = runner.invoke(app, ["group", str(CASES), "-o", str(ro / "grouped.parquet"), "-q"])
    _one_line(result, f"error: {ro / 'grouped.parquet'}: cannot write here (Permission denied)")
    assert _left(ro) == []


def test_an_output_that_is_a_folder_or_too_long_is_one_line(tmp_path, region):
    (tmp_path / "grouped.parquet").mkdir()
    result = runner.invoke(app, ["group", str(CASES), "-o", str(tmp_path / "grouped.parquet"), "-q"])
    _one_line(result, f"error: {tmp_path / 'grouped.parquet'}: ")
    long = tmp_path / ("n" * 5000 + ".parquet")
    result = runner.invoke(app, ["group", str(CASES), "-o", str(long), "-q"])
    _one_line(result, "error: ")
    assert "File name too long" in result.output
    (tmp_path / "afile").write_text("")
    _one_line(_settle(region, tmp_path / "afile"), f"error: {tmp_path / 'afile'}: it is a file, not a folder")


def test_a_1e30_deduction_is_one_line_without_the_value(tmp_path, region):
    deductions = tmp_path / "deductions.csv"
    deductions.write_text("hospital_id,month,amount\nH0001,2025-03,1e30\n", encoding="utf-8")
    result = _settle(region, tmp_path / "out", "--deductions", str(deductions))
    _one_line(result, f"error: {deductions}: row 2, column amount: ")
    assert (
        "1e30" not in result.output.removeprefix(f"error: {deductions}") and not (tmp_path / "out").exists()
    )


def test_an_elastic_pool_without_cases_settles_with_a_warning():
    cases, hospitals = synth.region(300, 3, seed=4)
    employee = cases.filter(pc.equal(cases.column("insurance_type").cast(pa.string()), "employee"))
    policy = Policy.load(DEMO).replace(
        {
            "point_value.regime": "elastic",
            "point_value.employee.fixed": {"value": 5.0, "unit": "yuan/point", "source": "dip-2020"},
            "point_value.resident.fixed": {"value": 5.0, "unit": "yuan/point", "source": "dip-2020"},
        }
    )
    result = settle(employee, hospitals, policy)
    resident = result.region["pools"]["resident"]
    assert resident["settlement_point_value"] == "0.0000000000" and resident["allocated"] == "0.00"
    assert any(w.startswith("pool resident: no case earns points") for w in result.region["warnings"])


def test_temporary_folders_of_a_killed_settle_are_removed_by_the_next_run(tmp_path, region):
    stale = tmp_path / ".settlement.999999999-0123abcd.drgdip-tmp"  # no such process
    stale.mkdir()
    (stale / "cases.parquet").write_bytes(b"half")
    result = _settle(region, tmp_path / "settlement")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and (tmp_path / "settlement" / "region.json").exists()


def test_a_bug_shows_a_traceback_only_with_debug(tmp_path, region, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(importlib.import_module("payment.settle"), "settle_pools", broken)
    _one_line(_settle(region, tmp_path / "o"), "error: internal error, please report (rerun with --debug)")
    result = _settle(region, tmp_path / "o", "--debug")
    assert result.exit_code == 1 and "ZeroDivisionError" in result.output and "Traceback" in result.output
    assert not (tmp_path / "o").exists()


def test_a_malformed_row_with_a_multi_line_cell_is_not_repeated(tmp_path):
    """pyarrow quotes the offending row; a quoted cell with line breaks must not carry the rest into the message."""
    head = "".join(CASES.read_text(encoding="utf-8").splitlines(keepends=True)[:3])
    path = tmp_path / "leak.csv"
    path.write_text(
        head
        + 'V9,1,64,23608,,13040503,8,1,"Q45.301\n张三 110101199001011234",I66.903,x,y,z,MDCH,HJ1,HJ15,ok,n,X,Y\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["group", str(path), "-o", str(tmp_path / "o.parquet"), "-q"])
    _one_line(
        result, f"error: {path}: row 4: CSV parse error: Expected 17 columns, got 20 (check its quoting)"
    )
    assert "张三" not in result.output and "1101" not in result.output and "I66" not in result.output


def test_a_csv_cost_1e15_is_one_error_and_abc_is_cost_invalid(tmp_path, region):
    """A CSV cost written 1e15 is a number outside its plausible range: one error line naming the file, row and
    column, nothing written; one written abc is no readable cost: the case is COST_INVALID, paid by item, and the
    settlement says so (issue 11 items 1 and 2)."""
    import csv
    import io

    table = pq.read_table(region["cases"])
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"))))
    j = rows[0].index("total_cost")
    path = tmp_path / "cases.csv"
    args = ["settle", "--cases", str(path), "--hospitals", str(region["hospitals"]), "--policy", str(DEMO)]
    for value in ("1e15", "inf", "-1,234.5"):
        rows[3][j] = value
        with path.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
        result = runner.invoke(app, [*args, "-o", str(tmp_path / "out")])
        _one_line(result, f"error: {path}: row 4, column total_cost: outside its plausible range")
        assert value not in result.output.replace(str(path), "") and not (tmp_path / "out").exists()
    rows[3][j], rows[4][j] = "abc", ""
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (
        "warning: 2 cases (1.0%) have no readable total_cost (1 empty, 1 not a number; COST_INVALID" in said
    )
    assert "paid by item (routing.invalid), not by points" in said


def _audit_input(tmp_path) -> Path:
    from grouper.synth import generate

    discharges, _ = generate(300, [2025], 2, seed=12, fees=True)
    pq.write_table(discharges.drop(["synthetic_defect"]), tmp_path / "discharges.parquet")
    return tmp_path / "discharges.parquet"


def test_a_path_too_long_is_one_line_naming_it_shortened(tmp_path, region):
    deep = tmp_path.joinpath(*["d" * 200] * 25) / "out"
    for result in (_settle(region, deep), runner.invoke(app, ["group", str(CASES), "-o", str(deep), "-q"])):
        _one_line(result, f"error: {str(tmp_path)[:20]}")
        assert "cannot write here (File name too long)" in result.output and "…" in result.output
    long = tmp_path / ("x" * 300 + ".csv")
    args = ["--hospitals", str(region["hospitals"]), "--policy", str(DEMO), "-o", str(tmp_path / "o"), "-q"]
    for command in (
        ["group", str(long), "-o", str(tmp_path / "o.parquet")],
        ["group", str(long), "-o", str(tmp_path / "o.parquet"), "-q"],
        ["settle", "--cases", str(long), *args],
        ["audit", str(long), "-o", str(tmp_path / "o"), "-q"],
    ):
        result = runner.invoke(app, command)
        _one_line(result, f"error: {str(tmp_path)[:20]}")
        assert "cannot read it (File name too long)" in result.output and "…" in result.output
    assert _left(tmp_path) == ["cases.parquet", "hospitals.csv"]


def test_a_full_disk_at_an_audit_file_footer_is_one_line_and_no_ignored_exception(tmp_path, monkeypatch):
    import gc
    import sys

    discharges = _audit_input(tmp_path)
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    monkeypatch.setattr(pq.ParquetWriter, "close", _full_disk)
    result = runner.invoke(app, ["audit", str(discharges), "-o", str(tmp_path / "au"), "-q"])
    gc.collect()
    _one_line(result, f"error: {tmp_path / 'au'}: cannot write here (No space left on device)")
    assert ignored == [] and _left(tmp_path) == ["discharges.parquet"]


def test_a_failed_run_leaves_no_new_parent_folders(tmp_path, region, monkeypatch):
    discharges = _audit_input(tmp_path)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _full_disk)
    out = tmp_path / "new" / "sub"
    for result in (
        _settle(region, out / "settlement"),
        runner.invoke(app, ["group", str(CASES), "-o", str(out / "grouped.parquet"), "-q"]),
        runner.invoke(app, ["audit", str(discharges), "-o", str(out / "au"), "-q"]),
    ):
        _one_line(result, f"error: {out}")
        assert not (tmp_path / "new").exists(), result.output


def _runaway(table: pa.Table, path: Path, row: int) -> Path:
    """``table`` as CSV with a patient-name column (姓名, not read) whose cell on ``row`` opens a quote and never
    closes it: pyarrow reads every row below into that one cell."""
    names = [f"患者{i}" for i in range(table.num_rows)]
    names[row - 2] = '"患者X'
    buf = pa.BufferOutputStream()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(quoting_style="none"))  # as exports write it: no quotes
    text = buf.getvalue().to_pybytes().decode()
    lines = text.splitlines()
    lines = [lines[0] + ",姓名"] + [f"{line},{name}" for line, name in zip(lines[1:], names, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["group", "audit", "settle", "catalog", "weights", "hospitals"])
def test_an_unterminated_quote_stops_every_command_that_reads_csv(tmp_path, region, command):
    """A quote left open in a column no command reads (the patient's name) swallowed the rows below it: 6 of 200
    cases were read as 5, exit 0. Every command that reads CSV shares the reader, and stops with one line naming
    the row where the quote opens; nothing is written."""
    cases = pq.read_table(region["cases"])
    hospitals = region["hospitals"]
    path = _runaway(cases, tmp_path / "cases.csv", 196)
    row = 196
    if command == "hospitals":
        path, row = _runaway(pacsv.read_csv(hospitals), tmp_path / "h.csv", 3), 3
        hospitals, cases_path = path, region["cases"]
    else:
        cases_path = path
    out = tmp_path / "out"
    args = {
        "group": ["group", str(path), "-o", str(out / "g.parquet"), "-q"],
        "audit": ["audit", str(path), "--out", str(out), "-q"],
        "catalog": ["catalog", "--history", str(path), "--out", str(out / "fit.csv")],
        "weights": ["weights", "--history", str(path), "--out", str(out / "fit.csv")],
    }.get(command, ["settle", "--cases", str(cases_path), "--hospitals", str(hospitals), "--policy", str(DEMO),
                    "-o", str(out), "-q"])  # fmt: skip
    result = runner.invoke(app, args)
    _one_line(result, f"error: {path}: row {row}, column 姓名: a quoted cell runs on over ")
    assert result.output.rstrip().endswith("an unterminated quote?") and "患者" not in result.output
    assert not out.exists()
