"""Format readers: CSV (UTF-8 / GBK / GB18030, detected), Excel (.xlsx, streamed) and Parquet → raw record batches
with the file's own headers; every table drgdip reads goes through them (grouper.io.discharges, grouper.io.tables).

CSV and Excel cells arrive as text; Parquet as typed. Whole-file problems raise ``InputError`` naming the file; an
error line never repeats a row of the file.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper.errors import InputError
from grouper.io.paths import kind_of

__all__ = [
    "EXCEL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "InputWarning",
    "Layout",
    "first_data_row",
    "one_line",
    "raw_batches",
    "read_ahead",
    "read_raw",
    "worked_ahead",
]

PARQUET_SUFFIXES = (".parquet", ".pq")
_T = TypeVar("_T")
_U = TypeVar("_U")


class InputWarning(UserWarning):
    """Something read that the user should know about (a skipped sheet…); the CLI prints it as a warning line."""


EXCEL_SUFFIXES = (".xlsx", ".xlsm")
#: Rows looked at for the header when its row is not given: title rows (one cell or none) above it are skipped.
_HEADER_SCAN = 10


@dataclass(frozen=True)
class Layout:
    """Where a file keeps its table (表头位置): the Excel sheet, the header row, headers renamed before mapping.

    Parameters
    ----------
    sheet : the Excel sheet to read (None: the first sheet and every sheet with the same header)
    header_row : 1-based row of the header (None: the first row with two cells or more among the first ten,
        so that title rows above the header are skipped; row 1 when no row has two cells)
    rename : file header → header to read it as (``{"住院号": "病案号"}``), applied before any alias
    values : discharge files: a column (its header, or the canonical column it feeds) → {value as written →
        value to read}, e.g. ``{"sex": {"男": "1", "女": "2"}}`` for a scheme that takes sex only as 1/2 (取值映射)
    """

    sheet: str | None = None
    header_row: int | None = None
    rename: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.header_row is not None and self.header_row < 1:
            raise InputError(f"the header row is counted from 1, not {self.header_row}", key="header_row")


def raw_batches(
    path: str | os.PathLike,
    *,
    encoding: str | None = None,
    batch_size: int,
    select: Callable[[list[str]], list[str]] | None = None,
    layout: Layout | None = None,
    fits: Callable[[list[str]], bool] | None = None,
    encoded: Callable[[list[str]], set[str]] | None = None,
) -> Iterator[pa.Table]:
    """The file's rows as tables of at most ``batch_size`` rows (at least one table, maybe empty), by suffix.

    ``select(headers)`` returns the headers to read (all when None); headers and table columns are the file's,
    after ``layout.rename``. ``fits(headers)`` tells the table sought in a workbook whose sheet is not named:
    the first sheet whose header fits is read (with the sheets after it that have its header).
    ``encoded(headers)``: of a Parquet file's headers read, those whose text is handed over dictionary-encoded
    (字典编码: ``dictionary<string>`` and lists of them, as its pages hold them), so that a column of few distinct
    values is never spelt out row by row; CSV and Excel cells arrive as text (grouper.io.discharges encodes them).
    """
    path = Path(path)
    if kind_of(path) != "file":
        raise InputError(f"{path}: no such file", path=path)
    select = select or (lambda headers: list(headers))
    layout = layout or Layout()
    suffix = path.suffix.lower()
    if layout.sheet is not None and suffix not in EXCEL_SUFFIXES:
        raise InputError(
            f"{path}: a sheet is named but the file is not an Excel workbook", path=path, key="sheet"
        )
    if suffix in PARQUET_SUFFIXES:
        return parquet_batches(path, batch_size, select, layout, encoded)
    if suffix in EXCEL_SUFFIXES:
        return excel_batches(path, batch_size, select, layout, fits)
    return csv_batches(path, encoding, batch_size, select, layout)


def read_raw(
    path: str | os.PathLike,
    *,
    encoding: str | None = None,
    layout: Layout | None = None,
    fits: Callable[[list[str]], bool] | None = None,
) -> pa.Table:
    """A small table (hospitals, deductions, history…) as one raw table (CSV and Excel cells as text);
    ``fits`` as in :func:`raw_batches`."""
    batches = raw_batches(path, encoding=encoding, batch_size=1 << 20, layout=layout, fits=fits)
    try:
        return pa.concat_tables(list(batches))
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read the file past its header ({one_line(exc)})", path=path
        ) from None


def read_ahead(
    items: Iterator[pa.Table],
    *,
    first_here: bool = False,
    meanwhile: Callable[[], object] | None = None,
    ahead: int = 1,
) -> Iterator[pa.Table]:
    """The same items, the next ones read in a background thread while the caller works on the current one.

    Reading and parsing (pyarrow, which releases the GIL) then overlaps with the caller's work on the other core.
    ``first_here``: the first item is read on the caller's thread (a reader's header, its warnings and
    callbacks, stay there; the caller waits for the first item in any case). ``meanwhile()``: run on the caller's
    thread while the first items (read in the background) are read. ``ahead``: how many items are read ahead of
    the caller (memory holds that many items more).
    """
    if first_here:
        first = next(items, None)
        if first is None:
            return
        yield first
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = collections.deque(pool.submit(next, items, None) for _ in range(ahead))
        if meanwhile is not None:
            meanwhile()
        while (item := pending.popleft().result()) is not None:
            pending.append(pool.submit(next, items, None))
            yield item


def worked_ahead(work: Callable[[_T], _U], items: Iterator[_T], workers: int = 2) -> Iterator[_U]:
    """``work(item)`` for each item, in order, done on ``workers`` threads: while the caller takes one result,
    the next ``workers`` items are being worked on (Arrow compute releases the GIL, so the work spreads over
    the cores). Items are drawn on the caller's thread (wrap them in :func:`read_ahead` to draw them on their
    own). An error drawing an item or working on it is raised where its result would have come: the results
    before it come first, as from ``map(work, items)``."""
    pool = ThreadPoolExecutor(max_workers=workers)
    pending: collections.deque = collections.deque()
    failed: Exception | None = None
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except Exception as exc:  # raised after the results of the items drawn before it
                failed = exc
                break
            pending.append(pool.submit(work, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
        if failed is not None:
            raise failed
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line, without the values it quotes: pyarrow and pandas quote the cell they
    could not convert (``Failed to parse string: '张三 …'``), and an error line never repeats a row's data."""
    raw = "; ".join(map(str, exc.args)) if len(exc.args) > 1 else str(exc)  # pyarrow's (reason, column) pairs
    text = _CONVERT.sub(r"\1 …", _QUOTED.sub("'…'", raw))
    return _NUMBER_VALUE.sub(r"\1 …", re.sub(r"\s+", " ", text)).strip()


