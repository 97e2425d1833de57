"""Exact duplicate detection (issue 11 item 9): hash first, then compare the ids exactly, so two distinct case_ids
whose hashes collide are both kept (neither is DUPLICATE_CASE), and true repeats are flagged across batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import grouper.batch
from grouper.batch import DuplicateTracker, duplicated


def _reference(batches: list[list[str | None]]) -> list[list[bool]]:
    seen: set[str] = set()
    out = []
    for batch in batches:
        flags = []
        for x in batch:
            flags.append(x is not None and x in seen)
            if x is not None:
                seen.add(x)
        out.append(flags)
    return out


def _constant_hash(offsets, data):
    return np.zeros(len(offsets) - 1, np.uint64)


def _run(batches):
    tracker = DuplicateTracker()
    return [tracker.flag(pa.array(b, pa.string())).tolist() for b in batches]


def test_a_forced_collision_keeps_both_ids(monkeypatch):
    monkeypatch.setattr(grouper.batch, "_fnv1a", _constant_hash)  # every id hashes alike
    batches = [["A1", "B2", "A1"], ["C3", "B2", None, "D4"], ["D4", "E5", "E5", "A1"]]
    assert _run(batches) == [
        [False, False, True],
        [False, True, False, False],
        [True, False, True, True],
    ]
    assert duplicated(pa.array(["x", "y", "x", "z"])).tolist() == [False, False, True, False]


def test_real_hashes_flag_repeats_across_batches():
    batches = [[f"C{i}" for i in range(1000)], [f"C{i}" for i in range(990, 1010)], ["C5", None, None]]
    assert _run(batches) == _reference(batches)


def test_a_sliced_array_is_read_at_its_offset():
    arr = pa.array(["a", "b", "a", "c", "b", "c"])
    assert duplicated(arr.slice(3)).tolist() == [False, False, True]
    assert duplicated(arr.slice(1, 4)).tolist() == [False, False, False, True]


def test_a_tracker_seeded_with_ids_compares_them_exactly(monkeypatch):
    monkeypatch.setattr(grouper.batch, "_fnv1a", _constant_hash)
    tracker = DuplicateTracker(pa.array(["A1", "B2"]))
    assert tracker.flag(pa.array(["C3", "B2", "C3"])).tolist() == [False, True, True]


def test_the_table_grows_and_is_reserved_without_losing_an_id():
    """Enough ids to double the hash table several times (and a reserved one), with repeats near and far."""
    batches = [[f"K{i}" for i in range(k * 7_000, k * 7_000 + 9_000)] for k in range(4)] + [
        ["K0", "K27999", None]
    ]
    assert _run(batches) == _reference(batches)
    tracker = DuplicateTracker()
    tracker.reserve(40_000)
    assert [tracker.flag(pa.array(b, pa.string())).tolist() for b in batches] == _reference(batches)


def test_the_table_holds_8_bytes_per_slot_at_most_60_percent_full():
    """Memory of the tracker for a million ids: 2**21 slots of 8 bytes (16 MiB), the ids themselves in files."""
    tracker = DuplicateTracker()
    tracker.reserve(1_000_000)
    assert tracker._slots.nbytes == 8 << 21


def test_a_tracker_without_its_files_takes_one_array():
    tracker = DuplicateTracker(spill=False)
    assert tracker.flag(pa.array(["a", "a"])).tolist() == [False, True]
    with pytest.raises(ValueError, match="one array"):
        tracker.flag(pa.array(["a"]))


def test_empty_ids_first_are_compared_with_the_ids_after_them():
    """Ids that are all empty so far store no byte: the next batches still compare with them exactly."""
    batches = [["", None], ["", "a", ""], ["a", "", "b"]]
    assert _run(batches) == _reference(batches)
