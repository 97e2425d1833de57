"""Bad rows get a precise status on their own row; the batch goes on and no row is lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import grouper

CASES = Path(__file__).with_name("bad_rows.csv")
_ROWS = pd.read_csv(CASES, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def grouped(codebook) -> pd.DataFrame:
    table = pa.concat_tables(grouper.read_discharges(CASES))
    return grouper.group_drg(table, codebook, explain=True).to_pandas().astype(str)


def test_one_output_row_per_input_row_in_order(grouped):
    assert list(grouped.case_id) == list(_ROWS.case_id)


@pytest.mark.parametrize("i", range(len(_ROWS)), ids=[f"{i}-{n}" for i, n in enumerate(_ROWS.case_id)])
def test_bad_row_status(grouped, i):
    row, got = _ROWS.iloc[i], grouped.iloc[i]
    assert (got.drg, got.drg_status) == (row.expect_drg, row.expect_status), (
        f"{row.why}; reason: {got.reason}"
    )


def test_empty_table_gives_empty_result(codebook):
    result = grouper.group_drg(grouper.DISCHARGE_SCHEMA.empty_table(), codebook, explain=True)
    assert result.num_rows == 0
    assert result.column_names == ["case_id", "mdc", "adrg", "drg", "drg_status", "reason"]


def test_duplicates_across_batches_are_flagged(codebook, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "case_id,sex,age_years,principal_dx\n" + "".join(f"c{i % 7},1,40,K35.800x001\n" for i in range(20))
    )
    results = list(
        grouper.group_files([path], lambda t, d: grouper.group_drg(t, codebook, duplicate=d), batch_size=3)
    )
    status = pa.concat_tables(results).column("drg_status").to_pylist()
    assert status[:7] == ["OK"] * 7
    assert status[7:] == ["DUPLICATE_CASE"] * 13
