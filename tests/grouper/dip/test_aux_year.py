"""辅助分型 is fitted on the catalogue's years (the last of them), not on a later year of the history (issue 10)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from grouper.dip.aux import AuxTyping
from grouper.dip.catalogue_builder import DipCatalog

TIERS = str(Path(__file__).parent / "data_builder" / "procedure_tiers.csv")


def _history() -> pa.Table:
    # 2023 and 2024 (the catalogue's years): 80 重度 cases (an MCC, I50.900) at 15,000 and 320 mild at 8,750 →
    # group mean 10,000, 重度 coefficient 1.5. 2025 (the settlement year, later): every case at 9,000, no CV fall.
    rows = []
    for year in (2023, 2024, 2025):
        for i in range(400):
            severe = i < 80
            cost = 9000.0 if year == 2025 else 15000.0 if severe else 8750.0
            rows.append((year, "I50.900" if severe else None, cost))
    year, other, cost = zip(*rows, strict=True)
    n = len(rows)
    return pa.table(
        {
            "year": pa.array(year, pa.int32()),
            "principal_dx": ["K35.800"] * n,
            "principal_proc": [""] * n,
            "other_procs": pa.array([[]] * n, pa.list_(pa.string())),
            "other_dx": pa.array([[o] if o else [] for o in other], pa.list_(pa.string())),
            "los_days": pa.array([5] * n, pa.int32()),
            "discharge_mode": pa.array([1] * n, pa.int8()),
            "age_years": pa.array([40] * n, pa.int16()),
            "total_cost": pa.array(cost, pa.float64()),
        }
    )


def test_aux_typing_fitted_on_the_last_catalogue_year_not_a_later_one():
    history = _history()
    cat = DipCatalog(tiers=TIERS, years=(2023, 2024), year_weights=(0.3, 0.7)).fit(history)
    assert cat.years_ == (2023, 2024)
    aux = cat.fit_aux(history)
    assert aux.year_ == 2024 and aux.n_cases_ == 400
    coef = {r["subtype"]: r["coef"] for r in aux.coefficients_.to_pylist()}
    assert coef["SEV-III"] == pytest.approx(1.5)
    # a year given in the settings wins: 2025 has no CV fall, so nothing is admitted
    later = cat.fit_aux(history, AuxTyping(year=2025))
    assert later.year_ == 2025 and later.coefficients_.num_rows == 0
