"""A discharge date written but unreadable (dd/mm/yyyy, 2025-02-30) stops a settlement with one error naming the
file, the row and the column (issue 11 item 2): it used to read as empty, which took the case out of the policy's
period filter and paid every year's cases from this year's budget. ``audit``, ``catalog`` and ``weights`` read
their dates the same way (issue 11: they used to drop such cases silently)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper
from grouper.errors import InputError
from payment.cli import app
from payment.pipeline import settle_files
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"


@pytest.fixture(scope="module")
def region():
    cases, hospitals = synth.region(60, 2, seed=3, codes=True)
    plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns]
    return pa.table(plain, names=cases.column_names), hospitals


def _dates_as(cases: pa.Table, fmt: str) -> pa.Table:
    day = pc.strftime(cases.column("discharge_date").cast(pa.timestamp("s")), fmt)
    return cases.set_column(cases.column_names.index("discharge_date"), "discharge_date", day)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_day_first_dates_stop_the_settlement_naming_file_row_and_column(tmp_path, region, suffix):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    path = tmp_path / f"cases.{suffix}"
    dmy = _dates_as(cases, "%d/%m/%Y")
    pq.write_table(dmy, path) if suffix == "parquet" else pacsv.write_csv(dmy, path)
    with pytest.raises(InputError) as info:  # batches of 16: the count is the whole file's, not the batch's
        settle_files(path, tmp_path / "h.csv", DEMO, tmp_path / "out", batch_size=16)
    row = 1 if suffix == "parquet" else 2
    msg = str(info.value)
    assert msg.startswith(f"{path}: row {row}, column discharge_date: not a date as drgdip reads dates"), msg
    assert msg.endswith("; 59 more row(s) like it") and (info.value.row, info.value.column) == (
        row,
        "discharge_date",
    )
    first = dmy.column("discharge_date")[0].as_py()
    assert first not in msg and not (tmp_path / "out").exists()
    # the same dates written year first are read, in either format
    ymd = _dates_as(cases, "%Y/%m/%d")
    pq.write_table(ymd, path) if suffix == "parquet" else pacsv.write_csv(ymd, path)
    settle_files(path, tmp_path / "h.csv", DEMO, tmp_path / "out")


def test_one_impossible_date_is_one_error_line_and_grouping_still_reads_the_file(tmp_path, region):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    day = cases.column("discharge_date").cast(pa.string()).to_pylist()
    day[4] = "2025-02-30"
    path = tmp_path / "cases.csv"
    pacsv.write_csv(
        cases.set_column(cases.column_names.index("discharge_date"), "discharge_date", pa.array(day)), path
    )
    args = ["settle", "--cases", str(path), "--hospitals", str(tmp_path / "h.csv"), "--policy", str(DEMO)]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"error: {path}: row 6, column discharge_date: not a date")
    assert "2025-02-30" not in result.output
    # grouping does not need the date: the case is read, its discharge date empty
    read = pa.concat_tables(grouper.read_discharges(path))
    assert read.num_rows == 60 and read.column("discharge_date")[4].as_py() is None


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("command", ["catalog", "weights", "audit"])
def test_day_first_dates_stop_catalog_weights_and_audit_naming_file_row_and_column(
    tmp_path, region, command, suffix
):
    """The history of ``catalog``/``weights`` (it used to drop such cases as out of the years) and the cases of
    ``audit`` (its date-based findings vanished) are read as a settlement reads them; nothing is written. A
    Parquet history with the canonical names is read as it is, its text dates through the same check (it was an
    internal error)."""
    cases, _ = region
    path, out = tmp_path / f"cases.{suffix}", tmp_path / "out"
    dmy = _dates_as(cases, "%d/%m/%Y")
    pq.write_table(dmy, path) if suffix == "parquet" else pacsv.write_csv(dmy, path)
    if command == "audit":
        args = ["audit", str(path), "--out", str(out), "-q"]
    else:
        args = [command, "--history", str(path), "--out", str(out / "fit.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    row = 1 if suffix == "parquet" else 2
    assert result.output.startswith(
        f"error: {path}: row {row}, column discharge_date: not a date as drgdip reads dates"
    ), result.output
    assert result.output.rstrip().endswith("; 59 more row(s) like it"), result.output
    assert dmy.column("discharge_date")[0].as_py() not in result.output and not out.exists()


def test_a_history_with_readable_dates_reads_as_before(tmp_path, region):
    cases, _ = region
    path = tmp_path / "cases.csv"
    pacsv.write_csv(_dates_as(cases, "%Y/%m/%d"), path)
    read = grouper.read_cases(path)
    assert read.num_rows == cases.num_rows
    assert read.column("discharge_date").to_pylist() == cases.column("discharge_date").to_pylist()


def _outputs(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(out.iterdir())}


@pytest.mark.parametrize("command", ["catalog", "settle", "audit", "group"])
def test_text_dates_in_a_parquet_file_read_as_the_date_typed_file(tmp_path, region, command):
    """Dates stored as text (``2025/05/07``) in a Parquet file with the canonical names: every command reads them
    as dates, and writes the same bytes as from the file that stores them as dates (``catalog`` and ``weights``
    read such a history as it is: it was an internal error)."""
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    outputs = {}
    for name, table in (("typed", cases), ("text", _dates_as(cases, "%Y/%m/%d"))):
        path, out = tmp_path / f"{name}.parquet", tmp_path / f"out-{name}"
        pq.write_table(table, path)
        args = {
            "catalog": ["catalog", "--history", str(path), "--out", str(out / "fit.csv")],
            "settle": ["settle", "--cases", str(path), "--hospitals", str(tmp_path / "h.csv"), "--policy",
                       str(DEMO), "-o", str(out), "-q"],
            "audit": ["audit", str(path), "--out", str(out), "-q"],
            "group": ["group", str(path), "--out", str(out / "grouped.parquet"), "-q"],
        }[command]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        outputs[name] = _outputs(out)
    assert outputs["text"] == outputs["typed"] and outputs["typed"]
    if command == "catalog":  # the history a weights fit reads too
        read = grouper.read_cases(tmp_path / "text.parquet")
        assert read.column("discharge_date").type == pa.date32()
        assert read.equals(grouper.read_cases(tmp_path / "typed.parquet"))


def _years_as_text(cases: pa.Table, bad: dict[int, str]) -> pa.Table:
    year = pc.cast(pc.year(cases.column("discharge_date")), pa.string()).to_pylist()
    for i, v in bad.items():
        year[i] = v
    return cases.drop_columns(["discharge_date"]).append_column("year", pa.array(year))


@pytest.mark.parametrize("command", ["catalog", "weights"])
def test_a_history_year_that_is_not_a_year_stops_naming_file_row_and_column(tmp_path, region, command):
    """A Parquet history's own ``year`` column stored as text: ``2025`` is read as the year, ``abc`` or ``2025年``
    stops the fit with one line (it was an internal error; read as unknown it would leave the years silently)."""
    cases, _ = region
    path, out = tmp_path / "h.parquet", tmp_path / "out"
    pq.write_table(_years_as_text(cases, {3: "abc", 5: "2025年"}), path)
    result = CliRunner().invoke(app, [command, "--history", str(path), "--out", str(out / "fit.csv")])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output == (
        f"error: {path}: row 4, column year: not a year (a whole number such as 2025); 1 more row(s) like it\n"
    )
    assert not out.exists()
    read = grouper.read_cases(_write(tmp_path / "ok.parquet", _years_as_text(cases, {})))
    assert read.column("year").to_pylist() == pc.year(cases.column("discharge_date")).to_pylist()


def _write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_a_table_given_to_a_fit_is_read_as_a_file_would_be(region):
    """The library's fits on an in-memory table read text dates, years, costs and stays as the file readers do
    (they were raw Arrow errors): the same groups as the typed table; an unreadable one names the table's row."""
    from grouper.dip.catalogue_builder import DipCatalog

    cases, _ = region
    typed = DipCatalog().fit(cases)
    text = _dates_as(cases, "%Y/%m/%d")
    for name in ("total_cost", "los_days"):
        text = text.set_column(text.column_names.index(name), name, pc.cast(cases.column(name), pa.string()))
    assert DipCatalog().fit(text).groups_.equals(typed.groups_)
    with pytest.raises(
        InputError, match=r"^history: row 1, column discharge_date: not a date .*; 59 more row"
    ):
        DipCatalog().fit(_dates_as(cases, "%d/%m/%Y"))
    with pytest.raises(InputError, match=r"^history: row 4, column year: not a year .*2025\)$"):
        DipCatalog().fit(_years_as_text(cases, {3: "-3"}))


def test_a_weights_fit_on_a_table_reads_text_costs_as_the_readers_do():
    """``DrgWeights.fit`` on a table whose costs are text: numbers read as numbers (the same weights), one that is
    not a number left out and counted as the file readers count it (it was a raw Arrow error)."""
    from grouper.drg.weights import DrgWeights
    from tests.grouper.drg.test_weights import VECTORS, history

    h = history(VECTORS[0]["history"])
    typed = DrgWeights(year_weights=(1,)).fit(h)
    text = pc.cast(h.column("total_cost"), pa.string()).to_pylist()
    at = h.column_names.index("total_cost")
    fit = DrgWeights(year_weights=(1,)).fit(h.set_column(at, "total_cost", pa.array(text)))
    assert fit.weights_.equals(typed.weights_)
    text[0] = "abc"
    fit = DrgWeights(year_weights=(1,)).fit(h.set_column(at, "total_cost", pa.array(text)))
    assert fit.n_excluded_["cost_invalid"] == 1
