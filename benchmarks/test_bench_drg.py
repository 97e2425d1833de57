"""CHS-DRG grouping speed on the synthetic region (benchmarks/make_data.py).

Run: ``pytest benchmarks/test_bench_drg.py --benchmark-enable -s``. Targets on 2 cores: (a) ≥ 2,000,000 records/s
grouping an in-memory table, for each scheme (chs-drg-1.1 and chs-drg-2.0 run the same expression kernel);
(b) ≥ 1,000,000 records/s Parquet → grouped Parquet (the default scheme). Peak memory of the streaming
path on the 10M-case file: ``python benchmarks/drg_end_to_end.py --cases 10000000``.

Floors measured in the same run, so that a loaded machine still compares (issue 14): the kernel alone on encoded
cases (``test_bench_kernel_floor``: the grouping floor of (a)) and the read of the columns the grouper needs from the
same Parquet file (``test_bench_read_floor``: the floor of (b)). Each line prints the machine's load average.
"""

from __future__ import annotations

import os
import time

import make_data
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.drg import _kernel
from grouper.drg import group as drg_group

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
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{label}: {rows:,} cases in {seconds:.3f} s = {rows / seconds:,.0f} records/s (best of rounds; load {load})"
    )


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


@pytest.mark.parametrize("scheme", SCHEMES)
def test_bench_kernel_floor(benchmark, cases, scheme):
    """The expression kernel alone on encoded cases: what group_drg costs beyond encoding and labelling."""
    codebook = grouper.Codebook.load(scheme)
    col = drg_group._columns(cases)
    pdx, pproc = codebook.encode_dx(col["principal_dx"]), codebook.encode_proc(col["principal_proc"])
    odx_off, odx, _ = drg_group._encode_list(col["other_dx"], codebook.encode_dx)
    oproc_off, oproc, _ = drg_group._encode_list(col["other_procs"], codebook.encode_proc)
    sex = col["sex"].fill_null(-128).to_numpy(zero_copy_only=False).astype(np.int8)
    nums = drg_group._numbers(col, codebook.settings.numbers)
    args = (_kernel.tables(codebook), pdx, odx_off, odx, pproc, oproc_off, oproc, sex, nums)
    skip = np.zeros(len(pdx), np.bool_)
    _kernel.group_cases(*args, skip)  # compile
    benchmark.pedantic(_kernel.group_cases, args=(*args, skip), rounds=5, iterations=1)
    _rate(benchmark, f"kernel floor ({scheme})", cases.num_rows)


def test_bench_read_floor(benchmark):
    """Reading the columns the grouper needs from the Parquet file: the floor of the end-to-end figure."""
    source = make_data.ensure(N)
    names = [c for c in drg_group.INPUT_COLUMNS if c in pq.read_schema(source).names]
    table = benchmark.pedantic(
        pq.read_table, args=(source,), kwargs={"columns": names}, rounds=3, iterations=1
    )
    _rate(benchmark, "read floor (needed Parquet columns)", table.num_rows)
