"""`drgdip catalog`, `weights` and `demo` on the inputs of the QA pass: CSV history, output folders that do not
exist yet, and one clear error line for a bad option or an empty history."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.dip.catalogue import read_catalogue
from payment.cli import app
from payment.cli.demo import DEMO_MIN_CASES
from tests.grouper.dip.test_group_aux import history

runner = CliRunner()


@pytest.fixture()
def files(tmp_path):
    """The same history as Parquet and as a CSV export (discharge dates in place of a year, lists `|`-joined)."""
    table = history()
    pq.write_table(table, tmp_path / "history.parquet")
    dates = pc.binary_join_element_wise(pc.cast(table.column("year"), pa.string()), "06-30", "-")
    csv = table.drop_columns(["year"]).append_column("discharge_date", dates)
    csv = csv.set_column(csv.schema.get_field_index("other_dx"), "other_dx",
                         pc.binary_join(csv.column("other_dx"), "|"))  # fmt: skip
    csv.to_pandas().rename(columns={"case_id": "结算ID"}).to_csv(tmp_path / "history.csv", index=False)
    return tmp_path


def _run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_catalog_from_a_csv_history_into_a_new_folder(files):
    r = _run(
        "catalog", "--history", str(files / "history.parquet"), "--out", str(files / "p" / "c.csv"), "-q"
    )
    assert r.exit_code == 0, r.output
    r = _run("catalog", "--history", str(files / "history.csv"), "--out", str(files / "new" / "sub" / "c.csv"),
             "-q")  # fmt: skip
    assert r.exit_code == 0, r.output
    a, b = read_catalogue(str(files / "p" / "c.csv")), read_catalogue(str(files / "new" / "sub" / "c.csv"))
    assert a.table.select(["dip_code", "avg_cost"]).equals(b.table.select(["dip_code", "avg_cost"]))


def test_weights_into_a_new_folder(files):
    table = history()
    n = table.num_rows
    table = table.append_column("drg", pa.array(["GB11", "ES23"] * (n // 2))).append_column(
        "adrg", pa.array(["GB1", "ES2"] * (n // 2))
    )
    pq.write_table(table, files / "grouped.parquet")
    r = _run(
        "weights", "--history", str(files / "grouped.parquet"), "--out", str(files / "w" / "rw.csv"), "-q"
    )
    assert r.exit_code == 0, r.output
    assert (files / "w" / "rw.csv").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--threshold", "foo"), "--threshold: 'foo' is not fixed:N (e.g. fixed:15) or coverage:SHARE"),
        (("--threshold", "fixed:x"), "--threshold fixed: 'x' is not a whole number"),
    ],
)
def test_catalog_threshold_messages(files, args, message):
    r = _run("catalog", "--history", str(files / "history.parquet"), "--out", str(files / "c.csv"), *args)
    assert r.exit_code == 1 and message in r.output.replace("\n", "")


def test_an_empty_history_names_the_file(files):
    empty = files / "empty.parquet"
    pq.write_table(history().slice(0, 0), empty)
    for command in ("catalog", "weights"):
        r = _run(command, "--history", str(empty), "--out", str(files / f"{command}.csv"))
        assert r.exit_code == 1 and f"{empty}: no cases in the history" in r.output.replace("\n", "")


def test_output_under_a_file_is_one_error_line(files):
    r = _run(
        "catalog", "--history", str(files / "history.parquet"), "--out", str(files / "history.csv" / "c.csv")
    )
    assert r.exit_code == 1 and r.output.startswith("error: ") and "is a file, not a folder" in r.output


@pytest.mark.parametrize("cases", ["-5", "1"])
def test_demo_needs_enough_cases(tmp_path, cases):
    r = _run("demo", "--out", str(tmp_path / "d"), "--cases", cases)
    assert r.exit_code == 1
    assert f"the demo needs at least {DEMO_MIN_CASES:,} cases" in r.output.replace("\n", "")
    assert "--hospitals" not in r.output and not (tmp_path / "d").exists()


def test_demo_out_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    r = _run("demo", "--out", str(tmp_path / "f"))
    assert r.exit_code == 1 and "it is a file, not a folder" in r.output


def test_demo_summary_shows_the_publication_difference(tmp_path):
    r = _run("demo", "--out", str(tmp_path / "d"), "--cases", str(DEMO_MIN_CASES))
    assert r.exit_code == 0, r.output
    assert "difference" in r.output and "allocated (+ kept by the fund) − budget" in r.output.replace(
        "\n", " "
    )
