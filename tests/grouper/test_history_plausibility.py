"""The fits on past cases (``drgdip catalog``, ``drgdip weights``) apply the hard plausibility rules of a
settlement (codebooks/qc/plausibility.csv, issue 11): a cost of 1e15 or ``inf`` is one error naming the file, the
row and the column (never the value), not a case left to the trimming; an empty or NaN cost is counted and left
out with a warning; a stay that is negative or not a number takes no part in a group's mean stay."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import payment.cli.catalog  # noqa: F401  (registers the commands)
from grouper.drg.weights import DrgWeights
from grouper.errors import InputError
from grouper.io import read_cases
from payment.cli._app import app
from tests.grouper.dip.test_catalog_builder import VECTORS as DIP_VECTORS
from tests.grouper.dip.test_catalog_builder import history as dip_history
from tests.grouper.drg.test_weights import VECTORS, history


def _costs(table: pa.Table, at: dict[int, float]) -> pa.Table:
    cost = table.column("total_cost").to_numpy().copy()
    for i, v in at.items():
        cost[i] = v
    return table.set_column(table.column_names.index("total_cost"), "total_cost", pa.array(cost))


@pytest.mark.parametrize("command", ["catalog", "weights"])
@pytest.mark.parametrize("value", [1e15, np.inf, -5.0])
def test_a_history_cost_outside_its_hard_range_is_one_error_line(tmp_path, command, value):
    h = dip_history(DIP_VECTORS[0]["history"]) if command == "catalog" else history(VECTORS[0]["history"])
    first, second = h.slice(0, 10), _costs(h.slice(10), {6: value, 9: value})
    pq.write_table(first, tmp_path / "a.parquet")
    pq.write_table(
        second, tmp_path / "b.parquet"
    )  # a folder of two files: the row is counted in its own file
    args = [command, "--history", str(tmp_path), "--out", str(tmp_path / "out.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith(
        f"error: {tmp_path / 'b.parquet'}: row 7, column total_cost: outside its plausible range 0 – 100,000,000"
    ), result.output
    assert "1 more row(s) like it" in result.output and "1e+15" not in result.output
    assert not (tmp_path / "out.csv").exists()


def test_a_csv_history_names_the_line_and_counts_the_whole_file(tmp_path):
    h = history(VECTORS[0]["history"])
    n = h.num_rows
    bad = _costs(h, {3: np.inf, n - 1: 1e15})
    ids = pa.array([f"c{i}" for i in range(n)])
    bad = pa.table({"结算ID": ids, "主要诊断编码": ["K35.800"] * n, "总费用": bad["total_cost"]})
    pacsv.write_csv(bad, tmp_path / "h.csv")
    with pytest.raises(InputError) as info:
        read_cases(tmp_path / "h.csv")
    msg = str(info.value)
    # the header is line 1: the fourth case is row 5 as an editor or Excel shows it
    assert msg.startswith(
        f"{tmp_path / 'h.csv'}: row 5, column 总费用 (total_cost): outside its plausible range"
    ), msg
    assert msg.endswith("; 1 more row(s) like it") and (info.value.row, info.value.column) == (
        5,
        "total_cost",
    )


def test_a_fit_on_a_table_names_the_row_of_the_table():
    h = _costs(history(VECTORS[0]["history"]), {4: np.inf})
    with pytest.raises(InputError, match=r"^history: row 5, column total_cost: outside its plausible range"):
        DrgWeights(year_weights=(1,)).fit(h)


def test_an_empty_or_nan_history_cost_is_counted_and_warned_never_silently_left_out(tmp_path):
    h = _costs(history(VECTORS[0]["history"]), {0: np.nan, 1: np.nan})
    est = DrgWeights(year_weights=(1,)).fit(h)
    assert est.n_excluded_["cost_invalid"] == 2
    assert any(w.startswith("2 cases of the years used have no usable total_cost") for w in est.warnings_)
    pq.write_table(h, tmp_path / "h.parquet")
    args = ["weights", "--history", str(tmp_path / "h.parquet"), "--year-weights", "1"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "w.csv")])
    assert result.exit_code == 0 and "no usable total_cost" in result.output, result.output


def test_a_stay_not_a_number_is_not_in_the_mean_stay():
    h = history([{"year": 2024, "drg": "GB19", "total_cost": 100, "n": 4}])
    h = h.append_column("los_days", pa.array([4, 6, -1, None], pa.int32()))  # -1: the readers' "not a number"
    est = DrgWeights(year_weights=(1,), min_n=1).fit(h)
    assert est.weights_.column("avg_los").to_pylist() == [5.0]
