"""`drgdip settle` with a policy the engine cannot use, and the library's warnings on stderr (issue 10)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from typer.testing import CliRunner

import payment.cli.settle  # noqa: F401  (registers the command)
from payment.cli._app import app
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO_PATH = ROOT / "codebooks/policies/demo-2025.toml"
HOSPITALS = pa.table({"hospital_id": ["A", "B"], "name": ["a", "b"], "level": [3, 2]})


def test_a_policy_without_deviation_is_a_policy_error(tmp_path):
    text = DEMO_PATH.read_text(encoding="utf-8")
    start = text.index("[deviation]")
    stripped = text[:start] + text[text.index("[hospital_coef]") :]
    (tmp_path / "p.toml").write_text(stripped, encoding="utf-8")
    cases, hospitals = synth.region(50, 2, seed=1)
    pq.write_table(cases, tmp_path / "c.parquet")
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    args = ["settle", "--cases", str(tmp_path / "c.parquet"), "--hospitals", str(tmp_path / "h.csv")]
    r = CliRunner().invoke(app, [*args, "--policy", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    assert "deviation: missing" in r.output and "Traceback" not in r.output


def test_cli_prints_the_warnings_on_stderr(tmp_path):
    cases, _ = synth.region(50, 2, seed=1)
    cases = cases.set_column(cases.column_names.index("hospital_id"), "hospital_id", pa.array(["A"] * 50))
    pq.write_table(cases, tmp_path / "c.parquet")
    pacsv.write_csv(HOSPITALS, tmp_path / "h.csv")
    args = ["settle", "--cases", str(tmp_path / "c.parquet"), "--hospitals", str(tmp_path / "h.csv")]
    r = CliRunner().invoke(app, [*args, "--policy", str(DEMO_PATH), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "hospital A receives 100.0% of the pool" in r.stderr