#: A quoted value in a library's message (single or double quotes, over line breaks).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"", re.S)
#: A number a library's message names as the value it could not convert (``Float value 65.5 was truncated``).
_CONVERT = re.compile(r"\b(Could not convert) \S.*?(?= with type)")
_NUMBER_VALUE = re.compile(r"\b(value|values) [-+]?[\d.]+(?:[eE][-+]?\d+)?")


def renamed(path: Path, header: list[str], rename: Mapping[str, str]) -> list[str]:
    """The header with ``rename`` applied; a name to rename that the header lacks is an InputError."""
    missing = [src for src in rename if src not in header]
    if missing:
        raise InputError(
            f"{path}: no column {missing[0]!r} to rename (the header has {', '.join(header[:8])}…)",
            path=path,
            column=missing[0],
            key="rename",
        )
    out = [rename.get(h, h) for h in header]
    check_unique(path, out)
    return out


def parquet_batches(path: Path, batch_size: int, select, layout: Layout, encoded=None) -> Iterator[pa.Table]:
    try:
        reader = pq.ParquetFile(
            path, pre_buffer=False, page_checksum_verification=True
        )  # pre-buffering keeps every row group read
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    original = reader.schema_arrow.names
    check_unique(path, original)
    header = renamed(path, original, layout.rename)
    names = select(header)
    source = [original[header.index(n)] for n in names]
    leaves = (
        _dictionary_leaves(reader, source, [original[header.index(n)] for n in encoded(names)])
        if encoded
        else []
    )
    if leaves:
        reader = pq.ParquetFile(
            path, pre_buffer=False, page_checksum_verification=True, read_dictionary=leaves
        )
        batches = _row_group_batches(reader, batch_size, source)
    else:  # decoded on the reading thread alone: beside a batch pipeline that keeps both cores busy, Arrow's own
        # threads only add their hand-offs (a 10M-case settlement: 0.2 s less CPU)
        batches = (
            pa.Table.from_batches([b])
            for b in reader.iter_batches(batch_size=batch_size, columns=source, use_threads=False)
        )
    empty = True
    while True:
        try:
            table = next(batches, None)
        except (OSError, pa.ArrowException) as exc:  # a page whose checksum fails, a truncated column chunk…
            damaged = "checksum" in str(exc).lower()
            what = "a data page fails its checksum: the file is damaged" if damaged else one_line(exc)
            raise InputError(f"{path}: not a readable Parquet file ({what})", path=path) from None
        if table is None:
            break
        empty = False
        yield table.rename_columns(names)
    if empty:
        yield reader.schema_arrow.empty_table().select(source).rename_columns(names)


