"""Random policies within and outside their ranges (issue 11 item 8): a policy the loader accepts has finite
numbers, its shares in 0–1 and rising deviation boundaries; anything else is a PolicyError naming the key —
never another exception, never a silent acceptance of NaN or infinity."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from payment.policy import Policy, PolicyError
from tests.fuzz.profile import COUNTS, FUZZ

BASE = tomllib.loads((Path(__file__).resolve().parents[1] / "payment/invalid/_base.toml").read_text("utf-8"))

#: (dotted key, unit) of the numbers the fuzz changes; rows are changed through their own column.
NUMBERS = [
    ("budget.all.inpatient_fund", "yuan"),
    ("budget.all.reserve_share", "share"),
    ("budget.all.out_of_area", "yuan"),
    ("budget.all.other", "yuan"),
    ("point_value.all.budget", "yuan/point"),
    ("point_value.elastic_split", "share"),
    ("deviation.low.ratio", "ratio"),
    ("deviation.high.ratio", "ratio"),
    ("deviation.kbbz_factor", "ratio"),
    ("settlement.prepay_ratio", "share"),
    ("settlement.quality_reserve", "share"),
    ("special_case.eligible_ratio", "ratio"),
    ("scores.score_scale", "points"),
]
ROWS = [
    ("settlement.surplus_bands", "retain"),
    ("settlement.overspend_bands", "fund_share"),
    ("bed_day.bands", "factor"),
]
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10, 10),
    st.floats(0, 1),
    st.integers(-(10**12), 10**12),
    st.sampled_from([0, 1, 0.5, 1.0000001, -0.0, 1e308]),
)


def _set(raw: dict, key: str, value, unit: str) -> None:
    *parents, last = key.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = {"value": value, "unit": unit, "source": "s"}


def _numbers(node, key=""):
    """Every number of the raw document with its dotted key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{key}.{k}" if key else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield key, node


@FUZZ
@given(
    changes=st.lists(st.tuples(st.sampled_from(NUMBERS), values), max_size=4),
    rows=st.lists(st.tuples(st.sampled_from(ROWS), values, values, values), max_size=3),
)
def test_a_random_policy_loads_valid_or_is_a_policy_error(changes, rows):
    raw = copy.deepcopy(BASE)
    for (key, unit), v in changes:
        _set(raw, key, v, unit)
    for (key, col), lo, width, v in rows:
        section, name = key.split(".")
        row = {"from": lo, "to": None if width is None else lo + width if _num(lo) and _num(width) else width}
        row = {k: x for k, x in row.items() if x is not None} | {col: v, "source": "s"}
        raw.setdefault(section, {}).setdefault(name, []).append(row)
    COUNTS["policy examples"] += 1
    try:
        policy = Policy.from_dict(raw, "fuzz.toml")
    except PolicyError as exc:
        COUNTS["policy rejected"] += 1
        assert str(exc).startswith("fuzz.toml: ") and exc.key
        return
    COUNTS["policy accepted"] += 1
    for key, v in _numbers(raw):
        assert math.isfinite(v), key
    b = policy.budget.all
    assert 0 <= b.reserve_share < 1
    assert 0 <= policy.settlement.prepay_ratio <= 1
    assert policy.deviation.low.ratio < policy.deviation.high.ratio
    carved = b.out_of_area + b.bed_day + b.per_case + b.fee_for_service + b.other
    assert carved < b.inpatient_fund * (1 - b.reserve_share)
    for bands in (policy.settlement.surplus_bands, policy.settlement.overspend_bands):
        assert all(0 <= x <= 1 for x in bands.value)


def _num(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)
