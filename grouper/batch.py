"""Streaming batch front end: files → canonical batches → a grouping function → result batches, in input order.

Memory is bounded by the batch size, except for the duplicate-case tracker, which keeps a hash table of 16-byte
slots, at most 60 % full (268 MB for 10 million cases; the ids themselves go to a temporary file) so that a case_id
repeated anywhere in the run is flagged, never merged — and only an exactly equal id, never a hash collision.
"""

from __future__ import annotations

import collections
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from numba import njit

from grouper.io import BATCH_SIZE
from grouper.io.discharges import HeaderMapping, count_rows, read_discharges_keeping
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


@njit(cache=True, inline="always")
def _equal(a, a_start, a_end, b, b_start, b_end):
    """Whether the bytes ``a[a_start:a_end]`` equal ``b[b_start:b_end]``."""
    if a_end - a_start != b_end - b_start:
        return False
    for k in range(a_end - a_start):  # noqa: SIM110 (a loop numba compiles)
        if a[a_start + k] != b[b_start + k]:
            return False
    return True


@njit(cache=True, inline="always")
def _slot(key, shift):
    """Home slot of a hash in a table of ``2**(64 - shift)`` slots (Fibonacci hashing: every bit of the key
    counts, whatever bits the string hash leaves weak)."""
    return np.int64((key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift))


@njit(cache=True, nogil=True)
def _insert(keys, at, shift, h, valid, offsets, data, stored, flags, new_rows, new_slots):
    """Look up each valid row's id in the open-addressing table (``keys``: hash, 0 = empty slot; ``at``: where
    the id's bytes are, a record start in ``stored`` or ``-(row + 1)`` of this array), in row order: a row equal
    to an id already there is flagged, any other is inserted. Returns how many rows were inserted (their rows
    and slots in ``new_rows`` / ``new_slots``)."""
    mask = keys.shape[0] - 1
    n_new = 0
    for i in range(h.shape[0]):
        if not valid[i]:
            continue
        key = h[i] if h[i] != 0 else np.uint64(1)  # 0 marks an empty slot (1 and 0 are then compared exactly)
        s = _slot(key, shift)
        while True:
            k = keys[s]
            if k == 0:
                keys[s] = key
                at[s] = -(i + 1)
                new_rows[n_new] = i
                new_slots[n_new] = s
                n_new += 1
                break
            if k == key:
                p = at[s]
                if p < 0:  # a row of this array
                    r = -p - 1
                    same = _equal(data, offsets[r], offsets[r + 1], data, offsets[i], offsets[i + 1])
                else:  # a stored record: 4-byte little-endian length, then the bytes
                    length = (
                        np.int64(stored[p])
                        | (np.int64(stored[p + 1]) << 8)
                        | (np.int64(stored[p + 2]) << 16)
                        | (np.int64(stored[p + 3]) << 24)
                    )
                    same = _equal(stored, p + 4, p + 4 + length, data, offsets[i], offsets[i + 1])
                if same:
                    flags[i] = True
                    break
            s = (s + 1) & mask
    return n_new


@njit(cache=True, nogil=True)
def _rehash(keys, at, shift):
    """The table's entries in a table of ``2**(64 - shift)`` slots."""
    size = np.int64(1) << np.int64(64 - shift)
    new_keys = np.zeros(size, np.uint64)
    new_at = np.zeros(size, np.int64)
    for j in range(keys.shape[0]):
        key = keys[j]
        if key == 0:
            continue
        s = _slot(key, shift)
        while new_keys[s] != 0:
            s = (s + 1) & (size - 1)
        new_keys[s] = key
        new_at[s] = at[j]
    return new_keys, new_at


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
        for k in range(length):  # a loop: a slice assignment costs seconds of compiling
            out[p + 4 + k] = data[offsets[r] + k]
        p += 4 + length
    return out, starts


#: Most entries per slot before the table doubles (linear probing stays short below it).
_LOAD = 0.6
_EMPTY = np.empty(0, np.uint8)


