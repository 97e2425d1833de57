"""``drgdip catalog``: a thin command over DipCatalog (Parquet history in, catalogue out)."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

import payment.cli.catalog  # noqa: F401  (registers the commands)
from grouper.dip.catalogue import read_catalogue
from payment.cli._app import app
from tests.grouper.dip.test_catalog_builder import TIERS, VECTORS, history


def test_catalog_command_builds_the_1_2_7_vector(tmp_path):
    folder = tmp_path / "hist"
    folder.mkdir()
    h = history(VECTORS[0]["history"])
    for year in (2022, 2023, 2024):  # one file per year, read as one dataset
        pq.write_table(h.filter(h["year"].to_numpy() == year), folder / f"{year}.parquet")
    out = tmp_path / "cat.csv"
    args = [
        "catalog",
        "--history",
        str(folder),
        "--years",
        "2022,2023,2024",
        "--out",
        str(out),
        "--tiers",
        TIERS,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cat = read_catalogue(out)
    row = cat.table.filter(
        cat.table["dip_code"].to_numpy(zero_copy_only=False) == "K35.8:47.0100"
    ).to_pylist()[0]
    assert round(row["score"], 2) == 1116.17
    assert cat.meta["params"]["years"] == [2022, 2023, 2024]
    assert CliRunner().invoke(app, args).exit_code == 1  # output exists, no --force


def test_catalog_command_reports_a_bad_option_in_one_line(tmp_path):
    pq.write_table(history(VECTORS[0]["history"]), tmp_path / "h.parquet")
    args = ["catalog", "--history", str(tmp_path / "h.parquet"), "--out", str(tmp_path / "c.parquet")]
    result = CliRunner().invoke(app, [*args, "--threshold", "median:3"])
    assert result.exit_code == 1 and "is not fixed:N" in result.output
    result = CliRunner().invoke(app, [*args, "--history", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_a_history_the_fit_cannot_use_is_one_error_line_not_an_internal_error(tmp_path):
    """The fits raise the error family (InputError, SettingsError), which the CLI prints as one line."""
    h = history(VECTORS[0]["history"])
    pq.write_table(h.drop_columns(["total_cost"]), tmp_path / "no_cost.parquet")
    pq.write_table(h, tmp_path / "h.parquet")
    for command in ("catalog", "weights"):
        args = [
            command,
            "--history",
            str(tmp_path / "no_cost.parquet"),
            "--out",
            str(tmp_path / f"{command}.csv"),
        ]
        result = CliRunner().invoke(app, [*args, "-q"])
        named = f"{tmp_path / 'no_cost.parquet'}: required column 'total_cost' is missing"  # the file, not "history"
        assert result.exit_code == 1 and named in result.output.replace("\n", ""), result.output
        assert "internal error" not in result.output
    args = ["catalog", "--history", str(tmp_path / "h.parquet"), "--out", str(tmp_path / "c.csv"), "-q"]
    result = CliRunner().invoke(app, [*args, "--years", "2023,2024"])  # two years for three weights
    assert result.exit_code == 1 and "years: need 3 distinct years" in result.output, result.output
