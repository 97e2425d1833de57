"""Column access shared by the payment modules: dictionary-aware, one pass over the cases each."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from grouper._chunks import one_array


def column(table: pa.Table, name: str) -> pa.Array:
    """A column as one array (a column of one chunk without a copy)."""
    return one_array(table.column(name))


def strings(table: pa.Table, name: str) -> pa.Array:
    """A string column as one array (dictionary<string> kept as is); all-null when the column is absent."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = column(table, name)
    if pa.types.is_dictionary(col.type):
        return (
            col
            if pa.types.is_string(col.type.value_type)
            else col.cast(pa.dictionary(pa.int32(), pa.string()))
        )
    return col if pa.types.is_string(col.type) else pc.cast(col, pa.string())


def numbers(table: pa.Table, name: str, fill: float = np.nan) -> np.ndarray:
    """A numeric column as float64 (read-only, zero-copy when possible); nulls, NaN and a missing column → ``fill``."""
    if name not in table.column_names:
        return np.full(table.num_rows, fill, dtype=np.float64)
    col = column(table, name)
    if col.type != pa.float64():
        col = pc.cast(col, pa.float64())
    if col.null_count:
        col = pc.fill_null(col, fill)
    out = col.to_numpy(zero_copy_only=False)
    if fill == fill and np.isnan(out).any():  # NaN in the data counts as missing too
        out = np.where(np.isnan(out), fill, out)
    return out


def encoded(arr: pa.Array) -> pa.DictionaryArray:
    """A string column dictionary-encoded (kept as it is when it is already), so that the per-value work of
    :func:`isin`, :func:`lookup` and :func:`prefix_in` runs on its distinct values only."""
    return arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)


def _by_value(arr: pa.Array, fn: Callable[[pa.Array], np.ndarray], null) -> np.ndarray:
    """Apply ``fn`` (values → numpy) to the dictionary only, then spread by the indices; nulls → ``null``."""
    if arr.null_count == len(arr):
        return np.full(len(arr), null)
    if pa.types.is_dictionary(arr.type):
        per_value = np.append(fn(arr.dictionary), null)
        idx = arr.indices if arr.null_count == 0 else pc.fill_null(arr.indices, len(arr.dictionary))
        return spread(per_value, idx.to_numpy(zero_copy_only=False))
    out = fn(arr)
    if arr.null_count:
        out = np.where(arr.is_null().to_numpy(zero_copy_only=False), null, out)
    return out


@njit(cache=True, nogil=True)
def spread(per_value, indices):
    """``per_value[indices]`` for indices of any integer width (numpy would first copy them to intp)."""
    out = np.empty(indices.shape[0], per_value.dtype)
    for i in range(indices.shape[0]):
        out[i] = per_value[indices[i]]
    return out


def lookup(keys: pa.Array, values: pa.Array, then: np.ndarray | None = None) -> np.ndarray:
    """Index of each key in ``values`` (int64, −1 when absent or null); with ``then``, ``then[index]`` (−1 kept),
    taken on the distinct keys."""
    values = pc.cast(values, pa.string())

    def fn(a: pa.Array) -> np.ndarray:
        at = (
            pc.fill_null(pc.index_in(a, value_set=values), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        )
        return at if then is None else np.where(at >= 0, np.asarray(then, np.int64)[at], -1)

    return _by_value(keys, fn, -1).astype(np.int64, copy=False)


def isin(arr: pa.Array, values: Sequence[str]) -> np.ndarray:
    """Bool mask: the value is one of ``values`` (null → False)."""
    vs = pa.array(list(values), pa.string())
    return _by_value(
        arr, lambda a: pc.fill_null(pc.is_in(a, value_set=vs), False).to_numpy(zero_copy_only=False), False
    ).astype(bool, copy=False)


def prefix_in(codes: pa.Array, prefixes: Sequence[str]) -> np.ndarray:
    """Bool mask: the code starts with one of ``prefixes`` (one ``is_in`` per distinct prefix length).

    Examples
    --------
    >>> prefix_in(pa.array(["J35.300", "K80.5", None]), ["J35.3"]).tolist()
    [True, False, False]
    """
    by_len: dict[int, list[str]] = {}
    for p in prefixes:
        by_len.setdefault(len(p), []).append(p)

    def fn(a: pa.Array) -> np.ndarray:
        out = np.zeros(len(a), dtype=bool)
        for n, ps in by_len.items():
            head = pc.utf8_slice_codeunits(a, 0, n)
            out |= pc.fill_null(pc.is_in(head, value_set=pa.array(ps, pa.string())), False).to_numpy(
                zero_copy_only=False
            )
        return out

    if not prefixes:
        return np.zeros(len(codes), dtype=bool)
    return _by_value(codes, fn, False).astype(bool)


def to_str_numpy(arr: pa.Array) -> np.ndarray:
    """Strings as a numpy array of str ("" for null), for sorting and grouping small selections."""
    return np.asarray(pc.fill_null(pc.cast(arr, pa.string()), "").to_numpy(zero_copy_only=False)).astype(str)
