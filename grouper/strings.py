"""Arrow string arrays as the numba kernels see them: zero-copy buffers, 64-bit hashes, exact comparison, and
:class:`StringIds`, a growing map of strings to ids (编码缓存) that keeps its hash table between batches.

Used by the duplicate-case tracker (``grouper.batch``) and by the codebook's lookups of raw code spellings
(``Codebook.encode_dx``): each batch's distinct spellings are found in a table built once per run, where an
Arrow ``index_in`` would hash every spelling seen before again, for every batch and column.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa
from numba import njit

__all__ = ["Remembered", "StringIds", "buffers"]


@njit(cache=True, nogil=True)
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


#: The bytes of an array without any (read-only, as Arrow's buffers are: one compiled version of each kernel).
_NO_BYTES = np.empty(0, np.uint8)
_NO_BYTES.flags.writeable = False


def buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, data bytes, valid) of a string array, zero-copy (as ``large_string``: 64-bit offsets)."""
    values = values.cast(pa.large_string())
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else _NO_BYTES
    return offsets, data, values.is_valid().to_numpy(zero_copy_only=False)


@njit(cache=True, inline="always")
def _equal(a, a_start, a_end, b, b_start, b_end):
    """Whether the bytes ``a[a_start:a_end]`` equal ``b[b_start:b_end]``."""
    if a_end - a_start != b_end - b_start:
        return False
    for k in range(a_end - a_start):  # noqa: SIM110 (a loop numba compiles)
        if a[a_start + k] != b[b_start + k]:
            return False
    return True


#: Fibonacci hashing's multiplier: every bit of a string hash counts in the product's top bits.
_MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, nogil=True)
def _find(slots, shift, keys, starts, stored, h, offsets, data, valid, out):
    """``out[i]``: the entry holding string ``i`` (its bytes ``data[offsets[i]:offsets[i + 1]]``), -1 when none
    does or it is null. ``slots``: entry numbers (-1 empty) of a table of ``2**(64 - shift)`` slots; entry ``e``
    has the hash ``keys[e]`` and the bytes ``stored[starts[e]:starts[e + 1]]``."""
    mask = slots.shape[0] - 1
    for i in range(h.shape[0]):
        out[i] = -1
        if not valid[i]:
            continue
        s = np.int64((h[i] * _MIX) >> np.uint64(shift))
        while slots[s] >= 0:
            e = slots[s]
            if keys[e] == h[i] and _equal(stored, starts[e], starts[e + 1], data, offsets[i], offsets[i + 1]):
                out[i] = e
                break
            s = (s + 1) & mask


@njit(cache=True, nogil=True)
def _place(slots, shift, keys, first):
    """Put the entries ``first:`` of ``keys`` into the table (their strings are not in it)."""
    mask = slots.shape[0] - 1
    for e in range(first, keys.shape[0]):
        s = np.int64((keys[e] * _MIX) >> np.uint64(shift))
        while slots[s] >= 0:
            s = (s + 1) & mask
        slots[s] = e


class StringIds:
    """A growing map of distinct strings to int32 ids, kept between batches (an open-addressing table of 64-bit
    hashes, numba; strings compared exactly, so a hash collision never maps one string to another's id).

    Thread-safe: :meth:`ids_of` and :meth:`add` take the map's lock; :attr:`lock` lets a caller look up and add
    in one step. A copy (pickling) holds every entry, with a lock of its own.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._shift = 64 - 10
        self._slots = np.full(1 << 10, -1, np.int32)
        self._keys = np.empty(0, np.uint64)
        self._starts = np.zeros(1, np.int64)
        self._stored = np.empty(0, np.uint8)
        self._ids = np.empty(0, np.int32)

    def __len__(self) -> int:
        return len(self._keys)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, lock=threading.RLock())

    def ids_of(self, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(id of each value, -1 where not in the map or null; which valid values are not in the map)."""
        offsets, data, valid = buffers(values)
        entry = np.empty(len(values), np.int64)
        h = _fnv1a(offsets, data)
        with self.lock:
            table = (self._slots, self._shift, self._keys, self._starts, self._stored)
            _find(*table, h, offsets, data, valid, entry)
            ids = np.where(entry >= 0, self._ids[np.maximum(entry, 0)] if len(self._ids) else -1, -1)
        return ids.astype(np.int32), valid & (entry < 0)

    def add(self, values: pa.Array, ids: np.ndarray) -> None:
        """Map each of ``values`` (not null) to its id; a string already in the map keeps the id it had."""
        offsets, data, _ = buffers(values)
        with self.lock:
            first = len(self._keys)
            self._keys = np.concatenate([self._keys, _fnv1a(offsets, data)])
            self._starts = np.concatenate([self._starts, offsets[1:] - offsets[0] + self._starts[-1]])
            self._stored = np.concatenate([self._stored, data[offsets[0] : offsets[-1]]])
            self._ids = np.concatenate([self._ids, np.asarray(ids, np.int32)])
            if (
                len(self._keys) > len(self._slots) // 2
            ):  # at most half full: a bigger table, every entry again
                size = 1 << int(len(self._keys) * 2).bit_length()
                self._shift, self._slots, first = 64 - size.bit_length() + 1, np.full(size, -1, np.int32), 0
            _place(self._slots, self._shift, self._keys, first)


class Remembered:
    """A costly per-string lookup (``compute``: strings → one result, or one row of results, per string) whose
    results are kept for the run (查找缓存): each batch computes only the strings not seen before. At most
    ``limit`` strings are kept; beyond, new ones are computed batch by batch. Null strings are computed each time.
    Thread-safe."""

    def __init__(self, compute: Callable[[pa.Array], np.ndarray], limit: int = 1 << 20) -> None:
        self._compute, self._limit = compute, limit
        self._rows = StringIds()
        self._results: np.ndarray | None = None

    def __call__(self, strings: pa.Array) -> np.ndarray:
        """The results of ``strings`` (distinct ones: a batch's dictionary), in order."""
        with self._rows.lock:
            row, new = self._rows.ids_of(strings)
            new |= ~strings.is_valid().to_numpy(zero_copy_only=False)
            if not new.any() and self._results is not None:
                return self._results[row]
            at = np.flatnonzero(new)
            fresh = np.asarray(self._compute(strings.take(pa.array(at))))
            kept = self._results if self._results is not None else fresh[:0]
            out = np.empty((len(strings), *fresh.shape[1:]), fresh.dtype)
            out[~new] = kept[row[~new]]
            out[at] = fresh
            keep = at[strings.is_valid().to_numpy(zero_copy_only=False)[at]]
            if len(keep) and len(kept) < self._limit:
                self._rows.add(strings.take(pa.array(keep)), np.arange(len(kept), len(kept) + len(keep)))
                self._results = np.concatenate([kept, out[keep]])
            return out
