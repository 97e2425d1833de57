"""DIP grouping speed: records/s of ``group_dip`` on 1M in-memory cases of the synthetic region (make_data.py).

Run: ``pytest benchmarks/test_bench_dip.py --benchmark-enable -s`` (target ≥ 1,000,000 records/s on 2 cores).
The region's cases are drawn from the 平顶山 2025 catalogue, so they are grouped against that catalogue here.
"""

from __future__ import annotations

import time
from pathlib import Path

import make_data
import pyarrow as pa
import pytest

from grouper.dip import group_dip, read_catalogue, read_procedure_tiers
from grouper.dip.group import INPUT_COLUMNS

N = 1_000_000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cases() -> pa.Table:
    return make_data.load(N, columns=list(INPUT_COLUMNS))


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
