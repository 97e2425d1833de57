"""Readers and writers of discharge files (结算清单 exports): CSV (UTF-8 / GBK), Excel and Parquet.

Readers stream record batches and map every batch onto the canonical schema (grouper/schema.py): header
aliases (4101A field names, Chinese export headers; data in ``codebooks/records/column_aliases.csv``), numbered
list columns (``其他诊断编码1…n``), ``|``-separated lists, value maps (``男``→1, ``310``→employee), numbers and dates.
A value that is present but unreadable never stops a batch: integer fields get ``-1`` (the grouper turns it into
a status), other fields null. Whole-file problems raise ``InputError`` naming the file and the column.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from grouper.errors import InputError
from grouper.resources import data_path
from grouper.schema import DISCHARGE_SCHEMA, LIST_COLUMNS, REQUIRED_COLUMNS

__all__ = ["InputError", "count_rows", "read_discharges", "write_results"]

BATCH_SIZE = 1 << 18
_NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$"
_EXCEL_MAX_ROWS = 1_048_575
#: Separators between codes in a flat list column: `|` (canonical), and the , ; ， ； 、 and line breaks that
#: hand-made exports use. No ICD code contains any of them.
_LIST_SEPARATORS = r"[|,;，；、\r\n]"


@cache
def _aliases() -> dict[str, tuple[str, int]]:
    """Header key → (canonical column, rank): when a file has two aliases of one column, the lower rank (the
    earlier row of column_aliases.csv, e.g. setl_id before mdtrt_id) wins."""
    table = pd.read_csv(data_path("records", "column_aliases.csv"), dtype=str, keep_default_na=False)
    return {_key(a): (c, rank) for rank, (a, c) in enumerate(zip(table.alias, table.column, strict=True))}


@cache
def _value_maps() -> dict[str, tuple[pa.Array, pa.Array]]:
    table = pd.read_csv(data_path("records", "value_maps.csv"), dtype=str, keep_default_na=False)
    return {
        col: (pa.array([v.lower() for v in g.value]), pa.array(list(g.canonical)))
        for col, g in table.groupby("column", sort=False)
    }


def _key(header: str) -> str:
    """Header comparison key: NFKC-like folding of full-width brackets, no spaces, lower case."""
    return re.sub(r"\s+", "", str(header)).replace("（", "(").replace("）", ")").lower()


def read_discharges(
    path: str | os.PathLike,
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    columns: Iterable[str] | None = None,
) -> Iterator[pa.Table]:
    """Read a discharge file (出院病例) as canonical tables, one per batch; memory is bounded by ``batch_size``.

    Parameters
    ----------
    path : CSV (``|``-separated list columns), ``.xlsx`` or ``.parquet`` file
    encoding : CSV encoding (``utf-8``, ``gbk``, ``gb18030``); detected from the first MiB when None
    batch_size : rows per batch
    columns : canonical columns to read (the rest stay null and are not parsed); all when None

    Yields
    ------
    pa.Table with the columns of ``DISCHARGE_SCHEMA`` (absent ones all-null), rows in file order.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    keep = None if columns is None else set(columns) | set(REQUIRED_COLUMNS)
    mapping: dict[str, list[str]] = {}

    def select(headers: list[str]) -> list[str]:
        """Map the file's headers; returns the headers to read, in file order."""
        found = _column_mapping(path, headers)
        mapping.update({c: h for c, h in found.items() if keep is None or c in keep})
        wanted = {h for hs in mapping.values() for h in hs}
        return [h for h in headers if h in wanted]

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        batches = _parquet_batches(path, batch_size, select)
    elif suffix in (".xlsx", ".xlsm"):
        batches = _excel_batches(path, batch_size, select)
    else:
        batches = _csv_batches(path, encoding, batch_size, select)
    while True:
        try:  # a damaged data page or an unconvertible column type is a whole-file problem: one clear line
            raw = next(batches, None)
            table = None if raw is None else _canonical(raw, mapping)
        except InputError:
            raise
        except (OSError, pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(f"{path}: cannot read the file past its header: {exc}") from None
        if table is None:
            return
        yield table


def count_rows(path: str | os.PathLike) -> int | None:
    """Rows of a file when known without reading it (Parquet), else None (for progress bars)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):
            return None
    return None


# ---------------------------------------------------------------------------------------------------------
# format readers: raw record batches with the file's own headers


def _parquet_batches(path: Path, batch_size: int, select) -> Iterator[pa.Table]:
    try:
        reader = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    _check_unique(path, reader.schema_arrow.names)
    names = select(reader.schema_arrow.names)
    empty = True
    for batch in reader.iter_batches(batch_size=batch_size, columns=names):
        empty = False
        yield pa.Table.from_batches([batch])
    if empty:
        yield reader.schema_arrow.empty_table().select(names)


def _excel_batches(path: Path, batch_size: int, select) -> Iterator[pa.Table]:
    """The first sheet, streamed row by row (openpyxl read-only mode), every cell as text."""
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [_cell_text(v) for v in next(rows, ())]
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise InputError(f"{path}: not a readable Excel workbook ({exc})") from None
    try:
        while header and header[-1] == "":  # formatting often extends a sheet's width with empty columns
            header.pop()
        if not header:
            raise InputError(f"{path}: the first sheet has no header row")
        header = [h if h else f"(blank column {i + 1})" for i, h in enumerate(header)]
        _check_unique(path, header)
        names = select(header)
        keep = [header.index(h) for h in names]
        batch: list[tuple] = []
        emitted = False
        while True:
            try:
                row = next(rows, None)
            except Exception as exc:  # a damaged sheet part
                raise InputError(f"{path}: the workbook is damaged past its header ({exc})") from None
            if row is None:
                break
            if any(v is not None and v != "" for v in row):  # Excel keeps formatted but empty rows
                batch.append(row)
            if len(batch) == batch_size:
                yield _excel_table(batch, names, keep)
                batch, emitted = [], True
        if batch or not emitted:
            yield _excel_table(batch, names, keep)
    finally:
        book.close()


def _excel_table(rows: list[tuple], names: list[str], keep: list[int]) -> pa.Table:
    columns = {
        n: [_cell_text(r[k]) if k < len(r) else "" for r in rows] for n, k in zip(names, keep, strict=True)
    }
    return pa.table({n: pa.array(v, pa.string()) for n, v in columns.items()})


def _cell_text(value) -> str:
    """A cell as the text a CSV export would hold: numbers as written (65 / 65.5), dates ISO, empty as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    return str(value).strip()


def _check_unique(path: Path, names: list[str]) -> None:
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise InputError(f"{path}: column {dupes[0]!r} appears twice in the header")


def _detect_encoding(path: Path) -> str:
    head = path.read_bytes()[: 1 << 20] if path.stat().st_size <= 1 << 20 else _head(path)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # GBK/GB18030 exports may carry a few stray bytes (decoded as U+FFFD later); anything else is not text
    text = codecs.getincrementaldecoder("gb18030")("replace").decode(head, final=False)
    if text.count("\ufffd") <= max(3, len(text) // 1000) and "\x00" not in text:
        return "gb18030"
    raise InputError(f"{path}: neither UTF-8 nor GBK/GB18030 text; pass --encoding (or convert the file)")


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(1 << 20)


def _csv_batches(path: Path, encoding: str | None, batch_size: int, select) -> Iterator[pa.Table]:
    encoding = encoding or _detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"{path}: unknown encoding {encoding!r}") from None
    utf8 = codecs.lookup(encoding).name == "utf-8"
    try:  # line 1 only (a stray byte further down is the data's business); utf-8-sig drops a BOM first
        with path.open("rb") as f:
            first = f.readline().decode("utf-8-sig" if utf8 else encoding)
        header = next(csv.reader([first.rstrip("\r\n")]), [])
    except UnicodeDecodeError:
        raise InputError(f"{path}: line 1 is not valid {encoding}; try --encoding gbk or utf-8") from None
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{path}: the file has no header row")
    header = [h if h.strip() else f"(blank column {i + 1})" for i, h in enumerate(header)]
    _check_unique(path, header)
    # a legacy-encoded export may carry stray bytes in free-text columns: decode them as U+FFFD rather than
    # refusing the file (a damaged code then gets its own status); UTF-8 is validated by the parser itself
    read = pacsv.ReadOptions(
        encoding=encoding if utf8 else _lenient(encoding),
        block_size=1 << 22,
        column_names=header,
        skip_rows=1,
    )
    names = select(header)
    convert = pacsv.ConvertOptions(
        include_columns=names,
        column_types={h: pa.string() for h in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = pacsv.open_csv(
            path,
            read_options=read,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=convert,
        )
        empty = True
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            empty = False
            pending.append(batch)
            rows += batch.num_rows
            while rows >= batch_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, batch_size)
                rest = table.slice(batch_size)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield pa.Table.from_batches(pending)
        elif empty:
            yield pa.schema([(h, pa.string()) for h in names]).empty_table()
    except pa.ArrowInvalid as exc:
        if "Could not skip initial" in str(exc):  # a header line and nothing else
            yield pa.schema([(h, pa.string()) for h in names]).empty_table()
            return
        hint = "; hospital exports are often GBK: add --encoding gbk" if "UTF8" in str(exc) else ""
        # pyarrow quotes the offending row; it holds patient data, which an error line must not repeat
        message = re.sub(r"(Expected \d+ columns, got \d+): .*", r"\1 in a row (check its quoting)", str(exc))
        raise InputError(f"{path}: {message}{hint}") from None


def _lenient(encoding: str) -> str:
    """The name of a codec that decodes ``encoding`` with undecodable bytes replaced (registered on first use)."""
    name = f"drgdip_lenient_{codecs.lookup(encoding).name.replace('-', '_')}"
    if name not in _LENIENT:
        base = codecs.lookup(encoding)
        _LENIENT[name] = codecs.CodecInfo(
            name=name,
            encode=base.encode,
            decode=lambda data, errors="strict": base.decode(data, "replace"),
            incrementalencoder=base.incrementalencoder,
            incrementaldecoder=lambda errors="strict": base.incrementaldecoder("replace"),
            streamreader=base.streamreader,
            streamwriter=base.streamwriter,
        )
        if len(_LENIENT) == 1:
            codecs.register(_LENIENT.get)
    return name


_LENIENT: dict[str, codecs.CodecInfo] = {}


# ---------------------------------------------------------------------------------------------------------
# mapping onto the canonical schema


def _column_mapping(path: Path, headers: list[str]) -> dict[str, list[str]]:
    """Canonical column → the file's header(s) that feed it; numbered list headers are gathered in order."""
    aliases = _aliases()
    chosen: dict[str, tuple[int, str]] = {}
    lists: dict[str, list[tuple[int, str]]] = {}
    seen: dict[str, str] = {}
    for h in headers:
        key = _key(h)
        if key in seen:
            raise InputError(f"{path}: columns {seen[key]!r} and {h!r} are the same column; keep one")
        seen[key] = h
        if key in aliases:
            col, rank = aliases[key]
            if col in LIST_COLUMNS:
                lists.setdefault(col, []).append((0, h))
            elif col not in chosen or rank < chosen[col][0]:
                chosen[col] = (rank, h)
            continue
        m = re.fullmatch(r"(.*?)(\d+)", key)
        if m and aliases.get(m.group(1), ("", 0))[0] in LIST_COLUMNS:
            lists.setdefault(aliases[m.group(1)][0], []).append((int(m.group(2)), h))
    mapping = {col: [h] for col, (_, h) in chosen.items()}
    mapping.update({col: [h for _, h in sorted(items, key=lambda x: x[0])] for col, items in lists.items()})
    for col in REQUIRED_COLUMNS:
        if col not in mapping:
            known = sorted(a for a, (c, _) in aliases.items() if c == col)
            raise InputError(
                f"{path}: required column {col!r} is missing (accepted headers: {', '.join(known)})"
            )
    return mapping


def _canonical(raw: pa.Table, mapping: dict[str, list[str]]) -> pa.Table:
    n = raw.num_rows
    columns = []
    for field in DISCHARGE_SCHEMA:
        sources = mapping.get(field.name)
        try:
            if not sources:
                columns.append(pa.nulls(n, field.type))
            elif field.name in LIST_COLUMNS:
                columns.append(_code_list([raw.column(s) for s in sources]))
            else:
                columns.append(_convert(field, raw.column(sources[0])))
        except (pa.ArrowException, ValueError, TypeError) as exc:
            kind = raw.schema.field(sources[0]).type
            raise ValueError(
                f"column {sources[0]!r} ({kind}) cannot be read as {field.name}: {exc}"
            ) from None
    return pa.Table.from_arrays(columns, schema=DISCHARGE_SCHEMA)


def _strings(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    s = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _code_list(parts: list[pa.ChunkedArray]) -> pa.Array:
    """One list<string> column from list columns or ``|``-separated text; numbered columns are joined in order."""
    arrays = [p.combine_chunks() if isinstance(p, pa.ChunkedArray) else p for p in parts]
    if len(arrays) == 1 and (pa.types.is_list(arrays[0].type) or pa.types.is_large_list(arrays[0].type)):
        return arrays[0].cast(pa.list_(pa.string())).fill_null(pa.scalar([], pa.list_(pa.string())))
    texts = [
        pc.binary_join(a.cast(pa.list_(pa.string())), "|")
        if pa.types.is_list(a.type)
        else a.cast(pa.string())
        for a in arrays
    ]
    text = pc.binary_join_element_wise(*(t.fill_null("") for t in texts), "|") if len(texts) > 1 else texts[0]
    split = pc.split_pattern_regex(text.fill_null(""), _LIST_SEPARATORS)
    flat = pc.utf8_trim_whitespace(pc.list_flatten(split))
    keep = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    owner = pc.list_parent_indices(split).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(text) + 1, np.int32)
    np.cumsum(np.bincount(owner[keep], minlength=len(text)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pc.filter(flat, pa.array(keep)))


def _convert(field: pa.Field, column: pa.ChunkedArray) -> pa.Array:
    arr = column.combine_chunks()
    if field.name in _value_maps():
        text = _strings(arr)
        keys, values = _value_maps()[field.name]
        idx = pc.index_in(pc.utf8_lower(text), value_set=keys)
        arr = pc.if_else(pc.is_valid(idx), pc.take(values, idx), text)
    if arr.type == field.type and field.type != pa.string():
        return arr
    t = field.type
    if pa.types.is_integer(t):
        return _integers(arr, t)
    if pa.types.is_floating(t):
        if field.name in ("icu_hours", "vent_hours"):
            arr = _duration_hours(_strings(arr))
        return _numbers(arr, t, bad=None)
    if pa.types.is_date(t):
        return _dates(arr)
    return _strings(arr)


def _integers(arr: pa.Array, typ: pa.DataType) -> pa.Array:
    """Whole numbers, truncated like the reference's ``intValue`` (``65.7`` → 65); a value present but unreadable or
    outside the type's range becomes -1 (the grouper turns it into a status), an empty one null."""
    info = np.iinfo(typ.to_pandas_dtype())
    if pa.types.is_integer(arr.type):  # already whole numbers: only the range is checked
        bad = pc.or_(pc.less(arr, info.min), pc.greater(arr, info.max))
        return (
            pc.if_else(bad, pa.scalar(-1, arr.type), arr).cast(typ) if pc.any(bad).as_py() else arr.cast(typ)
        )
    values = pc.trunc(_numbers(arr, pa.float64(), bad=-1))
    bad = pc.or_(pc.less(values, float(info.min)), pc.greater(values, float(info.max)))
    return pc.if_else(bad, pa.scalar(-1.0), values).cast(typ)


def _numbers(arr: pa.Array, typ: pa.DataType, bad: int | None) -> pa.Array:
    """Numbers from text or numeric columns; a present but unreadable value becomes ``bad`` (-1 or null), an
    empty one (or NaN) null. Full-width digits are read (NFKC)."""
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        values = arr.cast(pa.float64())
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
        return values.cast(typ)
    text = _strings(arr)
    if not pc.all(pc.string_is_ascii(text)).as_py():
        text = pc.utf8_normalize(text, "NFKC")
    ok = pc.match_substring_regex(text, _NUMBER)
    parsed = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.float64())
    if bad is not None:
        parsed = pc.if_else(pc.and_(pc.is_valid(text), pc.invert(ok)), pa.scalar(float(bad)), parsed)
    return parsed.cast(typ)


def _duration_hours(text: pa.Array) -> pa.Array:
    """``天/小时/分钟`` text (``1/13/24`` = 37.4 h, records.md §2) to hours; plain numbers are hours already."""
    parts = pc.split_pattern(text, "/")
    n = pc.list_value_length(parts)
    is_dhm = pc.fill_null(pc.equal(n, 3), False)
    if not pc.any(is_dhm).as_py():
        return text

    def part(k):
        return _numbers(
            pc.list_element(pc.if_else(is_dhm, parts, pa.scalar(["0", "0", "0"])), k), pa.float64(), None
        )

    hours = pc.add(pc.add(pc.multiply(part(0), 24.0), part(1)), pc.divide(part(2), 60.0))
    return pc.if_else(is_dhm, hours.cast(pa.string()), text)


def _dates(arr: pa.Array) -> pa.Array:
    """Dates from ``YYYY-MM-DD[ hh:mm[:ss]]``, ``YYYY/M/D``, ``YYYY.MM.DD``, ``YYYYMMDD``, ``YYYY年M月D日``;
    unreadable or impossible dates (2025-02-30) → null."""
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):
        return arr.cast(pa.date32())
    text = pc.replace_substring_regex(_strings(arr), r"[ T].*$", "")  # drop a time part
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


# ---------------------------------------------------------------------------------------------------------
# writer


def write_results(
    tables: pa.Table | Iterable[pa.Table],
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write result tables to ``.parquet``, ``.csv`` or ``.xlsx`` (by suffix) atomically; returns the row count.

    The file appears only when everything was written (temp file + rename). ``metadata`` (codebook, policy
    hashes, drgdip version) goes into the Parquet schema metadata, or a ``<file>.meta.json`` beside CSV/Excel.
    ``path`` ``"-"`` writes CSV to standard output (no metadata).
    """
    if isinstance(tables, pa.Table):
        tables = [tables]
    if str(path) == "-":
        return _write_csv(tables, sys.stdout.buffer)
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; pass --force to replace it")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".xlsx"):
        raise InputError(f"{path}: unknown output format {suffix!r} (use .parquet, .csv or .xlsx)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch()
    except OSError as exc:
        raise InputError(f"{path}: cannot write here ({exc.strerror}); choose another --out") from None
    rows = 0
    try:
        if suffix == ".parquet":
            rows = _write_parquet(tables, tmp, metadata or {})
        elif suffix == ".csv":
            rows = _write_csv(tables, tmp)
        else:
            rows = _write_excel(tables, tmp, path)
        if suffix != ".parquet" and metadata:
            meta = path.with_name(path.name + ".meta.json")
            meta.write_text(
                json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n", "utf-8"
            )
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (for CSV and Excel)."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


def _write_parquet(tables: Iterable[pa.Table], tmp: Path, metadata: dict[str, str]) -> int:
    """Each table is written in a background thread while the next one is produced (pyarrow releases the GIL)."""
    writer, rows, pending = None, 0, None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            for t in tables:
                if writer is None:
                    schema = t.schema.with_metadata(
                        {**(t.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}}
                    )
                    writer = pq.ParquetWriter(tmp, schema, compression="snappy")
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, t.replace_schema_metadata(writer.schema.metadata))
                rows += t.num_rows
            if pending is not None:
                pending.result()
        finally:
            if writer is not None:
                if pending is not None:
                    pending.exception()  # wait for the last write before closing, whatever happened
                writer.close()
    if writer is None:
        raise InputError("nothing to write")
    return rows


def _write_csv(tables: Iterable[pa.Table], target: Path | BinaryIO) -> int:
    writer, rows = None, 0
    with target.open("wb") if isinstance(target, Path) else contextlib.nullcontext(target) as sink:
        for t in tables:
            t = _decoded(t)
            if writer is None:
                writer = pacsv.CSVWriter(sink, t.schema)
            writer.write_table(t)
            rows += t.num_rows
        if writer is not None:
            writer.close()
    return rows


def _write_excel(tables: Iterable[pa.Table], tmp: Path, path: Path) -> int:
    """One sheet, streamed (openpyxl write-only); text stays text, so an id such as ``=1+1`` is never a formula."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("results")
    rows, header = 0, False
    for t in tables:
        rows += t.num_rows
        if rows > _EXCEL_MAX_ROWS:
            raise InputError(
                f"{path}: more than {_EXCEL_MAX_ROWS:,} rows do not fit in Excel; write .parquet or .csv"
            )
        if not header:
            sheet.append(t.column_names)
            header = True
        for row in zip(*(c.to_pylist() for c in _decoded(t).columns), strict=True):
            sheet.append([_excel_cell(sheet, v) for v in row])
    book.save(tmp)
    _fix_workbook_dates(tmp)
    return rows


def _excel_cell(sheet, value):
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(
        sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value)
    )  # control characters Excel refuses
    cell.data_type = "s"
    return cell


def _fix_workbook_dates(path: Path) -> None:
    """Give a workbook fixed zip timestamps and document dates, so that a rerun writes the same bytes."""
    with zipfile.ZipFile(path) as z:
        parts = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts:
            if name == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>1980-01-01T00:00:00Z", data
                )
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
