"""One numbering rule for the rows an error names (issue 11): the data row as the user sees it,
:func:`grouper.io.formats.first_data_row` + the case's place in the file — the line in an editor or the row in
Excel for CSV and Excel (the header counted), the 1-based row for Parquet (no header row) — whichever path reads the
file: a Parquet file read as it is or through the reader, a CSV file, the discharges of a grouped file, the audit.
And the count of rows like the first one is the whole file's, not the first batch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from grouper.errors import InputError
from grouper.io.formats import first_data_row
from payment.audit.files import audit_files
from payment.pipeline import settle_files
from payment.policy import Policy
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"
BAD = (6, 40)  # the 7th and the 41st case: in the first and the third batch of 16


@pytest.fixture(scope="module")
def region():
    cases, hospitals = synth.region(60, 3, seed=5, codes=True)
    plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns]
    cases = pa.table(plain, names=cases.column_names)
    cost = cases.column("total_cost").to_numpy().copy()
    cost[list(BAD)] = [np.inf, 1e15]
    return cases.set_column(cases.column_names.index("total_cost"), "total_cost", pa.array(cost)), hospitals


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


def _error(run) -> InputError:
    with pytest.raises(InputError) as info:
        run()
    return info.value


@pytest.mark.parametrize(
    "shape", ["parquet as it is", "parquet with export headers", "csv", "grouped csv + discharges csv"]
)
def test_settle_names_the_row_by_one_rule_and_counts_the_whole_file(tmp_path, region, shape):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    if shape == "parquet as it is":
        path = _write(cases, tmp_path / "cases.parquet")
    elif shape == "parquet with export headers":  # not canonical: through the discharge reader
        path = _write(cases.rename_columns(["结算ID" if n == "case_id" else n for n in cases.column_names]),
                      tmp_path / "cases.parquet")  # fmt: skip
    else:
        path = _write(cases, tmp_path / "cases.csv")
    if shape == "grouped csv + discharges csv":
        grouped = _write(cases.select(["case_id", "dip_group", "dip_score", "aux_coef"]), tmp_path / "g.csv")
        discharges = _write(cases.drop_columns(["dip_group", "dip_score", "aux_coef"]), tmp_path / "d.csv")
        err = _error(lambda: settle_files(grouped, tmp_path / "h.csv", DEMO, tmp_path / "out",
                                          discharges=discharges, batch_size=16))  # fmt: skip
        path = discharges
    else:
        err = _error(lambda: settle_files(path, tmp_path / "h.csv", DEMO, tmp_path / "out", batch_size=16))
    row = first_data_row(path) + BAD[0]
    assert (err.row, err.column) == (row, "total_cost")
    assert str(err).startswith(f"{path}: row {row}, column total_cost: outside its plausible range")
    assert str(err).endswith("; 1 more row(s) like it"), str(err)  # the 41st case, two batches further on
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_the_audit_names_the_same_row_as_the_settlement(tmp_path, region, suffix):
    cases, _ = region
    path = _write(cases, tmp_path / f"cases.{suffix}")
    err = _error(lambda: audit_files([path], scheme="dip", policy=Policy.load(DEMO), level=3, batch_size=16))
    row = first_data_row(path) + BAD[0]
    assert (err.row, err.column) == (row, "total_cost") and row == (7 if suffix == "parquet" else 8)
    assert str(err).startswith(f"{path}: row {row}, column total_cost: outside its plausible range")
    assert str(err).endswith("; 1 more row(s) like it"), str(err)
