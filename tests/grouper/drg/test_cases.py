"""Worked examples of the CHS-DRG 1.1 rules (codebooks/chs-drg-1.1/RULES.md §4), one CSV row each (``why`` cites the rule)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import grouper

CASES = Path(__file__).with_name("cases_1_1.csv")
_ROWS = pd.read_csv(CASES, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def grouped(codebook) -> pd.DataFrame:
    table = pa.concat_tables(grouper.read_discharges(CASES))
    return grouper.group_drg(table, codebook, explain=True).to_pandas().astype(str)


@pytest.mark.parametrize("i", range(len(_ROWS)), ids=list(_ROWS.case_id))
def test_worked_example(grouped, i):
    row, got = _ROWS.iloc[i], grouped.iloc[i]
    expected = (row.expect_mdc, row.expect_adrg, row.expect_drg, row.expect_status)
    actual = (got.mdc, got.adrg, got.drg, got.drg_status)
    assert actual == expected, f"{row.case_id}: {row.why}; reason: {got.reason}"
