"""A small synthetic region audited once per session (DIP with the demo policy, one hospital in focus)."""

from __future__ import annotations

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.resources import data_path
from grouper.synth import generate
from payment.cli import app


@pytest.fixture(scope="session")
def region(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit-region")
    discharges, hospitals = generate(6000, [2025], 6, seed=12, fees=True)
    pq.write_table(discharges.drop(["synthetic_defect"]), folder / "discharges.parquet")
    pacsv.write_csv(hospitals, folder / "hospitals.csv")
    return folder, discharges, hospitals


@pytest.fixture(scope="session")
def audited(region):
    """`drgdip audit` of the region's busiest hospital under the demo policy: (out folder, hospital_id)."""
    folder, discharges, _ = region
    counts = discharges.column("hospital_id").value_counts().to_pylist()
    hospital = max(counts, key=lambda v: (v["counts"], v["values"]))["values"]
    out = folder / "out"
    args = ["audit", str(folder / "discharges.parquet"), "--scheme", "dip", "--policy",
            str(data_path("policies", "demo-2025.toml")), "--hospitals", str(folder / "hospitals.csv"),
            "--hospital", hospital, "--out", str(out), "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, hospital, args
