"""Streaming batch front end: files → canonical batches → a grouping function → result batches, in input order.

Memory is bounded by the batch size, except for the duplicate-case tracker, which keeps one 64-bit hash per case
seen (80 MB for 10 million cases) so that a case_id repeated anywhere in the run is flagged, never merged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
from numba import njit

from grouper.io import BATCH_SIZE, read_discharges
from grouper.io.formats import read_ahead

__all__ = ["DuplicateTracker", "case_hashes", "duplicated", "group_files"]


@njit(cache=True)
def _fnv1a(offsets, data):
    """64-bit FNV-1a hash of each string of an Arrow string array (offsets into the data bytes)."""
    n = offsets.shape[0] - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        h = np.uint64(14695981039346656037)
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[k])) * np.uint64(1099511628211)
        out[i] = h
    return out


def _hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(hash, valid) of a string array; nulls are not hashed."""
    ids = ids.cast(pa.large_string())
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    valid = ids.is_valid().to_numpy(zero_copy_only=False)
    return _fnv1a(offsets, data), valid


class DuplicateTracker:
    """Flags case_ids already seen in this run (the first occurrence is kept, later ones are duplicates).

    ``seen``: the :func:`case_hashes` of ids that occurred before the rows this tracker will see (a partition of
    a dataset grouped on a cluster starts from the ids of the earlier partitions that it repeats).
    """

    def __init__(self, seen: np.ndarray | None = None) -> None:
        self._runs: list[np.ndarray] = []  # sorted hash runs, merged when two neighbours have similar sizes
        if seen is not None and len(seen):  # hashes of ids met before this tracker's rows (other partitions)
            self._add(_distinct(np.asarray(seen, np.uint64)))

    def flag(self, case_id: pa.Array) -> np.ndarray:
        """Boolean mask of the rows of ``case_id`` that repeat an id seen before (in this array or earlier)."""
        h_all, valid = _hashes(case_id)
        rows = np.flatnonzero(valid)  # a null id is never a duplicate, whatever bytes its slot hides
        flags = np.zeros(len(h_all), np.bool_)
        flags[rows] = self._flag_hashes(h_all[rows])
        return flags

    def _flag_hashes(self, h: np.ndarray) -> np.ndarray:
        if len(h) == 0:
            return np.zeros(0, np.bool_)
        order = np.argsort(h)
        s = h[order]
        dup = np.zeros(len(h), np.bool_)
        repeat = s[1:] == s[:-1]
        if repeat.any():  # within the array: every row of an equal run but the earliest
            starts = np.flatnonzero(np.r_[True, ~repeat])
            dup[order] = True
            dup[np.minimum.reduceat(order, starts)] = False
        seen = np.zeros(len(h), np.bool_)
        for run in self._runs:
            pos = np.minimum(np.searchsorted(run, h), len(run) - 1)
            seen |= run[pos] == h
        new = s[np.r_[True, ~repeat] & ~seen[order]]  # sorted, distinct, unseen
        if len(new):
            self._add(new)
        return dup | seen

    def _add(self, run: np.ndarray) -> None:
        self._runs.append(run)  # runs are disjoint and sorted: a stable sort of two runs is a merge
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            merged = np.concatenate([self._runs.pop(-2), self._runs.pop()])
            merged.sort(kind="stable")  # in place: no third copy while merging
            self._runs.append(merged)


def case_hashes(case_id: pa.Array) -> np.ndarray:
    """The distinct 64-bit hashes of the non-null ids of ``case_id``, sorted (what the tracker compares)."""
    h, valid = _hashes(case_id)
    return _distinct(h[valid])


def _distinct(h: np.ndarray) -> np.ndarray:
    """The distinct values of a hash array, sorted (a sort and a mask: np.unique is many times slower here)."""
    h = np.sort(h)
    return h[np.r_[True, h[1:] != h[:-1]]] if len(h) else h


def duplicated(case_id: pa.Array) -> np.ndarray:
    """Rows whose case_id occurred earlier in the same array (the first occurrence is not flagged; nulls never)."""
    return DuplicateTracker().flag(case_id)


def group_files(
    inputs: Iterable[str | os.PathLike],
    group: Callable[[pa.Table, np.ndarray], pa.Table],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    columns: Iterable[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    tracker: DuplicateTracker | None = None,
) -> Iterator[pa.Table]:
    """Group every case of ``inputs`` in order; yields one result table per input batch.

    ``group(table, duplicate)`` receives a canonical batch and its duplicate-case mask and returns one result row
    per input row. ``columns``: the canonical columns ``group`` reads (the others are not parsed).
    ``on_batch(rows)`` is called after each batch (progress bars). ``tracker``: the duplicate tracker to start
    from (a new one when None; grouper.distributed seeds one per partition with the ids of earlier partitions).
    """
    tracker = tracker if tracker is not None else DuplicateTracker()
    for path in inputs:
        batches = read_discharges(path, encoding=encoding, batch_size=batch_size, columns=columns)
        for table in read_ahead(batches):
            result = group(table, tracker.flag(table.column("case_id").combine_chunks()))
            if result.num_rows != table.num_rows:
                raise RuntimeError(f"{path}: grouping returned {result.num_rows} rows for {table.num_rows}")
            if on_batch is not None:
                on_batch(table.num_rows)
            yield result
