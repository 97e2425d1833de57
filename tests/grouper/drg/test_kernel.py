"""The CHS-DRG kernel shares the cases among threads (issue 14): any split groups exactly as one thread does, and
cases encoded ahead group as the table does."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import grouper
from grouper.drg import _kernel
from grouper.drg.group import encode_cases

DATA = Path(__file__).with_name("data20")


def test_cases_split_among_threads_group_as_on_one_thread(monkeypatch):
    codebook = grouper.Codebook.load("chs-drg-2.0")
    table = pa.concat_tables(grouper.read_discharges(DATA / "conformance_visible.csv"))
    one = grouper.group_drg(table, codebook, explain=True)  # 5,000 cases: one piece, the calling thread
    monkeypatch.setattr(_kernel, "_PIECE", 97)
    monkeypatch.setattr(_kernel.config, "NUMBA_NUM_THREADS", 3)
    assert grouper.group_drg(table, codebook, explain=True).equals(one)  # 12 pieces on 3 threads


def test_cases_encoded_ahead_group_as_the_table_does():
    """``encode_cases`` (taken beside the reading in a streamed run) then ``group_drg``: the same results, and
    cases encoded for another codebook or code reading are refused rather than grouped against the wrong ids."""
    codebook, other = grouper.Codebook.load("chs-drg-2.0"), grouper.Codebook.load("chs-drg-1.1")
    table = pa.concat_tables(grouper.read_discharges(DATA / "conformance_visible.csv"))
    encoded = encode_cases(table, codebook)
    assert grouper.group_drg(encoded, codebook, explain=True).equals(
        grouper.group_drg(table, codebook, explain=True)
    )
    for wrong in (other, codebook):
        with pytest.raises(ValueError, match="another codebook or code reading"):
            grouper.group_drg(encoded, wrong, codes="verbatim" if wrong is codebook else "clean")


def _drgs_in_a_child(table: pa.Table) -> list[str]:
    return grouper.group_drg(table, grouper.Codebook.load("chs-drg-2.0")).column("drg").to_pylist()


def test_a_forked_child_groups_on_threads_of_its_own(monkeypatch):
    """The kernel's threads live for the process; a child forked after the parent grouped (a multiprocessing
    pool on Linux) starts its own rather than waiting forever on the parent's, which it does not have."""
    import multiprocessing

    codebook = grouper.Codebook.load("chs-drg-2.0")
    table = pa.concat_tables(grouper.read_discharges(DATA / "conformance_visible.csv"))
    monkeypatch.setattr(_kernel, "_PIECE", 97)
    monkeypatch.setattr(_kernel.config, "NUMBA_NUM_THREADS", 2)
    here = grouper.group_drg(table, codebook).column("drg").to_pylist()  # the parent's threads started
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_drgs_in_a_child, (table,)).get(timeout=120) == here


def test_a_null_list_that_owns_values_groups_as_an_empty_one():
    """Arrow lets a null list own a segment of its values; the grouper reads it as no codes, whether or not the
    column has nulls (the list's own offsets are taken only without them)."""
    codebook = grouper.Codebook.load("chs-drg-2.0")
    codes = pa.array(["K11.901", "E11.900", "N18.500"])
    owning = pa.ListArray.from_arrays(pa.array([0, 2, 3]), codes, mask=pa.array([True, False]))
    empty = pa.array([[], ["N18.500"]], pa.list_(pa.string()))
    table = {
        "case_id": ["1", "2"],
        "sex": pa.array([2, 1], pa.int8()),
        "age_years": pa.array([88, 60], pa.int16()),
    }
    table["principal_dx"] = ["K22.301", "I10.x00"]
    got = grouper.group_drg(pa.table({**table, "other_dx": owning}), codebook, explain=True)
    assert got.equals(grouper.group_drg(pa.table({**table, "other_dx": empty}), codebook, explain=True))


def test_case_numbers_read_an_empty_value_as_0_and_an_unreadable_one_as_nan_only_in_the_ecmascript_reading():
    import numpy as np

    years = np.array([-32768, 0, -1, 7], np.int16)  # -32768 written as such stays itself (the checks see it)
    days, weights = np.array([0, 12, 0, -1], np.int32), np.array([0, 2500, 0, 0], np.int32)
    plain = _kernel.case_numbers(years, days, weights, False)
    assert plain.tolist() == [[-32768.0, 0.0, 0.0], [0.0, 12.0, 2500.0], [-1.0, 0.0, 0.0], [7.0, -1.0, 0.0]]
    ecma = _kernel.case_numbers(years, days, weights, True)
    assert np.isnan(ecma[2, 0]) and np.isnan(ecma[3, 1]) and ecma[0, 0] == -32768.0
