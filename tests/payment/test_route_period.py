"""A case discharged outside the policy's effective period is EXCLUDED (another year's budget pays it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

from payment import Policy, Route
from payment.route import REASONS, route_cases

ROOT = Path(__file__).resolve().parents[2]


def test_discharge_outside_the_policy_year_is_excluded():
    policy = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    days = [dt.date(2024, 12, 31), dt.date(2025, 1, 1), dt.date(2025, 12, 31), dt.date(2026, 1, 1), None]
    table = pa.table({"discharge_date": pa.array(days, pa.date32()), "principal_dx": ["K35.800"] * 5})
    n = table.num_rows
    r = route_cases(table, policy, np.full(n, 3, np.int8), np.ones(n, bool), np.ones(n, bool))
    assert [Route(x).name for x in r.route] == ["EXCLUDED", "DIP", "DIP", "EXCLUDED", "DIP"]
    assert REASONS[r.reason[0]] == "outside_settlement_period"


def test_a_case_without_id_is_excluded_with_its_own_reason():
    policy = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    table = pa.table(
        {"discharge_date": pa.array([dt.date(2025, 3, 1)] * 2, pa.date32()), "principal_dx": ["K35.800"] * 2}
    )
    n = table.num_rows
    r = route_cases(
        table,
        policy,
        np.full(n, 3, np.int8),
        np.ones(n, bool),
        np.ones(n, bool),
        None,
        np.array([False, True]),
    )
    assert [Route(x).name for x in r.route] == ["DIP", "EXCLUDED"]
    assert REASONS[r.reason[1]] == "case_id_missing"
