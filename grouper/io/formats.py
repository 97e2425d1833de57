"""Format readers: CSV (UTF-8 / GBK / GB18030, detected), Excel (.xlsx, streamed) and Parquet → raw record batches
with the file's own headers; every table drgdip reads goes through them (grouper.io.discharges, grouper.io.tables).

CSV and Excel cells arrive as text; Parquet as typed. Whole-file problems raise ``InputError`` naming the file; an
error line never repeats a row of the file.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import os
import re
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper.errors import InputError

__all__ = [
    "EXCEL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "InputWarning",
    "one_line",
    "raw_batches",
    "read_ahead",
    "read_raw",
]

PARQUET_SUFFIXES = (".parquet", ".pq")


class InputWarning(UserWarning):
    """Something read that the user should know about (a skipped sheet…); the CLI prints it as a warning line."""


EXCEL_SUFFIXES = (".xlsx", ".xlsm")


def raw_batches(
    path: str | os.PathLike,
    *,
    encoding: str | None = None,
    batch_size: int,
    select: Callable[[list[str]], list[str]] | None = None,
) -> Iterator[pa.Table]:
    """The file's rows as tables of at most ``batch_size`` rows (at least one table, maybe empty), by suffix.

    ``select(headers)`` returns the headers to read (all when None).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file", path=path)
    select = select or (lambda headers: list(headers))
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return parquet_batches(path, batch_size, select)
    if suffix in EXCEL_SUFFIXES:
        return excel_batches(path, batch_size, select)
    return csv_batches(path, encoding, batch_size, select)


def read_raw(path: str | os.PathLike, *, encoding: str | None = None) -> pa.Table:
    """A small table (hospitals, deductions, history…) as one raw table (CSV and Excel cells as text)."""
    batches = raw_batches(path, encoding=encoding, batch_size=1 << 20)
    try:
        return pa.concat_tables(list(batches))
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read the file past its header ({one_line(exc)})", path=path
        ) from None


def read_ahead(items: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The same items, the next one read in a background thread while the caller works on the current one.

    Reading and parsing (pyarrow, which releases the GIL) then overlaps with the caller's work on the other core.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


def one_line(exc: BaseException) -> str:
    """An exception's text on one line."""
    return re.sub(r"\s+", " ", str(exc)).strip()


def parquet_batches(path: Path, batch_size: int, select) -> Iterator[pa.Table]:
    try:
        reader = pq.ParquetFile(
            path, pre_buffer=False, page_checksum_verification=True
        )  # pre-buffering keeps every row group read
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    check_unique(path, reader.schema_arrow.names)
    names = select(reader.schema_arrow.names)
    empty = True
    batches = reader.iter_batches(batch_size=batch_size, columns=names)
    while True:
        try:
            batch = next(batches, None)
        except (OSError, pa.ArrowException) as exc:  # a page whose checksum fails, a truncated column chunk…
            damaged = "checksum" in str(exc).lower()
            what = "a data page fails its checksum: the file is damaged" if damaged else one_line(exc)
            raise InputError(f"{path}: not a readable Parquet file ({what})", path=path) from None
        if batch is None:
            break
        empty = False
        yield pa.Table.from_batches([batch])
    if empty:
        yield reader.schema_arrow.empty_table().select(names)


def excel_batches(path: Path, batch_size: int, select) -> Iterator[pa.Table]:
    """Every sheet whose header is the first sheet's, in order, streamed row by row (openpyxl read-only mode),
    every cell as text; a sheet with another header (or none) is skipped with a warning naming it."""
    import openpyxl  # only for Excel inputs: it takes a tenth of a second to import

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        sheets = list(book.worksheets)
        rows = sheets[0].iter_rows(values_only=True)
        header = _header(next(rows, ()))
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise InputError(f"{path}: not a readable Excel workbook ({one_line(exc)})", path=path) from None
    try:
        if not header:
            raise InputError(f"{path}: the first sheet has no header row", path=path)
        header = [h if h else f"(blank column {i + 1})" for i, h in enumerate(header)]
        check_unique(path, header)
        names = select(header)
        keep = [header.index(h) for h in names]
        batch: list[tuple] = []
        emitted = False
        for k, sheet in enumerate(sheets):
            if k:
                rows = sheet.iter_rows(values_only=True)
                other = _header(next(rows, ()))
                other = [h if h else f"(blank column {i + 1})" for i, h in enumerate(other)]
                if other != header:
                    if other:
                        warnings.warn(
                            f"{path}: sheet {sheet.title!r} has another header than the first sheet; not read",
                            InputWarning,
                            stacklevel=2,
                        )
                    continue
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


def csv_batches(path: Path, encoding: str | None, batch_size: int, select) -> Iterator[pa.Table]:
    encoding = encoding or detect_encoding(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"{path}: unknown encoding {encoding!r}") from None
    utf8 = codecs.lookup(encoding).name == "utf-8"
    try:  # line 1 only (a stray byte further down is the data's business); utf-8-sig drops a BOM first
        with path.open("rb") as f:
            head = f.read(1 << 20)
        line = re.split(rb"\r\n|\r|\n", head, maxsplit=1)[0]  # CR-only line ends too (old Mac exports)
        header = next(csv.reader([line.decode("utf-8-sig" if utf8 else encoding)]), [])
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: line 1 is not valid {encoding}; the file may be GBK or UTF-8: give its encoding",
            path=path,
            key="encoding",
        ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: line 1 is not a CSV header ({exc})", path=path) from None
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{path}: the file has no header row")
    header = [h if h.strip() else f"(blank column {i + 1})" for i, h in enumerate(header)]
    check_unique(path, header)
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
        gbk = "UTF8" in str(exc)
        hint = "; hospital exports are often GBK: read it with the encoding gbk" if gbk else ""
        # pyarrow quotes the offending row; it holds patient data, which an error line must not repeat
        # (the row runs on over the line breaks of a quoted cell: everything after the count goes, whatever it holds)
        message = re.sub(
            r"(Expected \d+ columns, got \d+): .*", r"\1 in a row (check its quoting)", str(exc), flags=re.S
        ).splitlines()[0]
        raise InputError(f"{path}: {message}{hint}", path=path, key="encoding" if gbk else None) from None


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
