"""Per-case items (单病种) are matched on the distinct codes, a bit per item up to 63 items, item by item beyond."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

from payment import Policy
from payment.route import route_cases

ROOT = Path(__file__).resolve().parents[2]


def _items(n: int) -> str:
    """``n`` per-case items (TOML) over a few dx and procedure prefixes, overlapping so that the first one wins."""
    pairs = [(dx, proc) for dx in "ABCDEFGHJK" for proc in ("1", "2", "28", "28.3", "47", "5", "6")][:n]
    return ", ".join(
        f'{{code="M{i}", name="m{i}", dx=["{dx}", "J35"], procs=["{proc}"], price={{2={100 + i}, 3={200 + i}}}, '
        f'fund_ratio=0.5, exit_los_over={10 + i}, exit_to="{"fee_for_service" if i % 2 else "scheme"}"}}'
        for i, (dx, proc) in enumerate(pairs)
    )


def test_per_case_items_match_the_same_a_bit_per_item_or_item_by_item(monkeypatch):
    """Up to 63 per-case items are matched a bit per item of each distinct code; more, item by item
    (payment.percase.match_items): the same routes, the first item whose dx and procedure lists both hold the case
    winning."""
    from payment import route
    from payment.whatif import with_settings

    base = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    rng = np.random.default_rng(14)
    n = 4000
    table = pa.table(
        {
            "discharge_date": pa.array([dt.date(2025, 3, 1)] * n, pa.date32()),
            "principal_dx": rng.choice(["K12", "J35.3", "A00", "h1", "C", None], n).tolist(),
            "principal_proc": rng.choice(["28.3x01", "47.0", "6", "99", "1", None], n).tolist(),
            "los_days": pa.array(rng.integers(0, 90, n), pa.int32()),
            "total_cost": rng.random(n) * 1000,
        }
    )
    level, yes = rng.integers(0, 4, n).astype(np.int8), np.ones(n, bool)
    for items in (40, 70):
        policy = with_settings(base, [f"per_case.entries=[{_items(items)}]"])
        got = route_cases(table, policy, level, yes, yes)
        monkeypatch.setattr(route, "_ITEM_BITS", 0)  # item by item
        want = route_cases(table, policy, level, yes, yes)
        monkeypatch.undo()
        for name in ("route", "reason", "per_case_item", "per_case_price", "bed_day_category"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert len(np.unique(got.per_case_item)) > 5
        assert (got.per_case_item >= 63).any() == (items > 63)
