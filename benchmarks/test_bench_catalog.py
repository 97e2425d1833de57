"""Catalogue and weights build time: ``DipCatalog.fit`` and ``DrgWeights.fit`` on 3 years × 1M cases.

Run: ``pytest benchmarks/test_bench_catalog.py --benchmark-enable -s`` (target: the DIP catalogue in < 30 s on
2 cores). Two histories of 3,000,000 cases over 2022–2024: (1) a skewed in-test one — principal diagnoses
Zipf-distributed over 8,000 亚目, half with a main procedure and Poisson(0.8) other procedures drawn Zipf-wise from
3,000 codes of the shipped tier table, log-normal costs, a ``drg`` column; (2) the synthetic region of
``benchmarks/make_data.py`` (real 医保版 codes). Prints records/s and the process's peak resident memory.
"""

from __future__ import annotations

import resource
import time

import make_data
import numpy as np
import pyarrow as pa
import pytest

from grouper.dip.catalogue_builder import DipCatalog
from grouper.dip.tiers import read_procedure_tiers
from grouper.drg.weights import DrgWeights

N = 3_000_000


def _history(n: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    codes = np.array(read_procedure_tiers().codes.to_pylist()[:3000])
    subs = np.array([f"{chr(65 + i % 26)}{i % 90 + 10:02d}.{i % 10}00" for i in range(8000)])
    has = rng.random(n) < 0.5
    k = rng.poisson(0.8, n) * has
    offsets = np.concatenate(([0], np.cumsum(k))).astype(np.int32)
    drgs = np.array(
        [f"{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{i % 9 + 1}{s}" for i in range(300) for s in "1359"]
    )
    return pa.table(
        {
            "year": rng.choice(np.array([2022, 2023, 2024], dtype=np.int32), n),
            "total_cost": rng.lognormal(8.5, 0.6, n),
            "los_days": rng.integers(1, 20, n).astype(np.int32),
            "principal_dx": subs[rng.zipf(1.3, n) % subs.size],
            "principal_proc": np.where(has, codes[rng.zipf(1.5, n) % codes.size], ""),
            "other_procs": pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(codes[rng.zipf(1.5, offsets[-1]) % 3000])
            ),
            "drg": drgs[rng.zipf(1.2, n) % drgs.size],
        }
    )


@pytest.fixture(scope="module")
def history() -> pa.Table:
    return _history(N)


def _report(name: str, seconds: float) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{name}: {N:,} cases in {seconds:.2f} s = {N / seconds:,.0f} records/s; peak RSS {peak_mb:,.0f} MB"
    )


def test_dip_catalogue_build(benchmark, history):
    t0 = time.perf_counter()
    est = benchmark.pedantic(lambda: DipCatalog().fit(history), rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    _report(f"DipCatalog.fit ({est.groups_.num_rows:,} groups)", seconds)
    assert est.n_cases_ == N
    assert seconds < 30


def test_drg_weights_build(benchmark, history):
    t0 = time.perf_counter()
    est = benchmark.pedantic(lambda: DrgWeights().fit(history), rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    _report(f"DrgWeights.fit ({est.weights_.num_rows:,} DRGs)", seconds)
    assert est.n_cases_ == N


def test_dip_catalogue_build_synthetic_region():
    columns = ["discharge_date", "total_cost", "los_days", "principal_dx", "principal_proc", "other_procs"]
    history = make_data.load(N, columns=columns)
    t0 = time.perf_counter()
    est = DipCatalog().fit(history)
    seconds = time.perf_counter() - t0
    _report(f"DipCatalog.fit on the synthetic region ({est.groups_.num_rows:,} groups)", seconds)
    assert seconds < 30
