"""Code normalisation and encoding (编码清洗): diagnosis and procedure strings → integer ids.

Normalisation is syntactic and the same for every scheme: Unicode NFKC (full-width characters), the dagger sign
``†`` written as ``+`` with no spaces around it, trim,
upper-case letters but keep the 医保版 lower-case ``x`` extension (``i10.X05`` → ``I10.x05``), and restore a
dropped leading zero of a procedure chapter (``3.3101`` → ``03.3101``). Which cleaned string is which code
(dagger/asterisk pairs, 国临版 → 医保版 remaps) is the codebook's job: see ``Codebook.encode_dx``.

Encoding works on the distinct values only: a column is dictionary-encoded once (one hash pass), the few
thousand distinct strings are cleaned and looked up, and the ids are gathered back with ``take``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array

__all__ = ["encode_values", "normalise_codes"]


def normalise_codes(values: pa.Array | pa.ChunkedArray, kind: str = "dx") -> pa.Array:
    """Clean code strings (编码规范化): NFKC, trim, upper case with the 医保版 ``x`` kept lower-case.

    Parameters
    ----------
    values : string array, or list<string> array (cleaned element-wise)
    kind : ``"dx"`` (ICD-10) or ``"proc"`` (ICD-9-CM-3, also restores a dropped leading zero)

    Returns
    -------
    The same shape of array; empty strings become null.

    Examples
    --------
    >>> normalise_codes(pa.array([" k35.800X001 ", "I10.X05", "", None])).to_pylist()
    ['K35.800x001', 'I10.x05', None, None]
    >>> normalise_codes(pa.array(["3.3101", "31.1X00X005"]), kind="proc").to_pylist()
    ['03.3101', '31.1x00x005']
    """
    values = one_array(values)
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        if values.offset:  # a slice: rebase its offsets to 0 first
            values = pa.concat_arrays([values])
        flat = _normalise_strings(values.values, kind)
        return type(values).from_arrays(values.offsets, flat, mask=values.is_null())
    return _normalise_strings(values, kind)


def _normalise_strings(values: pa.Array, kind: str) -> pa.Array:
    if len(values) > 4096:  # clean each distinct value once: a column repeats a few thousand codes
        encoded = pc.dictionary_encode(values.cast(pa.string()))
        return _clean(encoded.dictionary, kind).take(encoded.indices)
    return _clean(values, kind)


def _clean(values: pa.Array, kind: str) -> pa.Array:
    s = values.cast(pa.string())
    if not pc.all(pc.string_is_ascii(s)).as_py():
        s = pc.replace_substring(pc.utf8_normalize(s, "NFKC"), "†", "+")  # the printed dagger sign
    s = pc.replace_substring_regex(s, r"\s*\+\s*", "+")  # A18.000x047 + M49.0*
    s = pc.utf8_upper(pc.utf8_trim_whitespace(s))
    # the 医保版 extension letter is a lower-case x after a digit or the dot; a leading X is ICD-10 chapter X
    s = pc.replace_substring_regex(s, r"([0-9.])X", r"\1x")
    if kind == "proc":
        s = pc.replace_substring_regex(s, r"^([0-9])\.", r"0\1.")
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def encode_values(values: pa.Array, lookup: Callable[[pa.Array], np.ndarray]) -> np.ndarray:
    """Ids of a string array through ``lookup`` applied to its distinct values only; null → -1.

    ``lookup`` takes a string array of distinct raw values and returns an int32 id per value (-1 unknown).
    A dictionary-encoded array (字典编码) is looked up through its own dictionary.
    """
    if len(values) == 0:
        return np.empty(0, np.int32)
    values = one_array(values)
    if pa.types.is_dictionary(values.type) and pa.types.is_string(values.type.value_type):
        encoded = values
    else:
        encoded = pc.dictionary_encode(values.cast(pa.string()))
    distinct_ids = pa.array(lookup(encoded.dictionary).astype(np.int32))
    ids = pc.take(distinct_ids, encoded.indices)  # (Arrow's: twice as fast as numpy's on int32 indices)
    return (ids.fill_null(-1) if ids.null_count else ids).to_numpy(zero_copy_only=False)
