"""Money invariants on random regions (issue 11 item 8): pools add up to their budget exactly, the clearing
arithmetic holds to the fen, and the same cases pay the same money in any row order and any batch size."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from payment.budget import budget_cascade
from payment.money import round_fen
from payment.policy import Policy
from payment.settle import settle
from tests.fuzz.profile import COUNTS, FUZZ
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
_REGIMES = {
    "floating": {},
    "elastic": {
        "point_value.regime": "elastic",
        "point_value.employee.fixed": {"value": 5.0, "unit": "yuan/point", "source": "dip-2020"},
        "point_value.resident.fixed": {"value": 5.0, "unit": "yuan/point", "source": "dip-2020"},
    },
}


def _fen(x) -> int:
    return int(Decimal(str(x)) * 100)


region = st.fixed_dictionaries(
    {
        "n": st.integers(1, 400),
        "n_h": st.integers(1, 7),
        "seed": st.integers(0, 2**31),
        "codes": st.booleans(),
        "form": st.sampled_from(["ratio", "subtraction"]),
        "decimals": st.sampled_from([None, 4]),
        "regime": st.sampled_from(sorted(_REGIMES)),
    }
)


def _policy(r: dict) -> Policy:
    return DEMO.replace(
        {"point_value.form": r["form"], "point_value.decimals": r["decimals"], **_REGIMES[r["regime"]]}
    )


@FUZZ
@given(r=region, order_seed=st.integers(0, 2**31), batch=st.integers(1, 500))
def test_the_money_adds_up_whatever_the_order_and_the_batches(r, order_seed, batch):
    cases, hospitals = synth.region(r["n"], r["n_h"], seed=r["seed"], codes=r["codes"])
    policy = _policy(r)
    base = settle(cases, hospitals, policy)
    COUNTS["money examples"] += 1
    COUNTS["money rows"] += cases.num_rows

    # every case once, in input order
    assert base.cases.column("case_id").to_pylist() == cases.column("case_id").to_pylist()
    h = base.hospitals.to_pylist()
    # clearing arithmetic per hospital, to the fen: clearing = payment_due − prepaid
    for row in h:
        assert _fen(row["clearing"]) == _fen(row["payment_due"]) - _fen(row["prepaid"]), row["hospital_id"]
    # the hospitals add up to the region's totals
    for col in ("allocated", "payment_due", "prepaid", "clearing"):
        assert sum(_fen(row[col]) for row in h) == _fen(base.region["totals"][col]), col
    # a floating pool shares out exactly its distributable budget (exact point value; nothing kept)
    for pool, info in base.region["pools"].items():
        if r["regime"] != "floating" or r["decimals"] is not None:
            continue
        if Fraction(info["settlement_point_value_exact"]) == 0:
            continue
        assert _fen(info["allocated"]) == round_fen(budget_cascade(policy.budget[pool]).distributable), pool

    # the same money for any row order …
    perm = np.random.default_rng(order_seed).permutation(cases.num_rows)
    shuffled = settle(cases.take(pa.array(perm)), hospitals, policy)
    assert shuffled.hospitals.equals(base.hospitals)
    by_id = dict(zip(base.cases.column("case_id").to_pylist(), base.cases.to_pylist(), strict=True))
    for row in shuffled.cases.to_pylist():
        assert row == by_id[row["case_id"]]
    # … and any batch size
    cut = settle(cases, hospitals, policy, batch_size=batch)
    assert cut.hospitals.equals(base.hospitals) and cut.cases.equals(base.cases)
    assert cut.region == base.region
    COUNTS["money settlements"] += 3
