"""Values onto the canonical types: trimmed text, value maps as data (``codebooks/records/value_maps.csv``:
``男``→1, ``310``→employee, ``三级甲等``→3), code lists, whole numbers, numbers, durations and dates.

Every function is vectorised (Arrow compute) and takes text or typed columns alike, so a Parquet file, an Excel
sheet, a CSV file and an in-memory table get the same values.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.errors import SettingsError
from grouper.resources import text_columns

#: How codes are read (编码读取): ``clean`` trims them (and the groupers fold case and remap 国临版 codes);
#: ``verbatim`` keeps them exactly as written, as the CHS-DRG reference groupers match them.
CodeReading = Literal["clean", "verbatim"]

#: What a number column (cost, fund paid, hours, fees) holds where its text is present but not a number (``abc``,
#: ``12元``): NaN, apart from null (empty). Whole-number columns hold -1 there, which the grouper makes a status.
UNREADABLE = float("nan")

__all__ = [
    "UNREADABLE",
    "CodeReading",
    "as_written",
    "code_list",
    "code_reading",
    "convert",
    "date_list",
    "dates",
    "integers",
    "map_values",
    "numbers",
    "strings",
    "unreadable",
]

#: A number as exports write it: ``1234.5``, ``.5``, ``1e15``, ``1.2E+11`` (text trimmed, digit groups removed first).
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
#: Digit groups of three in an amount (``1,234,567.89``, Excel's 千位分隔符): read without the commas; ``1,5`` is not a
#: number.
_GROUPED = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
#: ``inf``, ``-Infinity``: read as infinite, so that the plausibility rules stop it as a Parquet ``inf`` is stopped.
_INFINITE = r"(?i)^[+-]?inf(inity)?$"
#: ``nan``, ``NaN``, ``NA``, ``null``, ``None``, ``-`` in an amount: empty, as a Parquet NaN or null is.
_EMPTY = r"(?i)^([+-]?nan|na|n/a|null|none|-)$"
#: Separators between codes in a flat list column: `|` (canonical), and the , ; ， ； 、 and line breaks that
#: hand-made exports use. No ICD code contains any of them.
_LIST_SEPARATORS = r"[|,;，；、\r\n]"
#: Bytes that may begin a separator other than ``|`` in UTF-8 text: , ; CR LF, and the lead bytes of ，；、.
_OTHER_SEPARATOR_BYTES = np.array(sorted({*b",;\r\n", *(s.encode()[0] for s in "，；、")}), np.uint8)


@cache
def _value_maps() -> dict[str, tuple[pa.Array, pa.Array]]:
    """Column → (spelling keys, canonical values); keys folded as :func:`_fold` folds the data."""
    table = text_columns("records", "value_maps.csv")
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for col, value, canonical in zip(table["column"], table["value"], table["canonical"], strict=True):
        spellings, values = groups.setdefault(col, ([], []))
        spellings.append(value)
        values.append(canonical)
    return {
        col: (_fold(pa.array(s, pa.string())), pa.array(v, pa.string())) for col, (s, v) in groups.items()
    }


@cache
def _maps_numbers(name: str) -> bool:
    """Whether column ``name``'s value map respells a number (a key that reads as one)."""
    keys = _value_maps().get(name, (pa.array([], pa.string()),))[0]
    return pc.any(pc.match_substring_regex(keys, _NUMBER)).as_py() or False


def _fold(text: pa.Array) -> pa.Array:
    """Comparison key of a spelling: NFKC (full-width digits), no white space, lower case."""
    if not pc.all(pc.string_is_ascii(text)).as_py():
        text = pc.utf8_normalize(text, "NFKC")
    return pc.utf8_lower(pc.replace_substring_regex(text, r"\s+", ""))


def map_values(name: str, arr: pa.Array) -> pa.Array:
    """Trimmed text of ``arr`` with the spellings of column ``name`` replaced by their canonical values
    (``value_maps.csv``); other values stay as written."""
    text = strings(arr)
    if name not in _value_maps():
        return text
    keys, values = _value_maps()[name]
    idx = pc.index_in(_fold(text), value_set=keys)
    return pc.if_else(pc.is_valid(idx), pc.take(values, idx), text)


