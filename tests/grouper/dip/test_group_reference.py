"""The vectorized grouper against a plain per-case reading of docs/dip.md §3.7–3.9 on random cases."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from grouper.dip import TIERS, group_dip, read_catalogue, read_procedure_tiers


def _reference(case: dict, rows: list[dict], tier_of: dict) -> str:
    """National profile, subset rule, tier from the main procedure, 介入 → 手术 (docs/dip.md §3.7 recommended reading)."""
    dx = (case["principal_dx"] or "").upper().replace("X", "x")
    procs = [p for p in [case["principal_proc"], *case["other_procs"]] if p and p in tier_of]
    main = procs[0] if procs else None
    main_tier = tier_of[main] if main else "conservative"
    if main_tier == "interventional":
        main_tier = "surgery"
    if main_tier == "conservative":
        main = None
    sub, cat = dx[:5].upper(), dx[:3].upper()
    cands = [
        r
        for r in rows
        if r["kind"] == "core"
        and r["subcategory"].upper() == sub
        and r["main_proc"] == (main or "")
        and set(filter(None, r["related_procs"].split("+"))) <= set(procs)
    ]
    if cands:
        best = max(cands, key=lambda r: (len(list(filter(None, r["related_procs"].split("+")))), r["score"]))
        ties = [
            r
            for r in cands
            if (len(list(filter(None, r["related_procs"].split("+")))), r["score"])
            == (len(list(filter(None, best["related_procs"].split("+")))), best["score"])
        ]
        return min(r["dip_code"] for r in ties)
    comp = [
        r for r in rows if r["kind"] == "comprehensive" and r["subcategory"] == cat and r["tier"] == main_tier
    ]
    return min(r["dip_code"] for r in comp) if comp else "KBBZ"


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_the_plain_reading(seed):
    cat = read_catalogue("pingdingshan-2025")
    rows = cat.table.to_pylist()
    tiers = read_procedure_tiers(interventional_as="interventional")
    tier_of = dict(zip(tiers.codes.to_pylist(), [TIERS[t] for t in tiers.tier], strict=True))
    core = [r for r in rows if r["kind"] == "core"]
    procs = sorted({p for r in core for p in [r["main_proc"], *r["related_procs"].split("+")] if p})
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(1500):
        r = core[rng.integers(len(core))]
        related = [p for p in r["related_procs"].split("+") if p]
        # drop some related procedures, add some from other groups, sometimes swap the main procedure
        other = [p for p in related if rng.random() < 0.7] + list(rng.choice(procs, rng.integers(0, 3)))
        main = r["main_proc"] or None
        if rng.random() < 0.2:
            main = str(rng.choice(procs))
        tail = str(rng.choice(["00", "00x001", "01"]))
        cases.append({"case_id": str(i), "principal_dx": r["subcategory"] + tail, "principal_proc": main,
                      "other_procs": other})  # fmt: skip
    table = pa.Table.from_pylist(cases)
    got = group_dip(table, cat, tiers=read_procedure_tiers())["dip_group"].to_pylist()
    want = [_reference(c, rows, tier_of) for c in cases]
    assert got == want
