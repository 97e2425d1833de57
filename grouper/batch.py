"""Streaming batch front end: files → canonical batches → a grouping function → result batches, in input order.

Memory is bounded by the batch size, except for the duplicate-case tracker, which keeps 16 bytes per case seen
(160 MB for 10 million cases; the ids themselves go to a temporary file) so that a case_id repeated anywhere in
the run is flagged, never merged — and only an exactly equal id, never a hash collision.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from grouper.io import BATCH_SIZE
from grouper.io.discharges import HeaderMapping, read_discharges_keeping
from grouper.io.formats import Layout, read_ahead
from grouper.io.readable import readable
from grouper.io.values import CodeReading

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


def _buffers(ids: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, data bytes, valid) of a string array, zero-copy."""
    ids = ids.cast(pa.large_string())
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    return offsets, data, ids.is_valid().to_numpy(zero_copy_only=False)


def _hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(hash, valid) of a string array; nulls are not hashed."""
    offsets, data, valid = _buffers(ids)
    return _fnv1a(offsets, data), valid


@njit(cache=True)
def _same_bytes(a, a_start, b, b_start, b_end):
    """Whether each id ``b[b_start[i]:b_end[i]]`` equals the length-prefixed id stored in ``a`` at ``a_start[i]``."""
    n = a_start.shape[0]
    out = np.empty(n, np.bool_)
    for i in range(n):
        p = a_start[i]
        length = (
            np.int64(a[p])
            | (np.int64(a[p + 1]) << 8)
            | (np.int64(a[p + 2]) << 16)
            | (np.int64(a[p + 3]) << 24)
        )
        same = length == b_end[i] - b_start[i]
        k = 0
        while same and k < length:
            same = a[p + 4 + k] == b[b_start[i] + k]
            k += 1
        out[i] = same
    return out


@njit(cache=True)
def _records(offsets, data, rows):
    """The ids of ``rows`` as length-prefixed records (4-byte little-endian length, then the bytes), and where
    each record starts in the returned buffer."""
    total = 0
    for r in rows:
        total += 4 + offsets[r + 1] - offsets[r]
    out = np.empty(total, np.uint8)
    starts = np.empty(rows.shape[0], np.int64)
    p = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        length = offsets[r + 1] - offsets[r]
        starts[i] = p
        for b in range(4):
            out[p + b] = (length >> (8 * b)) & 0xFF
        out[p + 4 : p + 4 + length] = data[offsets[r] : offsets[r + 1]]
        p += 4 + length
    return out, starts


class DuplicateTracker:
    """Flags case_ids already seen in this run (the first occurrence is kept, later ones are duplicates).

    Hash first, then compare exactly: a row is a duplicate only when an earlier row holds the very same id, so two
    distinct ids whose 64-bit hashes collide are both kept. Memory: 16 bytes per distinct id (its hash and where
    its bytes are), the ids themselves in an anonymous temporary file, read back only for the rows whose hash was
    seen before.

    ``seen``: ids that occurred before the rows this tracker will see (a partition of a dataset grouped on a
    cluster starts from the ids of the earlier partitions that it repeats), compared exactly.
    """

    def __init__(self, seen: pa.Array | pa.ChunkedArray | None = None) -> None:
        # sorted (hash, record start) runs, merged when two neighbours have similar sizes
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._spill = None  # temporary file of length-prefixed ids, opened on first use
        self._size = 0
        if seen is not None:
            self.flag(seen if isinstance(seen, pa.Array) else seen.combine_chunks())

    def flag(self, case_id: pa.Array, *, remember: bool = True) -> np.ndarray:
        """Boolean mask of the rows of ``case_id`` that repeat an id seen before (in this array or earlier);
        ``remember=False`` leaves this array's ids out of the later calls (one array on its own)."""
        ids = case_id.cast(pa.large_string())
        offsets, data, valid = _buffers(ids)
        h = _fnv1a(offsets, data)
        rows = np.flatnonzero(valid)  # a null id is never a duplicate, whatever bytes its slot hides
        flags = np.zeros(len(h), np.bool_)
        if len(rows) == 0:
            return flags
        # 1. within the array: rows sharing a hash are compared exactly (dictionary codes of their ids)
        order = rows[np.argsort(h[rows])]  # rows by hash
        same = h[order][1:] == h[order][:-1]
        if same.any():
            cand = np.unique(order[np.r_[same, False] | np.r_[False, same]])  # ascending rows
            codes = pc.dictionary_encode(ids.take(pa.array(cand))).indices.to_numpy(zero_copy_only=False)
            _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
            flags[cand] = cand[first[inverse]] != cand  # not the first row holding that very id
        # 2. across arrays: the first row of each id new to this array, against the ids seen before (queries
        # sorted by hash, so that the binary searches walk the runs in order)
        firsts = order[~flags[order]]
        hf = h[firsts]
        seen = np.zeros(len(firsts), np.bool_)
        for run_h, run_at in self._runs:
            at = np.searchsorted(run_h, hf)
            todo = np.flatnonzero((run_h[np.minimum(at, len(run_h) - 1)] == hf) & ~seen)
            while todo.size:  # a hash seen before: compare the ids, then the next id of the same hash
                seen[todo] = self._same(run_at[at[todo]], firsts[todo], offsets, data)
                at[todo] += 1
                todo = todo[~seen[todo] & (at[todo] < len(run_h))]
                todo = todo[run_h[at[todo]] == hf[todo]]
        flags[firsts[seen]] = True
        new = firsts[~seen]
        if len(new) and remember:
            self._add(h[new], new, offsets, data)
        return flags

    def _same(self, at: np.ndarray, rows: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
        self._spill.flush()
        stored = np.memmap(self._spill, np.uint8, "r", shape=(self._size,))
        return _same_bytes(stored, at, data, offsets[rows], offsets[rows + 1])

    def _add(self, h: np.ndarray, rows: np.ndarray, offsets: np.ndarray, data: np.ndarray) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="drgdip-ids-")  # noqa: SIM115 (lives as long as the tracker)
        by_row = np.argsort(rows)  # the bytes written in row order (sequential reads), located in hash order
        buf, starts = _records(offsets, data, rows[by_row])
        starts[by_row] = starts.copy()
        self._spill.seek(self._size)
        self._spill.write(buf.tobytes())
        at = starts + self._size
        self._size += len(buf)
        self._runs.append((h, at))  # the rows come sorted by hash
        while len(self._runs) > 1 and len(self._runs[-2][0]) <= 2 * len(self._runs[-1][0]):
            (h1, a1), (h2, a2) = self._runs.pop(-2), self._runs.pop()
            into = np.searchsorted(h1, h2, "right") + np.arange(len(h2))  # where h2's entries go: a merge
            rest = np.ones(len(h1) + len(h2), np.bool_)
            rest[into] = False
            mh, ma = np.empty(len(rest), h1.dtype), np.empty(len(rest), a1.dtype)
            mh[into], ma[into], mh[rest], ma[rest] = h2, a2, h1, a1
            self._runs.append((mh, ma))


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
    return DuplicateTracker().flag(case_id, remember=False)


