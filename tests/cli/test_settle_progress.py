"""`drgdip settle` shows its passes (issue 13 item 3): each pass over the cases is announced with the rows it will
read, so the progress bar has a total and a time left from the second pass (from the first for Parquet)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from payment.pipeline import settle_files
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"


def test_every_pass_is_announced_with_its_row_count(tmp_path):
    cases, hospitals = synth.region(300, 3, seed=5, codes=True)
    plain = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
                     names=cases.column_names)  # fmt: skip
    pq.write_table(plain, tmp_path / "cases.parquet")
    pacsv.write_csv(hospitals, tmp_path / "hospitals.csv")
    passes, rows = [], []
    settle_files(
        tmp_path / "cases.parquet",
        tmp_path / "hospitals.csv",
        DEMO,
        tmp_path / "out",
        batch_size=100,
        on_rows=rows.append,
        on_pass=lambda what, total: passes.append((what, total)),
    )
    assert passes[0] == ("pass 1: points and sums", None)
    assert passes[-1] == ("pass 2: payments per case", 300)
    assert sum(rows) == 300 * len(passes)  # every pass reads every case once