def as_written(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A text column exactly as written (no trimming, no value map); null for a numeric column, whose values
    are numbers rather than spellings."""
    arr = one_array(column)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    if pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type):
        return arr.cast(pa.string())
    return pa.nulls(len(arr), pa.string())


def strings(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = one_array(arr)
    if _trimmed(arr):
        return arr
    s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _trimmed(arr: pa.Array) -> bool:
    """Whether :func:`strings` would give ``arr`` back as it is: a string array without nulls whose every value
    starts and ends with a printable ASCII character other than the space (so nothing to trim, nothing empty);
    tested on the first and last bytes of the values, without reading the text."""
    if arr.type != pa.string() or arr.null_count or not len(arr):
        return False
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1, arr.offset * 4)
    if (offsets[1:] <= offsets[:-1]).any():
        return False
    data = np.frombuffer(arr.buffers()[2], np.uint8)
    ends = np.concatenate((data[offsets[:-1]], data[offsets[1:] - 1]))
    return bool(((ends > 0x20) & (ends < 0x7F)).all())


def code_reading(codes: str) -> CodeReading:
    """``codes`` checked: ``"clean"`` or ``"verbatim"``."""
    if codes not in ("clean", "verbatim"):
        raise SettingsError(f"codes must be 'clean' or 'verbatim', not {codes!r}", key="codes")
    return codes


def code_list(parts: list[pa.ChunkedArray], verbatim: bool = False, encoded: bool = False) -> pa.Array:
    """One list<string> column from list columns or ``|``-separated text; numbered columns are joined in order.
    Items are trimmed unless ``verbatim``; empty items are dropped. ``encoded``: the items of text columns as
    ``dictionary<string>`` (字典编码: each distinct item trimmed once), the same codes."""
    arrays = [one_array(p) for p in parts]
    if len(arrays) == 1 and (pa.types.is_list(arrays[0].type) or pa.types.is_large_list(arrays[0].type)):
        return arrays[0].cast(pa.list_(pa.string())).fill_null(pa.scalar([], pa.list_(pa.string())))
    texts = [
        pc.binary_join(a.cast(pa.list_(pa.string())), "|")
        if pa.types.is_list(a.type)
        else a.cast(pa.string())
        for a in arrays
    ]
    text = pc.binary_join_element_wise(*(t.fill_null("") for t in texts), "|") if len(texts) > 1 else texts[0]
    split = _split(text.fill_null(""))
    flat = pc.list_flatten(split)
    if encoded:  # trimmed and tested for emptiness per distinct item, kept as indices
        items = pc.dictionary_encode(flat)
        words = items.dictionary if verbatim else pc.utf8_trim_whitespace(items.dictionary)
        indices = items.indices.to_numpy(zero_copy_only=False)
        keep = pc.not_equal(words, "").to_numpy(zero_copy_only=False)[indices]
    else:
        if not verbatim:
            flat = pc.utf8_trim_whitespace(flat)
        keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    owner = pc.list_parent_indices(split).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(text) + 1, np.int32)
    np.cumsum(np.bincount(owner[keep], minlength=len(text)), out=offsets[1:])
    if encoded:
        values = pa.DictionaryArray.from_arrays(pa.array(indices[keep], pa.int32()), words)
    else:
        values = pc.filter(flat, pa.array(keep))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _split(text: pa.Array) -> pa.Array:
    """Text split at the list separators: at ``|`` alone (a plain split, 4× faster than the pattern) when no byte
    of the text can start another separator."""
    text = text.cast(pa.string())
    if _other_separators(text):
        return pc.split_pattern_regex(text, _LIST_SEPARATORS)
    return pc.split_pattern(text, "|")


def _other_separators(text: pa.Array) -> bool:
    """Whether a byte of ``text`` (a string array) may begin a list separator other than ``|``: one comparison
    per separator byte, about 3× faster than a table lookup of every byte."""
    data = text.buffers()[2]
    if data is None:
        return False
    offsets = np.frombuffer(text.buffers()[1], np.int32)[text.offset : text.offset + len(text) + 1]
    written = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return any(np.any(written == b) for b in _OTHER_SEPARATOR_BYTES)


def date_list(parts: list[pa.ChunkedArray]) -> pa.Array:
    """One list<date32> column (procedure dates, 手术操作日期) from a list column, ``|``-separated text or numbered
    columns. Unlike :func:`code_list`, an empty or unreadable entry stays in place as null: the k-th date belongs
    to the k-th procedure."""
    arrays = [one_array(p) for p in parts]
    if len(arrays) == 1 and (pa.types.is_list(arrays[0].type) or pa.types.is_large_list(arrays[0].type)):
        lists = arrays[0].cast(pa.list_(arrays[0].type.value_type))
        if lists.offset:
            lists = pa.concat_arrays([lists])
        return pa.ListArray.from_arrays(lists.offsets, dates(lists.values), mask=lists.is_null())
    texts = [
        pc.binary_join(a.cast(pa.list_(pa.string())), "|")
        if pa.types.is_list(a.type)
        else (dates(a).cast(pa.string()) if pa.types.is_temporal(a.type) else a.cast(pa.string()))
        for a in arrays
    ]
    text = pc.binary_join_element_wise(*(t.fill_null("") for t in texts), "|") if len(texts) > 1 else texts[0]
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(text.fill_null("")), r"[|,;，；、\r\n]+$", "")
    split = _split(text)
    empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
    lengths = np.where(empty, 0, pc.list_value_length(split).to_numpy(zero_copy_only=False))
    offsets = np.zeros(len(text) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = pc.list_flatten(pc.if_else(pa.array(empty), pa.scalar([], split.type), split))
    return pa.ListArray.from_arrays(pa.array(offsets), dates(flat))


#: Columns converted value by value whatever their repetition: money and hours (most values distinct), ids.
_MOSTLY_DISTINCT = ("case_id", "patient_id")
#: Rows from which a column is converted through its distinct values (a hash pass, then each value once).
_DISTINCT_FROM = 4096


def convert(field: pa.Field, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as the canonical type of ``field`` (value maps, trimmed text, numbers, durations, dates).

    Columns that repeat a few values (sex, dates, ages, codes of a value map) are converted through their distinct
    values only: each conversion is value by value, so converting the dictionary and taking it back by the
    indices gives the same column.
    """
    arr = one_array(column)
    if pa.types.is_dictionary(arr.type):
        return _convert(field, arr.dictionary).take(arr.indices)
    if arr.type == field.type and pa.types.is_integer(arr.type) and not _maps_numbers(field.name):
        return arr  # numbers already: a value map of spellings leaves them as they are
    repeats = len(arr) >= _DISTINCT_FROM and not pa.types.is_floating(field.type)
    if (
        repeats
        and field.name not in _MOSTLY_DISTINCT
        and (arr.type != field.type or field.name in _value_maps() or field.type == pa.string())
    ):
        encoded = pc.dictionary_encode(arr)
        return _convert(field, encoded.dictionary).take(encoded.indices)
    return _convert(field, arr)


def _convert(field: pa.Field, arr: pa.Array) -> pa.Array:
    if field.name in _value_maps():
        arr = map_values(field.name, arr)
    if arr.type == field.type and field.type != pa.string():
        return arr
    t = field.type
    if pa.types.is_integer(t):
        return integers(arr, t)
    if pa.types.is_floating(t):
        if field.name in ("icu_hours", "vent_hours"):
            arr = _duration_hours(strings(arr))
        return numbers(arr, t, bad=UNREADABLE)
    if pa.types.is_date(t):
        return dates(arr)
    return strings(arr)


def integers(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """Whole numbers, truncated like the reference's ``intValue`` (``65.7`` → 65); a value present but unreadable or
    outside the type's range becomes -1 (the grouper turns it into a status), an empty one null."""
    info = np.iinfo(typ.to_pandas_dtype())
    if pa.types.is_integer(arr.type):  # already whole numbers: only the range is checked
        bad = pc.or_(pc.less(arr, info.min), pc.greater(arr, info.max))
        return (
            pc.if_else(bad, pa.scalar(-1, arr.type), arr).cast(typ) if pc.any(bad).as_py() else arr.cast(typ)
        )
    values = pc.trunc(numbers(arr, pa.float64(), bad=-1))
    bad = pc.or_(pc.less(values, float(info.min)), pc.greater(values, float(info.max)))
    return pc.if_else(bad, pa.scalar(-1.0), values).cast(typ)


def numbers(arr: pa.Array, typ: pa.DataType, bad: float | None) -> pa.Array:
    """Numbers from text or numeric columns; a present but unreadable value becomes ``bad`` (-1 for whole
    numbers, :data:`UNREADABLE` or null for amounts), an empty one (or NaN) null.

    Text is read as exports write numbers: full-width digits (NFKC), exponents (``1e15``) and ``inf`` (infinite,
    as in a Parquet column: the plausibility rules judge it); for amounts (``bad`` not -1) also digit groups
    (``1,234.5``), and ``nan``, ``NA``, ``-`` as empty."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        values = arr.cast(pa.float64())
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
        return values.cast(typ)
    text = strings(arr)
    if not pc.all(pc.string_is_ascii(text)).as_py():
        text = pc.utf8_normalize(text, "NFKC")
    # amounts: not a whole-number field (those keep the reference groupers' reading)
    amounts = bad is None or bad != bad
    ok = pc.match_substring_regex(text, _NUMBER)
    wrong = pc.and_kleene(pc.is_valid(text), pc.invert(ok))
    if pc.any(wrong).as_py():  # the other spellings, looked for only when a value is not a plain number
        if amounts:
            grouped = pc.match_substring_regex(text, _GROUPED)
            text = pc.if_else(grouped, pc.replace_substring(text, ",", ""), text)
            ok = pc.or_(ok, grouped)
        ok = pc.or_(ok, pc.match_substring_regex(text, _INFINITE))
        wrong = pc.and_kleene(pc.is_valid(text), pc.invert(ok))
        if amounts:
            wrong = pc.and_(wrong, pc.invert(pc.match_substring_regex(text, _EMPTY)))
    parsed = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
    if bad is not None:
        parsed = pc.if_else(wrong, pa.scalar(float(bad)), parsed)
    return parsed.cast(typ)


def unreadable(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Where a number column read by :func:`convert` holds :data:`UNREADABLE` (text that is not a number)."""
    arr = one_array(arr)
    if not pa.types.is_floating(arr.type):
        return pa.array(np.zeros(len(arr), bool))
    return pc.fill_null(pc.is_nan(arr), False)


def _duration_hours(text: pa.Array) -> pa.Array:
    """``天/小时/分钟`` text (``1/13/24`` = 37.4 h, docs/records.md §2) to hours; plain numbers are hours already."""
    parts = pc.split_pattern(text, "/")
    n = pc.list_value_length(parts)
    is_dhm = pc.fill_null(pc.equal(n, 3), False)
    if not pc.any(is_dhm).as_py():
        return text

    def part(k):
        return numbers(
            pc.list_element(pc.if_else(is_dhm, parts, pa.scalar(["0", "0", "0"])), k), pa.float64(), None
        )

    hours = pc.add(pc.add(pc.multiply(part(0), 24.0), part(1)), pc.divide(part(2), 60.0))
    return pc.if_else(is_dhm, hours.cast(pa.string()), text)


def dates(arr: pa.Array) -> pa.Array:
    """Dates from ``YYYY-MM-DD[ hh:mm[:ss]]``, ``YYYY/M/D``, ``YYYY.MM.DD``, ``YYYYMMDD``, ``YYYY年M月D日``;
    unreadable or impossible dates (2025-02-30) → null."""
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return arr.cast(pa.date32())
    text = pc.replace_substring_regex(strings(arr), r"[ T].*$", "")  # drop a time part
    text = pc.replace_substring_regex(pc.replace_substring(text, "日", ""), r"[/.年月]", "-")
    text = pc.replace_substring_regex(text, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    parts = pc.extract_regex(text, r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$")
    parsed = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 02-30 over into March: keep a date only when its month and day are the ones written
    same = pc.and_(
        pc.equal(pc.month(parsed), pc.struct_field(parts, "m").cast(pa.int64())),
        pc.equal(pc.day(parsed), pc.struct_field(parts, "d").cast(pa.int64())),
    )
    return pc.if_else(pc.fill_null(same, False), parsed, pa.scalar(None, parsed.type)).cast(pa.date32())