def group_files(
    inputs: Iterable[str | os.PathLike],
    group: Callable[[pa.Table, np.ndarray], pa.Table],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    columns: Iterable[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    tracker: DuplicateTracker | None = None,
    codes: CodeReading = "clean",
    keep: Sequence[str] = (),
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
) -> Iterator[pa.Table]:
    """Group every case of ``inputs`` in order; yields one result table per input batch.

    ``group(table, duplicate)`` receives a canonical batch and its duplicate-case mask and returns one result row
    per input row. ``columns``: the canonical columns ``group`` reads (the others are not parsed).
    ``on_batch(rows)`` is called after each batch (progress bars). ``tracker``: the duplicate tracker to start
    from (a new one when None; grouper.distributed seeds one per partition with the ids of earlier partitions).
    ``codes``: how the reader keeps codes (``"clean"`` or ``"verbatim"``, :func:`grouper.io.read_discharges`).
    ``keep``: input headers carried into the results after ``case_id``; ``layout`` and ``on_mapping``: as
    :func:`grouper.io.read_discharges` takes them.
    """
    tracker = tracker if tracker is not None else DuplicateTracker()
    for path in inputs:
        batches = read_discharges_keeping(
            path,
            keep=keep,
            encoding=encoding,
            batch_size=batch_size,
            columns=columns,
            codes=codes,
            layout=layout,
            on_mapping=on_mapping,
        )
        for table, kept in read_ahead(batches):
            result = group(table, tracker.flag(table.column("case_id").combine_chunks()))
            if result.num_rows != table.num_rows:
                raise RuntimeError(f"{path}: grouping returned {result.num_rows} rows for {table.num_rows}")
            if kept is not None:
                result = readable(result, kept=kept)
            if on_batch is not None:
                on_batch(table.num_rows)
            yield result
