"""Streaming batch front end: files → canonical batches → a grouping function → result batches, in input order.

Memory is bounded by the batch size, except for the duplicate-case tracker, which keeps a hash table of 8-byte
slots, at most 60 % full (134 MB for 10 million cases; the ids themselves go to temporary files) so that a case_id
repeated anywhere in the run is flagged, never merged — and only an exactly equal id, never a hash collision.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from grouper._chunks import one_array
from grouper.io import BATCH_SIZE
from grouper.io.discharges import HeaderMapping, count_rows, read_discharges_keeping
from grouper.io.formats import Layout, read_ahead
from grouper.io.readable import readable
from grouper.io.values import CodeReading
from grouper.strings import _MIX, _equal, _fnv1a, buffers

__all__ = ["DuplicateTracker", "case_hashes", "duplicated", "group_files"]


def _hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(hash, valid) of a string array; nulls are not hashed."""
    offsets, data, valid = buffers(ids)
    return _fnv1a(offsets, data), valid


_LOW = np.uint64(0xFFFFFFFF)


@njit(cache=True, inline="always")
def _home(tag, bits):
    """Home slot of an entry in a table of ``2**bits`` slots: the top bits of its 32-bit tag."""
    return np.int64(tag >> np.uint64(32 - bits))


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to bring ``array[index]`` into its caches (LLVM's prefetch: for a read, high locality), and go
    on without waiting for it."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        kind = signature.args[0]
        at = cgutils.get_item_pointer(
            context, builder, kind, context.make_array(kind)(context, builder, args[0]), [args[1]]
        )
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(prefetch, [builder.bitcast(at, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


#: Rows ahead whose home slot ``_insert`` prefetches: a table of 10M ids is far larger than the caches, and each
#: lookup would otherwise wait for memory in turn (about a third less time per id).
_AHEAD_ROWS = 16


@njit(cache=True, nogil=True)
def _insert(slots, bits, h, valid, offsets, data, stored, starts, base, flags, new_rows):
    """Look up each valid row's id in the open-addressing table, in row order: a row equal to an id already there
    is flagged, any other is inserted as record ``base + k`` (its row in ``new_rows[k]``). Returns how many were
    inserted.

    A slot (8 bytes, 0 = empty) holds the top 32 bits of the mixed hash (its tag, which also gives its home slot)
    and the record number + 1. A tag equal to the row's is compared exactly: with a record of this array (its
    row) or a stored one (the bytes ``stored[starts[r]:starts[r + 1]]``)."""
    mask = slots.shape[0] - 1
    n_new = 0
    for i in range(h.shape[0]):
        if i + _AHEAD_ROWS < h.shape[0]:
            _prefetch(slots, _home((h[i + _AHEAD_ROWS] * _MIX) >> np.uint64(32), bits))
        if not valid[i]:
            continue
        tag = (h[i] * _MIX) >> np.uint64(32)
        s = _home(tag, bits)
        while True:
            v = slots[s]
            if v == 0:
                slots[s] = (tag << np.uint64(32)) | np.uint64(base + n_new + 1)
                new_rows[n_new] = i
                n_new += 1
                break
            if v >> np.uint64(32) == tag:
                r = np.int64(v & _LOW) - 1
                if r >= base:  # a row of this array
                    k = new_rows[r - base]
                    same = _equal(data, offsets[k], offsets[k + 1], data, offsets[i], offsets[i + 1])
                else:
                    same = _equal(stored, starts[r], starts[r + 1], data, offsets[i], offsets[i + 1])
                if same:
                    flags[i] = True
                    break
            s = (s + 1) & mask
    return n_new


@njit(cache=True, nogil=True)
def _rehash(slots, bits):
    """The table's entries in a table of ``2**bits`` slots."""
    size = np.int64(1) << np.int64(bits)
    new = np.zeros(size, np.uint64)
    for j in range(slots.shape[0]):
        v = slots[j]
        if v == 0:
            continue
        s = _home(v >> np.uint64(32), bits)
        while new[s] != 0:
            s = (s + 1) & (size - 1)
        new[s] = v
    return new


#: Most entries per slot before the table doubles (linear probing stays short below it).
_LOAD = 0.6
#: What ``_insert`` compares with before any id was stored: read-only, as the memory-mapped files are (one
#: compiled version).
_EMPTY = np.empty(0, np.uint8)
_NO_STARTS = np.zeros(1, np.int64)
_EMPTY.flags.writeable = _NO_STARTS.flags.writeable = False


class DuplicateTracker:
    """Flags case_ids already seen in this run (the first occurrence is kept, later ones are duplicates).

    Hash first, then compare exactly: a row is a duplicate only when an earlier row holds the very same id, so two
    distinct ids whose 64-bit hashes collide are both kept. The ids seen are an open-addressing hash table (one
    lookup per row, numba) of 8-byte slots, at most 60 % of them used (about 13 bytes per distinct id); the ids
    themselves and where each starts are appended to two anonymous temporary files, read back (memory-mapped) only
    for the rows whose hash tag was seen before.

    ``seen``: ids that occurred before the rows this tracker will see (a partition of a dataset grouped on a
    cluster starts from the ids of the earlier partitions that it repeats), compared exactly. ``spill=False``: a
    tracker of one array only (its ids are not written out; :func:`duplicated`).
    """

    def __init__(self, seen: pa.Array | pa.ChunkedArray | None = None, *, spill: bool = True) -> None:
        self._bits = 12
        self._slots = np.zeros(1 << self._bits, np.uint64)
        self._count = 0
        self._spill_ids = spill
        self._ids = self._starts = None  # temporary files of the ids' bytes and starts, opened on first use
        self._size = 0
        if seen is not None:
            self.flag(seen if isinstance(seen, pa.Array) else seen.combine_chunks())

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` more ids at once (one rehash for a file whose row count is known, not one per
        doubling)."""
        bits = self._bits
        while self._count + rows > _LOAD * 2**bits:
            bits += 1
        if bits > 32:
            raise ValueError(f"more than {int(_LOAD * 2**32):,} distinct case ids in one run")
        if bits != self._bits:
            self._bits = bits
            self._slots = _rehash(self._slots, bits)

    def flag(self, case_id: pa.Array) -> np.ndarray:
        """Boolean mask of the rows of ``case_id`` that repeat an id seen before (in this array or earlier)."""
        ids = case_id.cast(pa.large_string())
        offsets, data, valid = buffers(ids)
        h = _fnv1a(offsets, data)
        n = len(h)
        flags = np.zeros(n, np.bool_)
        if n == 0:
            return flags
        if not self._spill_ids and self._count:
            raise ValueError("a tracker without its files (spill=False) takes one array")
        self.reserve(n)
        new_rows = np.empty(n, np.int64)
        stored, starts = _EMPTY, _NO_STARTS
        if self._count and self._spill_ids:  # (ids all empty so far: a file of starts, none of bytes)
            self._ids.flush()
            self._starts.flush()
            if self._size:
                stored = np.asarray(np.memmap(self._ids, np.uint8, "r", shape=(self._size,)))
            starts = np.asarray(np.memmap(self._starts, np.int64, "r", shape=(self._count + 1,)))
        slots, base = self._slots, self._count
        added = _insert(slots, self._bits, h, valid, offsets, data, stored, starts, base, flags, new_rows)
        if self._spill_ids and added:  # the new ids' bytes, then where each ends, go to the files
            if self._ids is None:  # lives as long as the tracker
                self._ids = tempfile.TemporaryFile(prefix="drgdip-ids-")  # noqa: SIM115
                self._starts = tempfile.TemporaryFile(prefix="drgdip-id-starts-")  # noqa: SIM115
                self._starts.write(np.zeros(1, np.int64).data)
            new_ids = ids if added == n else ids.take(pa.array(new_rows[:added]))  # (all new: as they are)
            new_offsets, new_data, _ = buffers(new_ids)
            self._ids.seek(self._size)
            self._ids.write(new_data[new_offsets[0] : new_offsets[-1]].data)
            self._starts.seek((self._count + 1) * 8)
            self._starts.write((new_offsets[1:] - new_offsets[0] + self._size).data)
            self._size += int(new_offsets[-1] - new_offsets[0])
        self._count += added
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
    prepare: Callable[[pa.Table], object] | None = None,
    warm: Callable[[], None] | None = None,
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
    take them so). ``prepare``: the first step of ``group``, taken beside the reading (``group`` then receives
    what it returns; :func:`grouper.drg.group.encode_cases` looks the codes up). ``warm``: the grouping's one-time
    set-up (:meth:`grouper.pipeline.Grouping.warm`), done on the calling thread while the first batch is read.

    Three lanes share the cores: a reading thread reads and normalises the next batch, a second thread flags its
    duplicate ids and prepares it, while the calling thread groups this one (the CHS-DRG kernel on both cores:
    :func:`grouper.drg._kernel.group_cases`). Reading is the longest lane, so the preparing is not on it.
    """
    tracker = tracker if tracker is not None else DuplicateTracker()

    def flagged(path: str | os.PathLike) -> Iterator[tuple[int, Future, pa.Table | None, Future]]:
        """The file's batches (rows, the batch or what ``prepare`` makes of it, kept columns) with their duplicate
        masks, both pending, in order."""
        # A second lane beside the reading: each batch's ids flagged, then the batch prepared.
        with ThreadPoolExecutor(1) as lane:
            # Room for the file's ids is made there too, so the reading starts at once, not after the table's
            # allocation and its kernel's loading. (Only a head start: ``flag`` makes room for each batch itself
            # and raises there for a run of too many ids.)
            lane.submit(tracker.reserve, count_rows(path) or 0)
            for table, kept in read_discharges_keeping(
                path,
                keep=keep,
                encoding=encoding,
                batch_size=batch_size,
                columns=columns,
                codes=codes,
                layout=layout,
                on_mapping=on_mapping,
                encoded=encoded,
            ):
                duplicate = lane.submit(tracker.flag, one_array(table.column("case_id")))
                yield table.num_rows, lane.submit(prepare or _as_read, table), kept, duplicate

    def finished(path, rows: int, kept: pa.Table | None, result: pa.Table) -> pa.Table:
        if result.num_rows != rows:
            raise RuntimeError(f"{path}: grouping returned {result.num_rows} rows for {rows}")
        if kept is not None:
            result = readable(result, kept=kept)
        if on_batch is not None:
            on_batch(rows)
        return result

    def set_up() -> None:  # the tracker's and the grouping's compiled kernels loaded, beside the first read
        duplicated(pa.array([""]))
        if warm is not None:
            warm()

    for k, path in enumerate(inputs):
        batches = read_ahead(flagged(path), meanwhile=set_up if k == 0 else None, ahead=_AHEAD)
        for rows, table, kept, duplicate in batches:
            yield finished(path, rows, kept, group(table.result(), duplicate.result()))


#: Batches read ahead of the grouping: the reading goes on while the first run loads its kernels (a third of a
#: second, on one core), and a slow batch in one lane does not stall the others.
_AHEAD = 3


def _as_read(table: pa.Table) -> pa.Table:
    """A batch that ``group`` takes as it is read (no ``prepare``)."""
    return table
