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


def test_routing_cleans_codes_like_the_grouper_and_never_pays_an_ungrouped_case_by_the_scheme():
    policy = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    item = policy.per_case.entries[0]  # J35.3 + 28.3 (tonsillectomy) in the demo policy
    dx, proc = item["dx"][0], item["procs"][0]
    table = pa.table(
        {
            "discharge_date": pa.array([dt.date(2025, 3, 1)] * 2, pa.date32()),
            "principal_dx": [dx, dx.lower()],
            "principal_proc": [proc, proc.upper()],
        }
    )
    n = table.num_rows
    r = route_cases(table, policy, np.full(n, 3, np.int8), np.ones(n, bool), np.ones(n, bool))
    assert r.route[0] == r.route[1]  # the lower-case code meets the same per-case list
    ungrouped = route_cases(table, policy, np.full(n, 3, np.int8), np.zeros(n, bool), np.ones(n, bool))
    assert not np.isin(ungrouped.route, [Route.DIP, Route.DRG]).any()
