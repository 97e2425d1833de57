"""Partitioned datasets (issue 15): what `drgdip synth --parts` writes, the order both engines read a folder in,
the names of a folder of parts, and what a cluster's workers receive (pickled by value)."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.errors import InputError
from grouper.io import dataset_files, part_names
from grouper.resources import data_path
from payment.cli import app
from payment.policy import Policy


def test_synth_parts_hold_the_rows_of_the_one_file(tmp_path):
    runner = CliRunner()
    common = ["--cases", "70000", "--years", "2025", "--hospitals", "5", "--seed", "4", "--quiet"]
    assert runner.invoke(app, ["synth", "--out", str(tmp_path / "one"), *common]).exit_code == 0
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "parts"), "--parts", "2", *common])
    assert result.exit_code == 0, result.output
    files = dataset_files(tmp_path / "parts" / "discharges")
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet"]
    one = pq.read_table(tmp_path / "one" / "discharges.parquet")
    assert pa.concat_tables(pq.read_table(f) for f in files).equals(one)
    assert (tmp_path / "one" / "hospitals.csv").read_bytes() == (
        tmp_path / "parts" / "hospitals.csv"
    ).read_bytes()
    too_many = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--parts", "3", *common])
    assert too_many.exit_code == 1 and "parts must be between 1 and 2" in too_many.output


def test_a_folder_is_read_in_path_order_without_hidden_files(tmp_path):
    table = pa.table({"case_id": ["a"], "principal_dx": ["J18.900"]})
    for rel in ("year=2025/h=2/p.parquet", "year=2024/h=9/p.parquet", "year=2025/h=10/p.parquet",
                "year=2025/.p.parquet.123-abcdef01.drgdip-tmp", "_tmp/p.parquet", "year=2025/_SUCCESS"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp_path / rel)
    assert [str(f.relative_to(tmp_path)) for f in dataset_files(tmp_path)] == [
        "year=2024/h=9/p.parquet",
        "year=2025/h=10/p.parquet",
        "year=2025/h=2/p.parquet",
    ]
    assert part_names([tmp_path]) == [str(f.relative_to(tmp_path)) for f in dataset_files(tmp_path)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no Parquet files"):
        dataset_files(tmp_path / "empty")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pq.write_table(table, tmp_path / "a" / "p.parquet")
    pq.write_table(table, tmp_path / "b" / "p.parquet")
    with pytest.raises(InputError, match=r"two input files would be written as p\.parquet"):
        part_names([tmp_path / "a" / "p.parquet", tmp_path / "b" / "p.parquet"])


def test_a_policy_travels_to_the_workers_by_value():
    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    copy = pickle.loads(pickle.dumps(policy))
    assert copy.sha256 == policy.sha256 and copy.raw == policy.raw
    assert copy.deviation.high.ratio == policy.deviation.high.ratio
    assert copy.budget.design == policy.budget.design


@pytest.mark.parametrize(
    "options",
    [
        ["--workers", "2"],
        ["--engine", "spark"],
        ["--engine", "dask", "--workers", "0"],
        ["--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
    ],
)
def test_engine_options_that_do_not_fit_are_usage_errors(options, tmp_path):
    result = CliRunner().invoke(
        app, ["group", str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet"), *options]
    )
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o.parquet").exists()
