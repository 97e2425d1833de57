"""Per-case items (单病种) are matched on the distinct codes, a bit per item."""

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


def test_per_case_items_match_the_first_item_whose_lists_hold_the_case():
    """Per-case items are matched on the distinct codes, a bit per item in 64-bit words however many items there
    are: each case gets the first item whose dx and procedure lists both hold it, as matching item by item gives;
    and the routes give that item to the cases it pays."""
    from payment import route
    from payment._arrays import prefix_in
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
    dx = route._codes(table.column("principal_dx").combine_chunks(), "dx")
    proc = route._codes(table.column("principal_proc").combine_chunks(), "proc")
    level, yes = rng.integers(0, 4, n).astype(np.int8), np.ones(n, bool)
    for count in (40, 70):
        policy = with_settings(base, [f"per_case.entries=[{_items(count)}]"])
        items = policy.per_case.entries
        want = np.full(n, -1, np.int32)  # item by item, the first whose lists hold the case
        for i, item in enumerate(items):
            want[(want < 0) & prefix_in(dx, item["dx"]) & prefix_in(proc, item["procs"])] = i
        got = route._first_items(
            route._positions(dx),
            route._positions(proc),
            route._listed_bits(dx.dictionary, [it["dx"] for it in items]),
            route._listed_bits(proc.dictionary, [it["procs"] for it in items]),
        )
        np.testing.assert_array_equal(got, want)
        assert len(np.unique(got)) > 5
        assert (got >= 63).any() == (count > 63)
        paid = route_cases(table, policy, level, yes, yes).per_case_item
        np.testing.assert_array_equal(paid[paid >= 0], want[paid >= 0])
