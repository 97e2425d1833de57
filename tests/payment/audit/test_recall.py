"""Planted-defect recall on the synthetic region (issue 12 §7): every planted defect and re-admission is found;
the false-positive rate of each flag and QC code on the clean rows is measured (printed with ``-s``).

Planted: ``synthetic_defect`` (invalid_code, missing_pdx, sex_conflict, los_negative, duplicate_case_id) and the
re-admissions (every stay of a patient after the first; ``codebooks/synth/region-default.toml`` [readmission]).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from grouper.synth import generate
from payment.audit import audit

#: defect kind → the QC code that must report it
EXPECTED = {
    "invalid_code": "PDX_UNKNOWN",
    "missing_pdx": "PDX_MISSING",
    "sex_conflict": "SEX_CONFLICT",
    "los_negative": "DATE_CONFLICT",
    "duplicate_case_id": "DUPLICATE_CASE",
}


@pytest.fixture(scope="module")
def planted():
    discharges, _ = generate(30_000, [2025], 12, seed=7, fees=True)
    result = audit(discharges.drop(["synthetic_defect"]))
    n = discharges.num_rows
    defect = np.asarray(discharges.column("synthetic_defect").to_pylist(), dtype=object)
    patient = np.asarray(discharges.column("patient_id").to_pylist(), dtype=object)
    admitted = pc.cast(discharges.column("admission_date"), pa.int32()).to_numpy(zero_copy_only=False)
    order = np.lexsort((np.arange(n), admitted, patient))
    readmit = np.zeros(n, bool)
    readmit[order[1:]] = patient[order][1:] == patient[order][:-1]
    return result, defect, readmit


def _rows(table: pa.Table, column: str, value: str) -> np.ndarray:
    return pc.filter(table.column("row"), pc.equal(table.column(column), value)).to_numpy() - 1


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_every_planted_defect_is_found(planted, kind):
    result, defect, _ = planted
    rows = np.flatnonzero(defect == kind)
    assert len(rows) > 10
    found = np.isin(rows, _rows(result["qc"], "code", EXPECTED[kind]))
    assert found.all(), f"{(~found).sum()} of {len(rows)} {kind} rows not found"


def test_every_planted_readmission_is_found(planted):
    result, _, readmit = planted
    flagged = np.union1d(
        _rows(result["flags"], "flag", "READMISSION_15"), _rows(result["flags"], "flag", "READMISSION_31")
    )
    assert readmit.sum() > 100
    assert np.isin(np.flatnonzero(readmit), flagged).all()
    assert np.isin(flagged, np.flatnonzero(readmit)).all()  # no re-admission flag on a clean row here


def test_false_positive_rates_on_clean_rows(planted, capsys):
    result, defect, readmit = planted
    clean = (defect == None) & ~readmit  # noqa: E711 (object array)
    rates = {}
    for table, column in ((result["flags"], "flag"), (result["qc"], "code")):
        for value in sorted(set(table.column(column).to_pylist())):
            rows = np.unique(_rows(table, column, value))
            rates[f"{column} {value}"] = clean[rows].sum() / clean.sum()
    with capsys.disabled():
        print(
            f"\nfalse-positive rate on {clean.sum():,} clean rows (30,000 synthetic cases, {result.scheme}, no policy):"
        )
        for key, rate in rates.items():
            print(f"  {key:32s} {rate:8.4%}")
    assert rates.get("flag READMISSION_15", 0) == 0 and rates.get("code DUPLICATE_CASE", 0) == 0
    assert rates.get("code PDX_MISSING", 0) == 0 and rates.get("code DATE_CONFLICT", 0) == 0
