"""`drgdip demo`: synth → catalog → group → settle end to end on a small synthetic region."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from payment.cli import app


def test_demo_runs_every_step_and_reconciles(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--cases", "20000", "--quiet"])
    assert result.exit_code == 0, result.output
    for name in ("region/discharges.parquet", "region/hospitals.csv", "region/history-2022-2024.parquet",
                 "region/discharges-2025.parquet", "catalogue.csv", "grouped.parquet",
                 "settlement/cases.parquet", "settlement/hospitals.csv", "settlement/region.json"):  # fmt: skip
        assert (out / name).is_file(), name
    region = json.loads((out / "settlement" / "region.json").read_text(encoding="utf-8"))
    assert region["year"] == 2025 and region["scheme"] == "dip"
    settled = pq.read_metadata(out / "region" / "discharges-2025.parquet").num_rows
    history = pq.read_metadata(out / "region" / "history-2022-2024.parquet").num_rows
    assert settled + history == 20000  # the split loses no case
    assert sum(region["routes"].values()) == region["cases"] == settled
    assert not any("outside" in w for w in region["warnings"])
    assert region["routes"]["DIP"] > 0