#: Largest row group read whole for dictionary-encoded text (a file written as one huge row group is read in
#: batches, spelt out).
_LARGEST_ROW_GROUP = 1 << 20


def _dictionary_leaves(reader: pq.ParquetFile, source: list[str], wanted: list[str]) -> list[str]:
    """The Parquet leaf paths (``other_dx.list.element``) of the text columns of ``wanted`` (and of their lists),
    when the file's row groups are small enough to be read one at a time; else none."""
    meta = reader.metadata
    if not wanted or any(meta.row_group(i).num_rows > _LARGEST_ROW_GROUP for i in range(meta.num_row_groups)):
        return []
    schema = reader.schema_arrow
    leaves = []
    for name in wanted:
        typ = schema.field(name).type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            leaves.append(name)
        elif pa.types.is_list(typ) and (
            pa.types.is_string(typ.value_type) or pa.types.is_large_string(typ.value_type)
        ):
            leaves.append(f"{name}.list.{typ.value_field.name}")
    parquet_paths = {reader.schema.column(i).path for i in range(len(reader.schema))}
    return [leaf for leaf in leaves if leaf in parquet_paths]


def _row_group_batches(reader: pq.ParquetFile, batch_size: int, source: list[str]) -> Iterator[pa.Table]:
    """The file's rows in tables of exactly ``batch_size`` rows (the last one shorter), read row group by row
    group: a dictionary-encoded list column cannot be read in batches that cross row groups. Each table's
    dictionaries are unified (one chunk per column)."""
    pending: list[pa.Table] = []
    rows = 0
    for i in range(reader.metadata.num_row_groups):
        part = reader.read_row_group(i, columns=source)
        pending.append(part)
        rows += part.num_rows
        if rows >= batch_size:
            table = pa.concat_tables(pending).combine_chunks()
            while rows >= batch_size:
                yield table.slice(0, batch_size)
                table, rows = table.slice(batch_size), rows - batch_size
            pending = [table] if rows else []
    if rows:
        yield pa.concat_tables(pending).combine_chunks()


