"""DIP grouping speed: records/s of ``group_dip`` on ~1M in-memory cases built from the 平顶山 2025 catalogue.

Run: ``pytest benchmarks/test_bench_dip.py --benchmark-enable -s`` (target ≥ 1,000,000 records/s on 2 cores).
Cases: 70 % drawn from core groups (principal ``{亚目}00``, the group's main and related procedures, sometimes
an extra procedure), 20 % from 综合 groups (``{类目}.900`` and a procedure of a random tier), 10 % noise
(missing or unknown principal, unknown procedures). Lists are shuffled per case only through the pools.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from grouper.dip import group_dip, read_catalogue, read_procedure_tiers

N = 1_000_000
ROOT = Path(__file__).resolve().parents[1]


def _cases(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    cat = read_catalogue("pingdingshan-2025").table
    core = cat.filter(pc.equal(cat["kind"], "core"))
    comp = cat.filter(pc.equal(cat["kind"], "comprehensive"))
    all_procs = pacsv.read_csv(ROOT / "codebooks" / "dip" / "procedure_tiers.csv")["code"].to_numpy()

    kind = rng.choice(3, n, p=[0.7, 0.2, 0.1])
    c_idx = rng.integers(0, core.num_rows, n)
    k_idx = rng.integers(0, comp.num_rows, n)
    core_dx = pc.binary_join_element_wise(core["subcategory"], "00", "").to_numpy(zero_copy_only=False)
    comp_dx = pc.binary_join_element_wise(comp["subcategory"], ".900", "").to_numpy(zero_copy_only=False)
    noise_dx = np.array([None, "XYZ", "Z99.900", "K35.800x001"], object)
    dx = np.where(kind == 0, core_dx[c_idx], np.where(kind == 1, comp_dx[k_idx], noise_dx[c_idx % 4]))

    main = core["main_proc"].to_numpy(zero_copy_only=False)
    rand_proc = all_procs[rng.integers(0, len(all_procs), n)]
    principal = np.where(kind == 0, main[c_idx], np.where(kind == 1, rand_proc, "99.9999x999"))
    principal = np.where(principal == "", None, principal)

    related = pc.split_pattern(core["related_procs"], "+").to_pylist()
    related = [[p for p in r if p] for r in related]
    extra = rng.random(n) < 0.3
    lists_len = np.array([len(r) for r in related])[c_idx] * (kind == 0) + extra
    offsets = np.zeros(n + 1, np.int32)
    offsets[1:] = np.cumsum(lists_len)
    flat_rel = np.array([p for r in related for p in r] or [""], object)
    rel_start = np.concatenate([[0], np.cumsum([len(r) for r in related])])
    values = np.empty(offsets[-1], object)
    has_rel = (kind == 0) & (lists_len - extra > 0)
    rows = np.repeat(np.arange(n), lists_len)
    pos = np.arange(offsets[-1]) - offsets[rows]
    is_rel = pos < (lists_len - extra)[rows]
    values[is_rel] = flat_rel[rel_start[c_idx[rows[is_rel]]] + pos[is_rel]]
    values[~is_rel] = all_procs[rng.integers(0, len(all_procs), int((~is_rel).sum()))]
    assert has_rel.sum() > 0
    return pa.table(
        {
            "case_id": pa.array(np.char.add("c", np.arange(n).astype(str))),
            "principal_dx": pa.array(dx, pa.string()),
            "principal_proc": pa.array(principal, pa.string()),
            "other_procs": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.string())),
            "total_cost": pa.array(rng.gamma(2.0, 5000.0, n)),
        }
    )


@pytest.fixture(scope="module")
def cases() -> pa.Table:
    return _cases(N)


def test_bench_group_dip(benchmark, cases):
    catalogue = read_catalogue("pingdingshan-2025")
    tiers = read_procedure_tiers()
    group_dip(cases.slice(0, 1000), catalogue, tiers=tiers)  # compile the numba kernels and the catalogue
    out = benchmark.pedantic(
        group_dip, args=(cases, catalogue), kwargs={"tiers": tiers}, rounds=3, iterations=1
    )
    assert out.num_rows == cases.num_rows
    start = time.perf_counter()
    group_dip(cases, catalogue, tiers=tiers)
    seconds = time.perf_counter() - start
    benchmark.extra_info["records_per_s"] = round(cases.num_rows / seconds)
    print(
        f"\ngroup_dip: {cases.num_rows:,} cases in {seconds:.3f} s = {cases.num_rows / seconds:,.0f} records/s"
    )
    status = out["dip_status"].value_counts().to_pylist()
    print({s["values"]: s["counts"] for s in status})
