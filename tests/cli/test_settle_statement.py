"""The statement of a settlement (issue 13 item 5): no step without its clause — the policy's citation of the key
behind it (or the engine default it used) and the formula of docs/formulas.md that computes it."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from payment.pipeline import settle_files
from payment.policy import Policy
from payment.statement import statement, write_statement
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"


def test_every_step_has_a_clause_and_the_files_rerun_byte_identical(tmp_path):
    cases, hospitals = synth.region(300, 3, seed=7, codes=True)
    pq.write_table(cases, tmp_path / "cases.parquet")
    pacsv.write_csv(hospitals, tmp_path / "hospitals.csv")
    settle_files(tmp_path / "cases.parquet", tmp_path / "hospitals.csv", DEMO, tmp_path / "s")
    table = statement(tmp_path / "s", Policy.load(DEMO))
    assert (table.policy.str.len() > 0).all()
    by_step = dict(zip(table["步骤"], table.policy, strict=False))
    assert by_step["考核系数"].startswith("settlement.quality_reserve: ")  # cited from the policy's source
    assert "docs/formulas.md §7" in by_step["考核系数"]
    assert by_step["审核扣款"].startswith("docs/formulas.md §6–§7")
    assert by_step["已预付"].startswith("settlement.prepay_ratio: ") and "预拨 90 %" in by_step["已预付"]
    a, b = write_statement(table, tmp_path / "a"), write_statement(table, tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