def excel_batches(path: Path, batch_size: int, select, layout: Layout, fits=None) -> Iterator[pa.Table]:
    """The sheet named by ``layout.sheet``, else the first sheet holding a table (whose header ``fits``, when
    given and a sheet's does) and every sheet after it with its header, in order, streamed row by row (openpyxl
    read-only mode), every cell as text; a sheet with another header (or none) is skipped with a warning naming it. Formula cells without a cached value and merged cells under the header
    (both read as empty) are counted in a warning."""
    import openpyxl  # only for Excel inputs: it takes a tenth of a second to import

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        sheets = list(book.worksheets)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise InputError(f"{path}: not a readable Excel workbook ({one_line(exc)})", path=path) from None
    try:
        sheets, header, at, rows = _excel_table_start(path, sheets, layout, fits)
        if not header:
            raise InputError(f"{path}: sheet {sheets[0].title!r} has no header row", path=path)
        header = renamed(path, _named(header), layout.rename)
        check_unique(path, header)
        names = select(header)
        keep = [header.index(h) for h in names]
        batch: list[tuple] = []
        emitted = False
        for k, sheet in enumerate(sheets):
            if k:
                other, at, rows = _find_header(sheet, layout.header_row)
                if not other or [layout.rename.get(h, h) for h in _named(other)] != header:
                    if other:
                        warnings.warn(
                            f"{path}: sheet {sheet.title!r} has another header than sheet {sheets[0].title!r}; "
                            "not read (name the sheet to read with --sheet)",
                            InputWarning,
                            stacklevel=2,
                        )
                    continue
            _check_cells(path, sheet, at)
            while True:
                try:
                    row = next(rows, None)
                except Exception as exc:  # a damaged sheet part
                    raise InputError(
                        f"{path}: the workbook is damaged past its header ({one_line(exc)})", path=path
                    ) from None
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


def _is_table(header: list[str]) -> bool:
    return sum(1 for c in header if c) >= 2


def _first_table(headers: list[list[str]], layout: Layout, fits) -> int:
    """Index of the sheet to start reading at: the first whose header ``fits`` (when one does), else the first
    holding a table (a header of two cells or more), else the first."""
    tables = [k for k, h in enumerate(headers) if _is_table(h)]
    if fits is not None:
        for k in tables:
            if fits([layout.rename.get(h, h) for h in _named(headers[k])]):
                return k
    return tables[0] if tables else 0


def _excel_table_start(
    path: Path, sheets: list, layout: Layout, fits=None
) -> tuple[list, list[str], int, Iterator[tuple]]:
    """(the sheets to read, the first one's header cells, its 1-based row, its rows after it): the sheet named by
    ``layout.sheet``, else the first sheet holding a table (whose header ``fits``, when given and a sheet's does)
    and those after it (cover sheets and other tables before it are skipped with a warning)."""
    titles = [s.title for s in sheets]
    if layout.sheet is not None:
        if layout.sheet not in titles:
            raise InputError(
                f"{path}: no sheet {layout.sheet!r} (sheets: {', '.join(titles)})", path=path, key="sheet"
            )
        sheets = [sheets[titles.index(layout.sheet)]]
    try:
        if layout.sheet is None:  # cover sheets (notes…) before the data: skipped, said so
            tables = [_find_header(s, layout.header_row)[0] for s in sheets]
            first = _first_table(tables, layout, fits)
            for s, h in zip(sheets[:first], tables, strict=False):
                why = "does not hold the columns sought" if _is_table(h) else "holds no table"
                warnings.warn(f"{path}: sheet {s.title!r} {why}; not read", InputWarning, stacklevel=3)
            sheets = sheets[first:]
        return (sheets, *_find_header(sheets[0], layout.header_row))
    except Exception as exc:  # a damaged sheet part
        raise InputError(f"{path}: not a readable Excel workbook ({one_line(exc)})", path=path) from None


def first_data_row(
    path: str | os.PathLike, *, encoding: str | None = None, layout: Layout | None = None, fits=None
) -> int:
    """The number of a file's first data row as the user sees it (首行行号): the row after the header in Excel or
    the line after it in an editor, title rows above the header counted; 1 for Parquet (no header row).

    An error about the ``i``-th row read (from 0) names row ``first_data_row(...) + i``; empty lines inside the
    data (which the readers skip) would shift it. ``fits`` as in :func:`raw_batches` (the table sought)."""
    path, layout = Path(path), layout or Layout()
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return 1
    if suffix in EXCEL_SUFFIXES:
        import openpyxl

        with warnings.catch_warnings():  # the reader itself says what it skips
            warnings.simplefilter("ignore")
            try:
                book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            except Exception as exc:  # openpyxl raises many types for a broken workbook
                raise InputError(
                    f"{path}: not a readable Excel workbook ({one_line(exc)})", path=path
                ) from None
            try:
                return _excel_table_start(path, list(book.worksheets), layout, fits)[2] + 1
            finally:
                book.close()
    encoding = encoding or detect_encoding(path)
    return _csv_header_line(path, encoding, layout)[0] + 1


