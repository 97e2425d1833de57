"""``drgdip weights``: a thin command over DrgWeights; groups on the fly when the history has no `drg`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import payment.cli.catalog  # noqa: F401  (registers the commands)
from grouper.codebook import Codebook
from grouper.drg.group import group_drg
from grouper.drg.weights import DrgWeights
from payment.cli._app import app
from tests.grouper.drg.test_weights import VECTORS, history


def test_weights_command_gives_the_drg_rw_vector(tmp_path):
    pq.write_table(history(VECTORS[0]["history"]), tmp_path / "h.parquet")
    out = tmp_path / "w.parquet"
    args = ["weights", "--history", str(tmp_path / "h.parquet"), "--year-weights", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rw = dict(zip(*DrgWeights.read(out).weights_.select(["drg", "rw"]).to_pydict().values(), strict=True))
    assert rw == {"GB19": 2.0, "GB29": 0.5}


@pytest.mark.parametrize(
    ("options", "scheme"), [([], "chs-drg-2.0"), (["--scheme", "chs-drg-1.1"], "chs-drg-1.1")]
)
def test_weights_command_groups_cases_without_a_drg(tmp_path, options, scheme):
    """Without a `drg` column the cases are grouped under the scheme in force (2.0), or the one named."""
    n = 30
    t = pa.table(
        {
            "case_id": [str(i) for i in range(n)],
            "year": pa.array([2024] * n, pa.int32()),
            "sex": pa.array([2] * n, pa.int8()),
            "age_years": pa.array([88] * n, pa.int16()),
            "principal_dx": ["K22.301"] * n,
            "other_dx": [["K11.901", "E11.900"]] * n,
            "total_cost": [1000.0] * n,
        }
    )
    pq.write_table(t, tmp_path / "raw.parquet")
    out = tmp_path / "w.csv"
    result = CliRunner().invoke(
        app, ["weights", "--history", str(tmp_path / "raw.parquet"), "--out", str(out), *options]
    )
    assert result.exit_code == 0, result.output
    assert f"grouped with {scheme}" in result.output
    expected = group_drg(t, Codebook.load(scheme)).column("drg").unique().to_pylist()
    assert DrgWeights.read(out).weights_["drg"].to_pylist() == expected
    if scheme == "chs-drg-1.1":
        assert expected == ["GZ13"]  # the group_drg docstring's case
