"""Benchmark: settle 10M cases across 500 hospitals (target < 10 s on the project machine).

Cases are generated in memory (tests/payment/payment_synth.py, dictionary-encoded codes so some cases route to
per-case prices and bed-day payment); nothing is written to disk. ``settle`` works through
``settle_batches`` in batches, so its peak memory is mostly the input and output tables; the streaming case
(output discarded batch by batch) is measured too. Parquet in and out, in a fresh process:
benchmarks/settle_end_to_end.py. Run with ``pytest benchmarks/test_bench_settle.py --benchmark-enable``;
``DRGDIP_BENCH_CASES`` changes the size.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import pytest

from payment.policy import Policy
from payment.settle import BATCH_SIZE, settle, settle_batches

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "payment"))
import payment_synth  # noqa: E402

N_CASES = int(os.environ.get("DRGDIP_BENCH_CASES", 10_000_000))
N_HOSPITALS = 500


@pytest.fixture(scope="module")
def region():
    return payment_synth.region(N_CASES, N_HOSPITALS, seed=42, codes=True)


def test_bench_settle_10m(benchmark, region):
    cases, hospitals = region
    policy = Policy.load(ROOT / "codebooks" / "policies" / "demo-2025.toml")
    small, small_h = payment_synth.region(1_000, 5, codes=True)
    settle(small, small_h, policy)  # load the numba cache outside the measurement
    result = benchmark.pedantic(settle, args=(cases, hospitals, policy), rounds=1, iterations=1)
    assert result.cases.num_rows == N_CASES
    stats = getattr(benchmark, "stats", None)
    seconds = stats.stats.max if stats else None
    benchmark.extra_info["cases"] = N_CASES
    benchmark.extra_info["hospitals"] = N_HOSPITALS
    benchmark.extra_info["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if seconds:
        benchmark.extra_info["cases_per_second"] = N_CASES / seconds


def test_bench_settle_batches_10m(benchmark, region):
    cases, hospitals = region
    policy = Policy.load(ROOT / "codebooks" / "policies" / "demo-2025.toml")
    rows = []

    def batches():
        return (cases.slice(i, BATCH_SIZE) for i in range(0, cases.num_rows, BATCH_SIZE))

    def run():
        return settle_batches(batches, hospitals, policy, write=lambda t: rows.append(t.num_rows))

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert sum(rows) == N_CASES
    stats = getattr(benchmark, "stats", None)
    benchmark.extra_info["cases"] = N_CASES
    if stats and stats.stats.max:
        benchmark.extra_info["cases_per_second"] = N_CASES / stats.stats.max