def _named(header: list[str]) -> list[str]:
    return [h if h else f"(blank column {i + 1})" for i, h in enumerate(header)]


def _find_header(sheet, header_row: int | None) -> tuple[list[str], int, Iterator[tuple]]:
    """(header cells, its 1-based row, the sheet's rows after it).

    With ``header_row`` None, title rows (fewer than two cells) above the first row of two cells or more among
    the first :data:`_HEADER_SCAN` are skipped; when there is none, row 1 is the header (a one-column table)."""
    rows = sheet.iter_rows(values_only=True)
    if header_row is not None:
        for _ in range(header_row - 1):
            next(rows, None)
        return _header(next(rows, ())), header_row, rows
    for k in range(_HEADER_SCAN):
        row = next(rows, None)
        if row is None:
            break
        cells = _header(row)
        if sum(1 for c in cells if c) >= 2:
            return cells, k + 1, rows
    rows = sheet.iter_rows(values_only=True)
    return _header(next(rows, ())), 1, rows


def _check_cells(path: Path, sheet, header_at: int) -> None:
    """Warn about cells that read as empty although the sheet shows a value: formula cells saved without a
    cached value (a workbook written by a program, never opened in Excel) and merged cells at or under the
    header (only the first cell of a merged range holds the value). Counted from the sheet's XML, streamed."""
    part = getattr(sheet, "_worksheet_path", None)
    if part is None:
        return
    formulas = merged = 0
    tail = b""
    cell = re.compile(rb"<c\b[^>]*?(?:/>|>(.*?)</c>)", re.S)
    merge = re.compile(rb"<mergeCell\b[^>]*\bref=\"[A-Z]+(\d+)(?::[A-Z]+\d+)?\"")
    try:
        with zipfile.ZipFile(path) as z, z.open(part.lstrip("/")) as f:
            while chunk := f.read(1 << 22):
                data = tail + chunk
                end = data.rfind(b"</row>") + 6 if b"</row>" in data else 0  # whole rows only
                data, tail = data[:end], data[end:]
                for m in cell.finditer(data):
                    body = m.group(1) or b""
                    if b"<f" in body and not re.search(rb"<v>[^<]", body):
                        formulas += 1
            merged = sum(1 for m in merge.finditer(tail) if int(m.group(1)) >= header_at)  # after the rows
    except (OSError, KeyError, zipfile.BadZipFile):  # the reader itself reports a damaged workbook
        return
    where = f"{path}: sheet {sheet.title!r}"
    if formulas:
        warnings.warn(
            f"{where}: {formulas:,} formula cell(s) have no saved value and read as empty; open and save the "
            "workbook in Excel (or export the values) to read them",
            InputWarning,
            stacklevel=3,
        )
    if merged:
        warnings.warn(
            f"{where}: {merged:,} merged cell range(s) at or under the header; only the first cell of each holds "
            "the value, the others read as empty (unmerge and fill them to keep the values)",
            InputWarning,
            stacklevel=3,
        )


def _header(cells) -> list[str]:
    header = [_cell_text(v) for v in cells]
    while header and header[-1] == "":  # formatting often extends a sheet's width with empty columns
        header.pop()
    return header


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


def check_unique(path: Path, names: list[str]) -> None:
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise InputError(f"{path}: column {dupes[0]!r} appears twice in the header")


def detect_encoding(path: Path) -> str:
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
    raise InputError(
        f"{path}: neither UTF-8 nor GBK/GB18030 text; give its encoding (or convert the file)",
        path=path,
        key="encoding",
    )


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(1 << 20)