class DuplicateTracker:
    """Flags case_ids already seen in this run (the first occurrence is kept, later ones are duplicates).

    Hash first, then compare exactly: a row is a duplicate only when an earlier row holds the very same id, so two
    distinct ids whose 64-bit hashes collide are both kept. The ids seen are an open-addressing hash table (one
    lookup per row, numba): 16 bytes per slot, at most 60 % of the slots used (about 27 bytes per distinct id),
    the ids themselves in an anonymous temporary file, read back (memory-mapped) only for the rows whose hash was
    seen before.

    ``seen``: ids that occurred before the rows this tracker will see (a partition of a dataset grouped on a
    cluster starts from the ids of the earlier partitions that it repeats), compared exactly. ``spill=False``: a tracker of one array only (its
    ids are not written out; :func:`duplicated`).
    """

    def __init__(self, seen: pa.Array | pa.ChunkedArray | None = None, *, spill: bool = True) -> None:
        self._shift = 64 - 12
        self._keys = np.zeros(1 << 12, np.uint64)
        self._at = np.zeros(1 << 12, np.int64)
        self._count = 0
        self._spill_ids = spill
        self._spill = None  # temporary file of length-prefixed ids, opened on first use
        self._size = 0
        if seen is not None:
            self.flag(seen if isinstance(seen, pa.Array) else seen.combine_chunks())

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` more ids at once (one rehash for a file whose row count is known, not one per
        doubling)."""
        shift = self._shift
        while self._count + rows > _LOAD * 2 ** (64 - shift):
            shift -= 1
        if shift != self._shift:
            self._shift = shift
            self._keys, self._at = _rehash(self._keys, self._at, shift)

    def flag(self, case_id: pa.Array) -> np.ndarray:
        """Boolean mask of the rows of ``case_id`` that repeat an id seen before (in this array or earlier)."""
        ids = case_id.cast(pa.large_string())
        offsets, data, valid = _buffers(ids)
        h = _fnv1a(offsets, data)
        n = len(h)
        flags = np.zeros(n, np.bool_)
        if n == 0:
            return flags
        self.reserve(n)
        new_rows, new_slots = np.empty(n, np.int64), np.empty(n, np.int64)
        stored = _EMPTY
        if self._size:
            self._spill.flush()
            stored = np.asarray(np.memmap(self._spill, np.uint8, "r", shape=(self._size,)))
        added = _insert(
            self._keys, self._at, self._shift, h, valid, offsets, data, stored, flags, new_rows, new_slots
        )
        new_rows, new_slots = new_rows[:added], new_slots[:added]
        self._count += added
        if self._spill_ids and added:  # the new ids go to the file; their slots point at their records
            if self._spill is None:
                self._spill = tempfile.TemporaryFile(prefix="drgdip-ids-")  # noqa: SIM115 (lives as long as the tracker)
            buf, starts = _records(offsets, data, new_rows)
            self._spill.seek(self._size)
            self._spill.write(buf.data)
            self._at[new_slots] = starts + self._size
            self._size += len(buf)
        return flags


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
    return DuplicateTracker(spill=False).flag(case_id)


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
    encoded: bool = False,
    workers: int = 1,
) -> Iterator[pa.Table]:
    """Group every case of ``inputs`` in order; yields one result table per input batch.

    ``group(table, duplicate)`` receives a canonical batch and its duplicate-case mask and returns one result row
    per input row. ``columns``: the canonical columns ``group`` reads (the others are not parsed).
    ``on_batch(rows)`` is called after each batch (progress bars). ``tracker``: the duplicate tracker to start
    from (a new one when None; grouper.distributed seeds one per partition with the ids of earlier partitions).
    ``codes``: how the reader keeps codes (``"clean"`` or ``"verbatim"``, :func:`grouper.io.read_discharges`).
    ``keep``: input headers carried into the results after ``case_id``; ``layout`` and ``on_mapping``: as
    :func:`grouper.io.read_discharges` takes them. ``encoded``: a Parquet file's code columns reach ``group``
    dictionary-encoded (:func:`grouper.io.discharges.read_discharges_keeping`; ``group_drg`` and ``group_dip``
    take them so). ``workers``: batches grouped side by side, on as many threads (``group`` must then be
    thread-safe, as ``group_drg`` and ``group_dip`` are); results still come in input order.
    """
    tracker = tracker if tracker is not None else DuplicateTracker()

    def flagged(path: str | os.PathLike) -> Iterator[tuple[pa.Table, pa.Table | None, np.ndarray]]:
        """The file's batches with their duplicate masks, in order."""
        for table, kept in batches(path):
            yield table, kept, tracker.flag(table.column("case_id").combine_chunks())

    def batches(path: str | os.PathLike) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        tracker.reserve(count_rows(path) or 0)
        yield from read_discharges_keeping(
            path,
            keep=keep,
            encoding=encoding,
            batch_size=batch_size,
            columns=columns,
            codes=codes,
            layout=layout,
            on_mapping=on_mapping,
            encoded=encoded,
        )

    def finished(path, rows: int, kept: pa.Table | None, result: pa.Table) -> pa.Table:
        if result.num_rows != rows:
            raise RuntimeError(f"{path}: grouping returned {result.num_rows} rows for {rows}")
        if kept is not None:
            result = readable(result, kept=kept)
        if on_batch is not None:
            on_batch(rows)
        return result

    if workers <= 1:  # duplicates are found on the reading thread, while the last batch groups
        for path in inputs:
            for table, kept, duplicate in read_ahead(flagged(path)):
                yield finished(path, table.num_rows, kept, group(table, duplicate))
        return
    # reading, finding duplicates (this thread, in order) and grouping on threads of their own
    with ThreadPoolExecutor(workers) as pool:
        for path in inputs:
            pending: collections.deque = collections.deque()  # batches grouping side by side, in input order
            for table, kept in read_ahead(batches(path)):
                duplicate = tracker.flag(table.column("case_id").combine_chunks())
                pending.append((table.num_rows, kept, pool.submit(group, table, duplicate)))
                if len(pending) == workers:
                    rows, kept_, result = pending.popleft()
                    yield finished(path, rows, kept_, result.result())
            while pending:
                rows, kept_, result = pending.popleft()
                yield finished(path, rows, kept_, result.result())
