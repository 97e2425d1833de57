"""The fit statistics as exact reductions over parts (grouper/_reduction.py): the same bits however a history is
cut or ordered, exact sums, exact quantile cuts, and a fingerprint that sees every value."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest

from grouper import _reduction as red
from grouper._history import TrimSpec, fingerprint
from grouper.drg.weights import DrgWeights


def _history(n: int = 6000, seed: int = 4) -> pa.Table:
    rng = np.random.default_rng(seed)
    drg = rng.choice(
        ["GB19", "GB29", "ES31", "ES35", "FR29", "0000", "XXQY"], n, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    )
    cost = np.round(rng.lognormal(9, 0.6, n), 2)
    cost[::97] = np.round(cost[::97], 0) + 0.123456  # six decimals too
    cost[::211] = np.nan
    years = rng.choice([2021, 2022, 2023, 2024], n)
    los = rng.integers(1, 30, n).astype(np.int32)
    return pa.table(
        {
            "year": pa.array(years, pa.int32()),
            "drg": drg,
            "total_cost": pa.array(cost, from_pandas=True),
            "los_days": pa.array(los, mask=rng.random(n) < 0.05),
        }
    )


def _cut(table: pa.Table, sizes) -> list[pa.Table]:
    edges = np.cumsum([0, *sizes])
    return [table.slice(a, b - a) for a, b in itertools.pairwise(edges)] + [table.slice(edges[-1])]


@pytest.mark.parametrize("trim", ["percentile", "iqr", "log_sd", "none"])
def test_weights_are_the_same_bits_however_the_history_is_cut_or_ordered(trim, tmp_path):
    table = _history()
    whole = DrgWeights(trim=trim, trim_min_n=10).fit(table)
    parts = DrgWeights(trim=trim, trim_min_n=10).fit_parts(red.LocalParts(_cut(table, [1, 0, 2500, 999])))
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    mixed = DrgWeights(trim=trim, trim_min_n=10).fit(shuffled)
    files = [est.to_parquet(tmp_path / f"{k}.parquet") for k, est in enumerate((whole, parts, mixed))]
    assert files[0].read_bytes() == files[1].read_bytes() == files[2].read_bytes()
    assert whole.n_trimmed_ == parts.n_trimmed_ and (trim == "none") == (whole.n_trimmed_ == 0)


def test_sums_are_exact_python_integers():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 1 << 51, 50_000, dtype=np.int64)
    x[:5] = (1 << 51) - 1
    gid = rng.integers(0, 7, x.size)
    s1, s2 = red.sums(x, gid, 7)
    for g in range(7):
        values = [int(v) for v in x[gid == g]]
        assert s1[g] == sum(values) and s2[g] == sum(v * v for v in values)


@pytest.mark.parametrize("fetch", [64, 2, 0])  # the bins' costs fetched at once, after splits, never
def test_quantile_cuts_over_parts_are_numpys_percentiles(fetch, monkeypatch):
    monkeypatch.setattr(red, "_FETCH", fetch)
    rng = np.random.default_rng(3)
    cost = rng.lognormal(8, 0.7, 20_000)
    cost[:3000] = np.round(cost[:3000], -2)  # many equal costs in a bin
    gid = rng.integers(0, 5, cost.size)
    parts = red.LocalParts(
        [
            red.Cases(cost[a:b], gid[a:b], np.zeros(b - a, np.int64))
            for a, b in ((0, 7), (7, 12000), (12000, 20000))
        ]
    )
    for spec, q in (
        (TrimSpec("percentile", limits=(0.1, 0.9)), [10, 90]),
        (TrimSpec("iqr", k=1e-12), [25, 75]),
    ):
        cut = red.cuts(parts, lambda c: c, (), 5, spec)
        for g in range(5):
            lo, hi = np.percentile(cost[gid == g], q)
            assert cut.lo[g] == pytest.approx(lo, rel=2e-9) and cut.hi[g] == pytest.approx(hi, rel=2e-9)
            assert cut.lo[g] <= lo and cut.hi[g] >= hi


def test_the_fingerprint_sees_every_value_and_not_the_cut():
    table = _history(800)
    cols = ["year", "drg", "total_cost", "los_days"]
    years = table.column("year").to_numpy()
    one = fingerprint(table, cols, years)
    parts = [red.fingerprint_part(p, cols) for p in _cut(table, [100, 0, 300])]
    assert red.fingerprint_of(red.combine_fingerprints(parts), cols, np.unique(years)) == one
    costs = table.column("total_cost").to_pylist()
    costs[5] = (costs[5] or 0) + 0.01
    other = table.set_column(2, "total_cost", pa.array(costs))
    assert fingerprint(other, cols, years)["sha256"] != one["sha256"]
    swapped = table.set_column(1, "drg", table.column("drg").take(pa.array([1, 0, *range(2, 800)])))
    if swapped.column("drg")[0] != table.column("drg")[0]:
        assert fingerprint(swapped, cols, years)["sha256"] != one["sha256"]