def csv_batches(
    path: Path, encoding: str | None, batch_size: int, select, layout: Layout
) -> Iterator[pa.Table]:
    encoding = encoding or detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"{path}: unknown encoding {encoding!r}") from None
    utf8 = codecs.lookup(encoding).name == "utf-8"
    at, line = _csv_header_line(path, encoding, layout)
    try:
        header = next(csv.reader([line.decode(encoding)]), [])
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: line {at} is not valid {encoding}; the file may be GBK or UTF-8: give its encoding",
            path=path,
            key="encoding",
        ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: line {at} is not a CSV header ({exc})", path=path) from None
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{path}: the file has no header row" + (f" at line {at}" if at > 1 else ""))
    header = [h if h.strip() else f"(blank column {i + 1})" for i, h in enumerate(header)]
    check_unique(path, header)
    header = renamed(path, header, layout.rename)
    # a legacy-encoded export may carry stray bytes in free-text columns: decode them as U+FFFD rather than
    # refusing the file (a damaged code then gets its own status); UTF-8 is validated by the parser itself
    read = pacsv.ReadOptions(
        encoding=encoding if utf8 else _lenient(encoding),
        block_size=1 << 22,
        column_names=header,
        skip_rows=at,
    )
    names = select(header)
    convert = pacsv.ConvertOptions(
        include_columns=names,
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = pacsv.open_csv(
            path,
            read_options=read,
            parse_options=_PARSE,
            convert_options=convert,
        )
        empty = True
        pending: list[pa.RecordBatch] = []
        rows = seen = in_cells = 0
        brk = 10 if b"\n" in _head(path) else 13  # the byte that ends a line: LF (or CRLF), else CR (old Mac)
        for batch in reader:
            empty = False
            in_cells += _check_runaway_quote(path, batch, len(header), at + 1 + seen, brk)
            seen += batch.num_rows
            pending.append(batch)
            rows += batch.num_rows
            while rows >= batch_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, batch_size)
                rest = table.slice(batch_size)
                pending, rows = rest.to_batches(), rest.num_rows
        # a column not read may hide line breaks in its cells (every column read: the cells were checked above)
        if len(names) < len(header) and _breaks_unread(path, brk, at, seen, in_cells):
            every = pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            )
            whole = pacsv.open_csv(path, read_options=read, parse_options=_PARSE, convert_options=every)
            seen = 0
            for batch in whole:
                _check_runaway_quote(path, batch, len(header), at + 1 + seen, brk)
                seen += batch.num_rows
        if rows:
            yield pa.Table.from_batches(pending)
        elif empty:
            yield pa.schema([(h, pa.string()) for h in names]).empty_table()
    except pa.ArrowInvalid as exc:
        if "Could not skip initial" in str(exc):  # a header line and nothing else
            yield pa.schema([(h, pa.string()) for h in names]).empty_table()
            return
        gbk = "UTF8" in str(exc)
        hint = "; hospital exports are often GBK: read it with the encoding gbk" if gbk else ""
        # pyarrow quotes the offending row; it holds patient data, which an error line must not repeat
        # (the row runs on over the line breaks of a quoted cell: everything after the count goes, whatever it holds)
        message = re.sub(
            r"(Expected \d+ columns, got \d+): .*", r"\1 (check its quoting)", str(exc), flags=re.S
        ).splitlines()[0]
        message = re.sub(r"Row #\d+: ", "", message)  # the row is named first, as every error names it
        row = _parse_error_row(path, read, convert)
        at_row = "" if row is None else f"row {row}: "
        raise InputError(
            f"{path}: {at_row}{message}{hint}", path=path, row=row, key="encoding" if gbk else None
        ) from None


#: How every CSV file is parsed: a quoted cell may hold line breaks (an address over two lines).
_PARSE = pacsv.ParseOptions(newlines_in_values=True)
_BREAKS = re.compile(r"\r\n|\r|\n")


