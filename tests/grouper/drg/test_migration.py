"""Version migration table: results under two schemes side by side, pairs counted, the CLI on a small region."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

import grouper
from grouper.synth import plan_region, write_parquet
from payment.cli import app


@pytest.fixture(scope="module")
def books():
    return grouper.Codebook.load("chs-drg-2.0"), grouper.Codebook.load("chs-drg-1.1")


def _cases() -> pa.Table:
    return pa.table(
        {
            "case_id": ["1", "2", "3", "4"],
            "sex": pa.array([2, 2, 1, 1], pa.int8()),
            "age_years": pa.array([88, 88, 60, 60], pa.int16()),
            "principal_dx": ["K22.301", "K22.301", "J18.900", "C60.000"],
            "other_dx": [["K11.901"], [], ["A00.100x001"], []],
            "principal_proc": [None, None, None, None],
        }
    )


def test_compare_schemes_adds_the_other_result_beside(books):
    new, old = books
    out = grouper.compare_schemes(_cases(), new, old)
    assert out.column_names == [
        "case_id", "mdc", "adrg", "drg", "drg_status",
        "mdc_chs_drg_1_1", "adrg_chs_drg_1_1", "drg_chs_drg_1_1", "drg_status_chs_drg_1_1",
    ]  # fmt: skip
    assert out.column("drg").to_pylist() == ["GZ19", "GZ19", "ES31", "MR15"]
    assert out.column("drg_chs_drg_1_1").to_pylist() == [
        "GZ13",
        "GZ15",
        "ES33",
        "MR15",
    ]  # A00.100x001: 1.1 CC, 2.0 MCC


def test_migration_counts_pairs_and_changes_over_batches(books):
    new, old = books
    moved = grouper.Migration("chs-drg-1.1", "chs-drg-2.0")
    for batch in (_cases().slice(0, 2), _cases().slice(2)):
        moved.add(grouper.compare_schemes(batch, new, old))
    table = moved.table().to_pylist()
    assert moved.cases == 4 and moved.drg_changed == 3 and moved.adrg_changed == 0
    assert {(r["drg_chs_drg_1_1"], r["drg_chs_drg_2_0"]): r["cases"] for r in table} == {
        ("GZ13", "GZ19"): 1,
        ("GZ15", "GZ19"): 1,
        ("ES33", "ES31"): 1,
        ("MR15", "MR15"): 1,
    }
    assert sum(r["share"] for r in table) == pytest.approx(1.0)
    assert "DRG changed for 3 (75.0%)" in moved.summary()


def test_cli_compare_with_and_migration_file_on_a_small_region(tmp_path):
    data = tmp_path / "discharges.parquet"
    write_parquet(plan_region(3000, [2024], 5, 7), data)
    out, table = tmp_path / "g.parquet", tmp_path / "migration.csv"
    args = ["group", str(data), "-o", str(out), "--compare-with", "chs-drg-1.1", "--migration", str(table)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "chs-drg-1.1 → chs-drg-2.0: 3,000 cases, ADRG changed for" in result.output.replace("\n", " ")
    grouped = pa.parquet.read_table(out)
    assert {"drg", "drg_chs_drg_1_1", "drg_status_chs_drg_1_1"} <= set(grouped.column_names)
    pairs = pacsv.read_csv(table)
    assert sum(pairs.column("cases").to_pylist()) == grouped.num_rows == 3000
    bad = CliRunner().invoke(
        app, ["group", str(data), "-o", str(tmp_path / "x.csv"), "--migration", str(table)]
    )
    assert bad.exit_code == 2 and "--migration needs --compare-with" in bad.output
