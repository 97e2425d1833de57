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
