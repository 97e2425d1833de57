"""CHS-DRG grouping speed on the synthetic region (benchmarks/make_data.py).

Run: ``pytest benchmarks/test_bench_drg.py --benchmark-enable -s``. Targets on 2 cores: (a) ≥ 2,000,000 records/s
grouping an in-memory table, for each scheme (chs-drg-1.1 and chs-drg-2.0 run the same expression kernel);
(b) ≥ 1,000,000 records/s Parquet → grouped Parquet (the default scheme). Peak memory of the streaming
path on the 10M-case file: ``python benchmarks/drg_end_to_end.py --cases 10000000``.
"""

from __future__ import annotations

import time

import make_data
import pyarrow as pa
import pytest

import grouper

N = 1_000_000


SCHEMES = ("chs-drg-1.1", "chs-drg-2.0")


@pytest.fixture(scope="module")
def codebook() -> grouper.Codebook:
    return grouper.Codebook.load()


@pytest.fixture(scope="module")
def cases() -> pa.Table:
    return pa.concat_tables(grouper.read_discharges(make_data.ensure(N), batch_size=N))


def _rate(benchmark, label: str, rows: int) -> None:
    seconds = benchmark.stats.stats.min
    benchmark.extra_info["records_per_s"] = round(rows / seconds)
    print(f"\n{label}: {rows:,} cases in {seconds:.3f} s = {rows / seconds:,.0f} records/s (best of rounds)")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bench_group_drg_in_memory(benchmark, cases, scheme):
    codebook = grouper.Codebook.load(scheme)
    grouper.group_drg(cases.slice(0, 1000), codebook)  # compile the kernel
    out = benchmark.pedantic(grouper.group_drg, args=(cases, codebook), rounds=5, iterations=1)
    assert out.num_rows == cases.num_rows
    _rate(benchmark, f"group_drg in memory ({scheme})", cases.num_rows)


def test_bench_parquet_to_parquet(benchmark, codebook, tmp_path):
    source = make_data.ensure(N)

    def run() -> int:
        out = tmp_path / f"g{time.perf_counter_ns()}.parquet"
        results = grouper.group_files([source], lambda t, d: grouper.group_drg(t, codebook, duplicate=d))
        return grouper.write_results(results, out)

    rows = benchmark.pedantic(run, rounds=3, iterations=1)
    assert rows == N
    _rate(benchmark, "Parquet → grouped Parquet", rows)