def _check_runaway_quote(path: Path, batch: pa.RecordBatch, fields: int, first_row: int, brk: int) -> int:
    """Stop when a cell holds a line break followed by a line with at least ``fields - 1`` commas: a quote opened
    and not closed (引号未闭合) has swallowed the rows below it into one cell, and their cases would be lost
    without a word. A quoted address over two lines reads as before. Returns the line ends (bytes ``brk``) in the
    batch's cells.

    Per column, one pass of numpy over the text bytes (any byte below 14: a line break or another control
    character); only a column that has one is looked at exactly, and only its cells with a line break in Python.

    Raises
    ------
    InputError
        Naming the row where the quote opens (``first_row`` is the batch's first, docs/records.md §6) and the
        column, never the cell's content.
    """
    need, found = max(fields - 1, 1), 0
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        offsets, data = col.buffers()[1:3]
        if data is None or len(col) == 0:
            continue
        ends = np.frombuffer(offsets, np.int32, len(col) + 1, col.offset * 4)
        text = np.frombuffer(data, np.uint8)[ends[0] : ends[-1]]
        if not (text < 14).any():
            continue
        at = np.flatnonzero((text == 10) | (text == 13)) + ends[0]
        found += int(np.count_nonzero(text == brk))
        rows = np.unique(np.searchsorted(ends, at, side="right") - 1)
        for i, cell in zip(rows.tolist(), col.take(pa.array(rows)).to_pylist(), strict=True):
            taken = sum(1 for line in _BREAKS.split(cell or "")[1:] if line.count(",") >= need)
            if taken:
                raise InputError(
                    f"{path}: row {first_row + i}, column {name}: a quoted cell runs on over {taken} line(s) "
                    "that read as rows of the file, whose cases would be lost: an unterminated quote?",
                    path=path,
                    row=first_row + i,
                    column=name,
                )
    return found


def _breaks_unread(path: Path, brk: int, header_line: int, records: int, in_cells: int) -> bool:
    """Whether the file has more line ends than its lines above the data, its records and the line breaks in the
    cells read account for: a line break in a column not read (a quoted cell over lines, or a quote left open
    there), or a blank line. One pass of numpy over the file's bytes (about a tenth of its parse), in pieces that
    stay in the CPU's caches (0.5 -> 0.39 s on 1.5 GB, against pieces of 16 MiB)."""
    total, last = 0, b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 18):
            total += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == brk))
            last = chunk[-1:]
    ended = records if last == bytes([brk]) else records - 1
    return total - header_line - in_cells - ended > 0


def _parse_error_row(path: Path, read: pacsv.ReadOptions, convert: pacsv.ConvertOptions) -> int | None:
    """The row of a CSV file where pyarrow stops (on an error only): a second read on one thread, the only way
    pyarrow counts rows (``Row #N``: the lines skipped above the header, the header, then one per record; the
    number :func:`first_data_row` plus the case's place in the file gives, docs/records.md §6). None when that
    read does not stop at a numbered row."""
    read.use_threads = False
    try:  # the parse options of csv_batches
        for _ in pacsv.open_csv(
            path,
            read_options=read,
            parse_options=_PARSE,
            convert_options=convert,
        ):
            pass
    except pa.ArrowException as exc:
        found = re.search(r"\bRow #(\d+)", str(exc))
        return int(found.group(1)) if found else None
    except OSError:
        return None
    return None


def _csv_header_line(path: Path, encoding: str, layout: Layout) -> tuple[int, bytes]:
    """(1-based line of the header, its bytes): ``layout.header_row``, else found below title lines."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    if codecs.lookup(encoding).name == "utf-8" and head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    # the first lines only (a stray byte further down is the data's business); CR-only line ends too (old Mac)
    lines = re.split(rb"\r\n|\r|\n", head, maxsplit=_HEADER_SCAN)[:_HEADER_SCAN]
    at = _csv_header_row(lines, encoding) if layout.header_row is None else layout.header_row
    return at, lines[at - 1] if at <= len(lines) else b""


def _csv_header_row(lines: list[bytes], encoding: str) -> int:
    """1-based line of the header: the first of two fields or more among the first lines (title lines above it
    are skipped), else line 1."""
    for k, line in enumerate(lines):
        try:
            fields = next(csv.reader([line.decode(encoding, "replace")]), [])
        except csv.Error:
            return 1
        if sum(1 for x in fields if x.strip()) >= 2:
            return k + 1
    return 1


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
