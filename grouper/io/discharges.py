"""Discharge files (结算清单 exports) and in-memory tables onto the canonical schema (grouper/schema.py).

Header aliases (4101A field names, Chinese export headers; data in ``codebooks/records/column_aliases.csv``),
numbered list columns (``其他诊断编码1…n``), ``|``-separated lists, value maps (``男``→1, ``310``→employee),
numbers and dates are applied the same way to every batch of every format (grouper.io.formats reads CSV, Excel
and Parquet) and to an in-memory table (:func:`canonicalise`). A value that is present but unreadable never stops
a batch: integer fields get ``-1`` (the grouper turns it into a status), other fields null. Whole-file problems
raise ``InputError`` naming the file and the column.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grouper._chunks import one_array
from grouper.errors import InputError
from grouper.io.formats import (
    PARQUET_SUFFIXES,
    InputWarning,
    Layout,
    first_data_row,
    one_line,
    raw_batches,
    read_ahead,
    renamed,
    worked_ahead,
)
from grouper.io.paths import kind_of
from grouper.io.values import (
    _MOSTLY_DISTINCT,
    CodeReading,
    as_written,
    code_list,
    code_reading,
    convert,
    date_list,
    strings,
)
from grouper.plausibility import check_table, checked_stream, column_label
from grouper.resources import text_columns
from grouper.schema import AS_WRITTEN, DISCHARGE_SCHEMA, LIST_COLUMNS, REQUIRED_COLUMNS

__all__ = [
    "BATCH_SIZE",
    "DATE_COLUMNS",
    "HeaderMapping",
    "accepted_headers",
    "as_discharges",
    "canonicalise",
    "check_dates",
    "check_years",
    "count_rows",
    "dataset_files",
    "part_names",
    "read_cases",
    "read_discharges",
    "read_discharges_keeping",
    "to_arrow",
    "typed_columns",
    "unreadable_dates",
]

BATCH_SIZE = 1 << 18
#: Threads reading a text file's batches onto the canonical schema side by side (the parse has one of its own).
_CANONICAL_WORKERS = 2
#: The date columns a written-but-unreadable value stops a run on (``strict_dates``): settle, audit, catalog, weights.
DATE_COLUMNS = ("admission_date", "discharge_date")
#: The single-code columns ``codes="verbatim"`` keeps as written (the list columns too).
_CODES = ("principal_dx", "principal_proc")
#: What an in-memory table is called in an error.
_IN_MEMORY = "the table"


@dataclass
class HeaderMapping:
    """How a file's headers were read (表头映射): each read header's canonical column, the headers ignored on
    purpose (名称 columns, the patient's name: ``column_aliases.csv`` rows without a column), the headers that
    feed a column another header already feeds, the headers not recognised at all, and those of them kept."""

    path: str
    mapped: dict[str, str] = dataclasses.field(default_factory=dict)
    ignored: list[str] = dataclasses.field(default_factory=list)
    unused: dict[str, str] = dataclasses.field(default_factory=dict)
    unrecognised: list[str] = dataclasses.field(default_factory=list)
    kept: list[str] = dataclasses.field(
        default_factory=list
    )  #: not recognised, but carried into the output as text

    def lines(self) -> list[str]:
        """The mapping as lines for a person (``header → column``)."""
        out = [f"{self.path}:"]
        out += [f"  {h} → {c}" for h, c in self.mapped.items()]
        out += [f"  {h} → (not read: {c} is read from another column)" for h, c in self.unused.items()]
        out += [f"  {h} → (ignored on purpose)" for h in self.ignored]
        out += [f"  {h} → (kept as text in the output)" for h in self.kept]
        out += [f"  {h} → (not recognised)" for h in self.unrecognised]
        return out


@cache
def _aliases() -> dict[str, tuple[str, int]]:
    """Header key → (canonical column, rank): when a file has two aliases of one column, the lower rank (the
    earlier row of column_aliases.csv, e.g. setl_id before mdtrt_id) wins. Column ``""``: ignored on purpose."""
    table = text_columns("records", "column_aliases.csv")
    return {
        _key(a): (c, rank) for rank, (a, c) in enumerate(zip(table["alias"], table["column"], strict=True))
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
    codes: CodeReading = "clean",
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    strict_dates: Iterable[str] = (),
) -> Iterator[pa.Table]:
    """Read a discharge file (出院病例) as canonical tables, one per batch; memory is bounded by ``batch_size``.

    Parameters
    ----------
    path : CSV (``|``-separated list columns), ``.xlsx`` or ``.parquet`` file
    encoding : CSV encoding (``utf-8``, ``gbk``, ``gb18030``); detected from the first MiB when None
    batch_size : rows per batch
    columns : canonical columns to read (the rest stay null and are not parsed); all when None
    codes : ``"clean"`` trims codes; ``"verbatim"`` keeps them exactly as written (``group_drg(..., codes=)``)
    layout : sheet, header row and renamed headers (:class:`grouper.io.formats.Layout`)
    on_mapping : called once with the file's :class:`HeaderMapping` (``--show-mapping``); headers not recognised
        are also an :class:`InputWarning`
    strict_dates : date columns (``discharge_date``…) where a value written but not readable as a date is an
        :class:`InputError` (:func:`check_dates`) rather than empty: the settlement's period depends on them

    Yields
    ------
    pa.Table with the columns of ``DISCHARGE_SCHEMA`` (absent ones all-null), rows in file order.
    """
    for table, _ in read_discharges_keeping(
        path,
        encoding=encoding,
        batch_size=batch_size,
        columns=columns,
        codes=codes,
        layout=layout,
        on_mapping=on_mapping,
        strict_dates=strict_dates,
    ):
        yield table


def read_discharges_keeping(
    path: str | os.PathLike,
    *,
    keep: Sequence[str] = (),
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    columns: Iterable[str] | None = None,
    codes: CodeReading = "clean",
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    strict_dates: Iterable[str] = (),
    encoded: bool = False,
) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """:func:`read_discharges`, each batch with a second table: the file's columns named in ``keep`` (病案号,
    科室, 总费用…), under their own headers, to carry into an output (None when ``keep`` is empty). A kept header that feeds a canonical column
    holds the canonical value (a number, a date), any other one its text.

    ``encoded``: the code columns (``principal_dx``, ``principal_proc``, ``other_dx``, ``other_procs``) of a
    Parquet file stay dictionary-encoded (字典编码) as the file holds them: ``dictionary<string>`` and lists of
    it, each distinct spelling read and cleaned once (the groupers take them; other files give plain text); so
    does ``sex_text`` when the file holds it dictionary-encoded.

    Raises
    ------
    InputError
        A header of ``keep`` that the file does not have.
    """
    path = Path(path)
    verbatim = code_reading(codes) == "verbatim"
    wanted_columns = None if columns is None else set(columns) | set(REQUIRED_COLUMNS)
    if wanted_columns is not None:
        wanted_columns |= {AS_WRITTEN[c] for c in wanted_columns if c in AS_WRITTEN}
    mapping: dict[str, list[str]] = {}
    kept: dict[str, str | None] = {}  # kept header → canonical column it feeds (None: raw text)

    def select(headers: list[str]) -> list[str]:
        """Map the file's headers; returns the headers to read, in file order."""
        found, report = _column_mapping(path, headers)
        for h in keep:
            if h not in headers:
                raise InputError(
                    f"{path}: no column {h!r} to keep (the header has {', '.join(headers[:8])}…)",
                    path=path,
                    column=h,
                    key="keep",
                )
            kept[h] = report.mapped.get(h)
        report.kept = [h for h in report.unrecognised if h in kept]
        report.unrecognised = [h for h in report.unrecognised if h not in kept]
        if kept:  # a kept header feeding a canonical column is read whatever ``columns`` says
            wanted = None if wanted_columns is None else wanted_columns | {c for c in kept.values() if c}
        else:
            wanted = wanted_columns
        mapping.update({c: h for c, h in found.items() if wanted is None or c in wanted})
        if report.unrecognised:
            warnings.warn(
                f"{path}: {len(report.unrecognised)} column(s) not recognised, not read: "
                f"{', '.join(report.unrecognised)}",
                InputWarning,
                stacklevel=2,
            )
        if on_mapping is not None:
            on_mapping(report)
        read = {h for hs in mapping.values() for h in hs} | {h for h, c in kept.items() if c is None}
        return [h for h in headers if h in read]

    def dictionaries(names: list[str]) -> set[str]:
        """The headers read dictionary-encoded: all text that feeds a canonical column but the ids and amounts
        (and, but in Parquet, where a list is a list, the list columns' ``|``-joined text): those are nearly
        as distinct as rows."""
        parquet = path.suffix.lower() in PARQUET_SUFFIXES
        skip = _DISTINCT if parquet else (*_DISTINCT, *LIST_COLUMNS)
        distinct = {h for c in skip for h in mapping.get(c, [])}
        return {h for hs in mapping.values() for h in hs if h not in distinct} & set(names)

    parquet = path.suffix.lower() in PARQUET_SUFFIXES
    batches = raw_batches(
        path,
        encoding=encoding,
        batch_size=batch_size,
        select=select,
        layout=layout,
        encoded=dictionaries if encoded and parquet else None,
    )

    def canonical(raw: pa.Table) -> tuple[pa.Table, pa.Table]:
        if encoded and not parquet:  # a text file's repeating text, encoded here rather than by the parser
            raw = _dictionary_encoded(raw, dictionaries(raw.column_names))
        if layout is not None and layout.values:
            raw = _mapped_values(raw, mapping, layout.values, path)
        return raw, _canonical(raw, mapping, path, verbatim, encoded)

    if parquet:
        read = map(canonical, batches)
    else:  # a text file: parsed on a thread of its own, each batch's values read on two more (_CANONICAL_WORKERS)
        read = worked_ahead(canonical, read_ahead(batches, first_here=True), _CANONICAL_WORKERS)
    strict_dates, offset = tuple(strict_dates), 0
    while True:
        try:  # a damaged data page or an unconvertible column type is a whole-file problem: one clear line
            raw, table = next(read, (None, None))
        except InputError:
            raise
        except (OSError, pa.ArrowException, ValueError, TypeError) as exc:
            raise InputError(
                f"{path}: cannot read the file past its header: {one_line(exc)}", path=path
            ) from None
        if table is None:
            return
        if strict_dates:
            sources = {c: mapping[c][0] for c in strict_dates if c in mapping}

            def rest(column: str, header: str) -> int:  # the file's other unreadable dates (on an error only)
                return sum(int(unreadable_dates(r.column(header), t.column(column)).sum()) for r, t in read)

            check_dates(
                path,
                raw,
                table,
                sources,
                offset,
                lambda: first_data_row(path, encoding=encoding, layout=layout),
                rest,
            )
        offset += table.num_rows
        extra = {
            h: _kept(table.column(c)) if c is not None else strings(raw.column(h)) for h, c in kept.items()
        }
        yield table, pa.table(extra) if extra else None


def _dictionary_encoded(raw: pa.Table, headers: set[str]) -> pa.Table:
    """``raw`` with the text columns of ``headers`` dictionary-encoded (字典编码), one dictionary per column.

    Arrow's CSV parser can encode them itself, but at about twice the cost of Arrow's hash kernel and on the one
    thread that parses the file; here each batch's own thread does it."""
    for h in headers:
        column = raw.column(h)
        if pa.types.is_string(column.type):
            at = raw.schema.get_field_index(h)
            raw = raw.set_column(at, h, pc.dictionary_encode(column.combine_chunks()))
    return raw


def _kept(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A canonical column as an output carries it: an amount that was not a number (UNREADABLE) is empty there, as
    in the file's own export, not ``nan``; so is a whole number that was not one (``abc``, ``3天``: -1 in the
    canonical column)."""
    arr = one_array(column)
    if pa.types.is_floating(arr.type):
        return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    if pa.types.is_integer(arr.type):
        return pc.if_else(pc.equal(arr, -1), pa.scalar(None, arr.type), arr)
    if pa.types.is_dictionary(arr.type):  # an encoded code column: its text
        return arr.cast(arr.type.value_type)
    if pa.types.is_list(arr.type) and pa.types.is_dictionary(arr.type.value_type):
        return arr.cast(pa.list_(arr.type.value_type.value_type))
    return arr


def check_dates(
    path: Path,
    raw: pa.Table,
    table: pa.Table,
    sources: dict[str, str],
    offset: int,
    first: Callable[[], int],
    rest: Callable[[str, str], int] | None = None,
) -> None:
    """Raise an :class:`InputError` for a date written in ``raw`` that ``table`` could not read (``07/05/2025``:
    day and month cannot be told apart; ``2025-02-30``), naming the file, the first such row (``offset``: rows
    before this batch; ``first()``: the file's first data row, :func:`grouper.io.formats.first_data_row`), the
    column and how many more rows of the file are like it — never the value.

    ``sources``: canonical date column of ``table`` → the column of ``raw`` it was read from. ``rest(column,
    header)``: how many such dates the rest of the file holds (it reads on; without it, or when the rest of the file
    cannot be read, the count is of this batch: "at least")."""
    for column, header in sources.items():
        bad = unreadable_dates(raw.column(header), table.column(column))
        if bad.any():
            i, more, exact = int(bad.argmax()), int(bad.sum()) - 1, rest is not None
            if rest is not None:
                try:
                    more += rest(column, header)
                except (InputError, OSError, pa.ArrowException, ValueError, TypeError):
                    exact = False
            row = first() + offset + i
            raise InputError(
                f"{path}: row {row}, column {column_label(column, {column: header})}: not a date as drgdip reads dates (YYYY-MM-DD, YYYY/M/D, "
                "YYYYMMDD, YYYY年M月D日; dd/mm/yyyy is not read: day and month cannot be told apart)"
                + (f"; {'' if exact else 'at least '}{more:,} more row(s) like it" if more else ""),
                path=path,
                row=row,
                column=column,
            )


def check_years(where: str | os.PathLike, written: pa.Table, read: pa.Table, first: int) -> None:
    """Raise an :class:`InputError` for a ``year`` of a history written but not a year (``abc``, ``2025年``, a
    negative number): read as unknown it would silently take the case out of the years. Names ``where``, the first
    such row (``first``: the row of the table's first case) and the whole table's count, never the value."""
    if "year" not in written.column_names:
        return
    bad = pc.and_(pc.is_valid(written.column("year")), pc.less(read.column("year"), 0))
    bad = pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
    if bad.any():
        row, more = first + int(bad.argmax()), int(bad.sum()) - 1
        raise InputError(
            f"{where}: row {row}, column year: not a year (a whole number such as 2025)"
            + (f"; {more:,} more row(s) like it" if more else ""),
            path=where,
            row=row,
            column="year",
        )


def unreadable_dates(written: pa.ChunkedArray | pa.Array, read: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Where a date column was written (text) but not read (empty in ``read``); typed dates are read as they are."""
    if pa.types.is_temporal(written.type):
        return np.zeros(len(written), bool)
    return pc.and_(pc.is_valid(strings(written)), pc.is_null(read)).to_numpy(zero_copy_only=False)


def to_arrow(data) -> pa.Table:
    """Anything Arrow-compatible as an Arrow table: a ``pa.Table``, a record batch or a list of them, a record
    batch reader, a pandas DataFrame (index dropped) or any object with the Arrow PyCapsule interface."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, list | tuple) and data and all(isinstance(b, pa.RecordBatch) for b in data):
        return pa.Table.from_batches(list(data))
    try:
        pandas = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
        if pandas is not None and isinstance(
            data, pandas.DataFrame
        ):  # mixed text and numbers are refused here
            return pa.Table.from_pandas(data, preserve_index=False)
        return pa.table(data)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise InputError(f"not an Arrow-compatible table ({type(data).__name__}): {one_line(exc)}") from None


def as_discharges(table) -> pa.Table:
    """An Arrow-compatible table (pandas DataFrame, Arrow table or batches) as the groupers take it.

    Values are used as they are (absent optional columns count as null). A table whose headers are an export's
    (``结算ID``, ``主要诊断编码``…: aliases of canonical columns) and that lacks ``case_id`` or ``principal_dx`` is
    refused with an :class:`InputError` pointing to :func:`canonicalise`, never grouped as ``CASE_ID_MISSING``.
    """
    t = to_arrow(table)
    missing = [c for c in REQUIRED_COLUMNS if c not in t.column_names]
    if missing:
        aliases = _aliases()
        exported = [h for h in t.column_names if _key(h) in aliases and aliases[_key(h)][0] not in ("", h)]
        if exported:
            raise InputError(
                f"{_IN_MEMORY} has no {missing[0]!r} column but export headers ({', '.join(exported[:3])}…): "
                "canonicalise(table) maps them",
                column=missing[0],
            )
    return t


def canonicalise(table, *, codes: CodeReading = "clean") -> pa.Table:
    """Apply to an in-memory table exactly what :func:`read_discharges` applies to a file.

    Header aliases (``结算ID`` → ``case_id``), numbered and ``|``-separated code lists, value maps (``男`` → 1,
    ``310`` → employee), trimmed text, numbers and dates.

    Parameters
    ----------
    table : pa.Table, pandas.DataFrame, record batches, or any Arrow-compatible table
    codes : ``"clean"`` trims codes; ``"verbatim"`` keeps them exactly as written

    Returns
    -------
    pa.Table with the columns of ``DISCHARGE_SCHEMA`` (absent ones all-null), rows in the same order.

    Raises
    ------
    InputError
        A required column (``case_id``, ``principal_dx``) is missing under every accepted header, or a column
        cannot be read as its canonical type.
    """
    verbatim = code_reading(codes) == "verbatim"
    raw = to_arrow(table)
    mapping, _ = _column_mapping(_IN_MEMORY, raw.column_names)
    raw = raw.select(sorted({h for hs in mapping.values() for h in hs}, key=raw.column_names.index))
    try:
        return _canonical(raw, mapping, _IN_MEMORY, verbatim)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InputError(f"{_IN_MEMORY}: {one_line(exc)}") from None


def dataset_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files of a dataset, in the order both engines read them: each path as given, a folder as its
    ``*.parquet`` files found recursively (hive partitions such as ``year=2025/hospital=H01/``), sorted by path;
    names starting with ``.`` or ``_`` (temporary files, ``_SUCCESS``) are skipped. Other paths are kept as they
    are (a missing file is reported by its reader).

    Raises
    ------
    InputError
        A folder without Parquet files.
    """
    return [f for f, _ in _dataset(paths)]


def part_names(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """The name of each file of :func:`dataset_files` in a folder of parts: its path below the folder given (a
    file given by itself: its name), as ``.parquet``. Two files with one name are an :class:`InputError`."""
    names = [str(rel.with_suffix(".parquet")) for _, rel in _dataset(paths)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"two input files would be written as {twice[0]}: rename one", path=twice[0])
    return names


def _dataset(paths) -> list[tuple[Path, Path]]:
    """(file, its name relative to the folder given) for each file of the dataset, in order."""
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    files: list[tuple[Path, Path]] = []
    for p in paths:
        if kind_of(p) == "folder":
            found = sorted(
                f
                for f in p.rglob("*")
                if f.suffix.lower() in PARQUET_SUFFIXES
                and f.is_file()
                and not any(part[:1] in "._" for part in f.relative_to(p).parts)
            )
            if not found:
                raise InputError(f"{p}: no Parquet files found", path=p)
            files += [(f, f.relative_to(p)) for f in found]
        else:
            files.append((p, Path(p.name)))  # a file, or a missing path that its reader reports
    return files


def history_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files :func:`read_cases` reads, in its order: the files of :func:`dataset_files` (one rule for every
    command: a folder's ``*.parquet`` files, any case of suffix, recursively, sorted by path, names starting with
    ``.`` or ``_`` skipped), every path having to exist.

    Raises
    ------
    InputError
        A path that does not exist, a folder without Parquet files, or no path at all.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no history given")
    for p in paths:
        if kind_of(p) not in ("file", "folder"):
            raise InputError(f"{p}: no such file or folder", path=p)
    return dataset_files(paths)


def read_cases(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    columns: Iterable[str] | None = None,
    encoding: str | None = None,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    required: Iterable[str] = (),
    allow_empty: bool = False,
) -> pa.Table:
    """Past cases (历史病例) for building a catalogue or weights, as one table.

    Parquet files and folders (read recursively for ``*.parquet``) are read as they are (headers renamed by
    ``layout.rename``), keeping only ``columns`` that exist (all when None), but for their export headers
    (``病案号``, ``总费用``, ``其他手术操作编码1…n``): those feed their canonical columns as in
    :func:`read_discharges`, with its value maps, code lists, numbers and dates; when a file is CSV or Excel, every
    file goes through :func:`read_discharges` (canonical columns; ``layout`` and ``on_mapping`` as there). A
    Parquet column of dates or numbers stored as text is read as that reader reads it (``2025/05/07``). The
    hard plausibility rules (:mod:`grouper.plausibility`) are those of a settlement, and so is a date written but
    not readable (:func:`check_dates`): read as empty it would silently take the case out of the years.
    ``allow_empty``: a history without cases is an empty table, not an error (one part of a history read on a
    cluster's worker, read and checked as here).

    Raises
    ------
    InputError
        A path that does not exist, no Parquet file in the folders, a canonical column of ``required`` that no
        header of a file feeds (naming the file and the headers accepted), no case at all (unless
        ``allow_empty``), or a value outside its hard plausible range (a cost of 1e15 or ``inf``): one error
        naming the file, the row, the column and how many rows of the file are like it, never the value; the
        same for a date written but not readable (``07/05/2025``).
    """
    paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    files = history_files(paths)
    named = ", ".join(map(str, paths))
    if all(f.suffix.lower() in PARQUET_SUFFIXES for f in files):
        if layout is not None and layout.sheet is not None:
            raise InputError(
                f"{named}: a sheet is named but the history is Parquet", path=paths[0], key="sheet"
            )
        parts = []  # per file: read as it is, its export headers mapped, text dates and numbers read, checked
        for f in files:
            try:
                reader = pq.ParquetFile(f)
                names = reader.schema_arrow.names
            except (OSError, pa.ArrowException) as exc:
                raise InputError(f"{f}: not readable Parquet ({one_line(exc)})", path=f) from None
            header = renamed(f, names, layout.rename if layout is not None else {})
            exported, unused = _exported(f, header, tuple(required))
            own = [h for h in header if h not in unused and not any(h in hs for hs in exported.values())]
            available = own + list(exported)
            wanted = available if columns is None else [c for c in columns if c in available]
            sources = [h for c in wanted for h in exported.get(c, [c])]
            try:
                written = reader.read(columns=[names[header.index(h)] for h in sources]).rename_columns(
                    sources
                )
            except (OSError, pa.ArrowException) as exc:
                raise InputError(f"{f}: not readable Parquet ({one_line(exc)})", path=f) from None
            export = {c: hs for c, hs in exported.items() if c in wanted}
            read = _with_exported(
                f,
                typed_columns(written.select([c for c in wanted if c not in export])),
                written,
                export,
                wanted,
            )
            dates = {c: export.get(c, [c])[0] for c in DATE_COLUMNS if c in read.column_names}
            # the file is one table: the count of unreadable dates is the whole file's (nothing more to read)
            check_dates(f, written, read, dates, 0, lambda f=f: first_data_row(f), lambda *_: 0)
            check_years(f, written, read, first_data_row(f))
            check_table(
                read, where=f, first_row=first_data_row(f), headers={c: hs[0] for c, hs in export.items()}
            )
            parts.append(read)
        table = _combined(parts, named, paths[0])
    else:
        cols, required = None if columns is None else tuple(columns), tuple(required)
        headers: dict[str, str] = {}  # canonical column → the header of the file being read

        def mapped(report: HeaderMapping) -> None:  # a required column no header feeds: named with its file
            for col in required:
                if col not in report.mapped.values():
                    raise _missing(report.path, col)
            headers.clear()
            headers.update({c: h for h, c in report.mapped.items()})
            if on_mapping is not None:
                on_mapping(report)

        table = pa.concat_tables(
            t
            for f in files
            for t in checked_stream(
                read_discharges(
                    f,
                    encoding=encoding,
                    columns=cols,
                    layout=layout,
                    on_mapping=mapped,
                    strict_dates=DATE_COLUMNS,
                ),
                where=f,
                first_row=lambda f=f: first_data_row(f, encoding=encoding, layout=layout),
                headers=headers,
            )
        )
    if table.num_rows == 0 and not allow_empty:
        raise InputError(f"{named}: no cases in the history", path=paths[0])
    return table


def _exported(
    path: Path, header: list[str], required: tuple[str, ...]
) -> tuple[dict[str, list[str]], set[str]]:
    """The canonical columns a Parquet history's export headers feed (``总费用`` → ``total_cost``, numbered
    ``其他手术操作编码1…n`` → ``other_procs``), mapped as :func:`read_discharges` maps them, and the headers
    that feed a column another header already feeds (left out, as there). A canonical header feeds itself and
    stays as it is, and so do the headers the mapping does not know or ignores (``year``, ``drg``)."""
    mapping, report = _column_mapping(path, header, required=required)
    return {c: hs for c, hs in mapping.items() if hs != [c]}, set(report.unused)


def _with_exported(
    path: Path, read: pa.Table, written: pa.Table, export: dict[str, list[str]], order: list[str]
) -> pa.Table:
    """``read`` with the columns of ``export`` read from ``written`` as :func:`read_discharges` reads them (value
    maps, code lists, numbers and dates), in the order of ``order``."""
    if not export:
        return read
    canonical = _canonical(written.select([h for hs in export.values() for h in hs]), export, path)
    columns = {**{c: read.column(c) for c in read.column_names}, **{c: canonical.column(c) for c in export}}
    return pa.table({c: columns[c] for c in order})


def _combined(parts: list[pa.Table], named: str, path: Path) -> pa.Table:
    """The files of a history as one table, whatever the order of the files: a column stored as text in one
    file and dictionary-encoded in another is read as text in all (a number as the widest type)."""
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except pa.ArrowException:
        pass
    plain = [
        pa.table(
            [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in t.columns],
            t.schema.names,
        )
        for t in parts
    ]
    try:
        return pa.concat_tables(plain, promote_options="permissive")
    except pa.ArrowException as exc:
        raise InputError(
            f"{named}: its files store a column differently ({one_line(exc)})", path=path
        ) from None


#: The data year of a past case (``year``): a history's own column, read before its discharge date.
YEAR = pa.field("year", pa.int32())
_FIELDS = {f.name: f for f in (*DISCHARGE_SCHEMA, YEAR)}


def typed_columns(table: pa.Table) -> pa.Table:
    """A Parquet history read as it is, with its canonical date and number columns (and ``year``) that hold text
    (a date stored as ``"2025/05/07"``, a cost as ``"1234.5"``) read as the discharge reader reads them
    (:func:`convert`): the same values as from a file that stores them typed, or from CSV. Other columns as they
    are."""
    for i, name in enumerate(table.column_names):
        field = _FIELDS.get(name)
        if field is None or name in LIST_COLUMNS or pa.types.is_string(field.type):
            continue
        col = table.column(i)
        typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            table = table.set_column(i, name, convert(field, col.cast(pa.string())))
    return table


def count_rows(path: str | os.PathLike) -> int | None:
    """Rows of a file when known without reading it (Parquet), else None (for progress bars)."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):
            return None
    return None


# ---------------------------------------------------------------------------------------------------------
# mapping onto the canonical schema


def _column_mapping(
    path: Path | str, headers: list[str], required: Iterable[str] = REQUIRED_COLUMNS
) -> tuple[dict[str, list[str]], HeaderMapping]:
    """Canonical column → the file's header(s) that feed it (numbered list headers gathered in order), and the
    report of every header; a column of ``required`` no header feeds is an :class:`InputError`."""
    aliases = _aliases()
    chosen: dict[str, tuple[int, str]] = {}
    lists: dict[str, list[tuple[int, str]]] = {}
    seen: dict[str, str] = {}
    report = HeaderMapping(str(path))
    for h in headers:
        key = _key(h)
        if key in seen:
            raise InputError(
                f"{path}: columns {seen[key]!r} and {h!r} are the same column; keep one",
                path=_file(path),
                column=h,
            )
        seen[key] = h
        m = re.fullmatch(r"(.*?)(\d+)", key)
        if key not in aliases and m and m.group(1) in aliases:  # numbered: 其他诊断编码3, 其他诊断名称3
            col, number = aliases[m.group(1)][0], int(m.group(2))
            if col in LIST_COLUMNS:
                lists.setdefault(col, []).append((number, h))
            elif col == "":
                report.ignored.append(h)
            else:
                report.unrecognised.append(h)
            continue
        if key not in aliases:
            report.unrecognised.append(h)
            continue
        col, rank = aliases[key]
        if col == "":
            report.ignored.append(h)
        elif col in LIST_COLUMNS:
            lists.setdefault(col, []).append((0, h))
        elif col not in chosen or rank < chosen[col][0]:
            if col in chosen:
                report.unused[chosen[col][1]] = col
            chosen[col] = (rank, h)
        else:
            report.unused[h] = col
    mapping = {col: [h] for col, (_, h) in chosen.items()}
    mapping.update({col: [h for _, h in sorted(items, key=lambda x: x[0])] for col, items in lists.items()})
    fed = {h: col for col, hs in mapping.items() for h in hs}
    report.mapped = {h: fed[h] for h in headers if h in fed}
    report.unused = {h: report.unused[h] for h in headers if h in report.unused}
    for col in required:
        if col not in mapping:
            raise _missing(path, col)
    return mapping, report


def _missing(path: Path | str, column: str) -> InputError:
    """The error of a required ``column`` no header of the file at ``path`` feeds."""
    return InputError(
        f"{path}: required column {column!r} is missing (accepted headers: {', '.join(accepted_headers(column))})",
        path=_file(path),
        column=column,
        key="header",
    )


def accepted_headers(column: str) -> list[str]:
    """The header keys read as a canonical ``column`` (``column_aliases.csv``), sorted."""
    return sorted(a for a, (c, _) in _aliases().items() if c == column)


def _file(path: Path | str) -> Path | None:
    return None if path == _IN_MEMORY else Path(path)


def _mapped_values(
    raw: pa.Table, mapping: dict[str, list[str]], values: Mapping[str, Mapping[str, str]], path: Path
) -> pa.Table:
    """``raw`` with the values of ``values`` read as others (``Layout.values``): a key names a header of the file
    or the canonical column a header feeds; values are matched trimmed, the others stay as written."""
    for key, pairs in values.items():
        headers = [key] if key in raw.column_names else mapping.get(key, [])
        if not headers:
            raise InputError(
                f"{path}: no column {key!r} whose values to map (a header, or a column such as sex)",
                path=path,
                column=key,
                key="value_map",
            )
        written, read = pa.array(list(pairs), pa.string()), pa.array(list(pairs.values()), pa.string())
        for h in headers:
            text = raw.column(h).combine_chunks().cast(pa.string())
            at = pc.index_in(pc.utf8_trim_whitespace(text), value_set=written)
            new = pc.if_else(pc.is_null(at), text, pc.take(read, at))  # the others as written
            raw = raw.set_column(raw.schema.get_field_index(h), h, new)
    return raw


def _written(raw: pa.Table, source: str, of: list[str] | None, encoded: bool = False) -> pa.Array:
    """An as-written column (``sex_text``); where a file's own is empty (synth output saved as CSV) but its source
    column (``sex``) is filled, the source's text. ``encoded``: dictionary-encoded text stays so."""
    own = one_array(raw.column(source))
    text = as_written(raw.column(of[0])) if of and of[0] != source else None
    if text is not None and text.null_count < len(text):  # (a numeric source holds no spelling)
        own = as_written(own)
        blank = pc.fill_null(pc.equal(own, ""), True)
        return pc.if_else(pc.and_(blank, pc.is_valid(text)), text, own)
    if encoded and pa.types.is_dictionary(own.type) and pa.types.is_string(own.type.value_type):
        return own
    return as_written(own)


def _canonical(
    raw: pa.Table,
    mapping: dict[str, list[str]],
    path: Path | str,
    verbatim: bool = False,
    encoded: bool = False,
) -> pa.Table:
    n = raw.num_rows
    columns = []
    fields = []
    for field in DISCHARGE_SCHEMA:
        sources = mapping.get(field.name)
        if encoded and field.name in ENCODED_CODES and sources and len(sources) == 1:
            kept = _encoded_codes(raw.column(sources[0]), field, verbatim)
            if kept is not None:
                columns.append(kept)
                fields.append(pa.field(field.name, kept.type))
                continue
        fields.append(field)
        sources = mapping.get(field.name) or mapping.get(AS_WRITTEN.get(field.name, field.name))
        try:
            if not sources:
                columns.append(_nulls(n, field.type))
            elif field.name in AS_WRITTEN:
                columns.append(_written(raw, sources[0], mapping.get(AS_WRITTEN[field.name]), encoded))
                fields[-1] = pa.field(field.name, columns[-1].type)
            elif field.name in LIST_COLUMNS:
                if pa.types.is_date(field.type.value_type):
                    columns.append(date_list([raw.column(s) for s in sources]))
                else:
                    listed = code_list(
                        [raw.column(s) for s in sources], verbatim, encoded and field.name in ENCODED_CODES
                    )
                    columns.append(listed)
                    fields[-1] = pa.field(field.name, listed.type)
            elif verbatim and field.name in _CODES:
                text = raw.column(sources[0]).combine_chunks().cast(pa.string())
                columns.append(pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text))
            else:
                columns.append(convert(field, raw.column(sources[0])))
        except (pa.ArrowException, ValueError, TypeError) as exc:
            kind = raw.schema.field(sources[0]).type
            raise InputError(  # one_line: the library's reason without the value it quotes
                f"{path}: column {sources[0]!r} ({kind}) cannot be read as {field.name}: {one_line(exc)}",
                path=_file(path),
                column=sources[0],
            ) from None
    return pa.Table.from_arrays(columns, schema=pa.schema(fields) if encoded else DISCHARGE_SCHEMA)


#: Canonical columns whose values are mostly distinct: ids and amounts (never read dictionary-encoded).
_DISTINCT = (*_MOSTLY_DISTINCT, *(f.name for f in DISCHARGE_SCHEMA if pa.types.is_floating(f.type)))


@lru_cache(maxsize=2 * len(DISCHARGE_SCHEMA))
def _nulls(n: int, typ: pa.DataType) -> pa.Array:
    """An all-null column (one absent from the file), made once per batch length: Arrow arrays are immutable,
    and every batch of a file but its last has the same length."""
    return pa.nulls(n, typ)


#: The code columns :func:`read_discharges_keeping` keeps dictionary-encoded (``encoded``).
ENCODED_CODES = ("principal_dx", "principal_proc", "other_dx", "other_procs")
#: The type of an encoded code (``dictionary<int32, string>``) and of an encoded code list.
CODE = pa.dictionary(pa.int32(), pa.string())
CODE_LIST = pa.list_(CODE)


def _encoded_codes(column: pa.ChunkedArray, field: pa.Field, verbatim: bool) -> pa.Array | None:
    """A dictionary-encoded code column (or list of codes) as the canonical column would read it, still
    encoded: the distinct spellings cleaned as :func:`convert` / :func:`code_list` clean them (trimmed, empty →
    null, unless ``verbatim`` where only an empty code is null; the items of a list column as they are). None
    when the column is not dictionary-encoded text (it is then read as usual)."""
    arr = column.combine_chunks()
    if field.name in LIST_COLUMNS:
        if not (pa.types.is_list(arr.type) and pa.types.is_dictionary(arr.type.value_type)):
            return None
        if not pa.types.is_string(arr.type.value_type.value_type):
            return None
        return arr.cast(pa.list_(CODE)).fill_null(pa.scalar([], CODE_LIST))
    if not (pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type)):
        return None
    text = arr.dictionary
    clean = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text) if verbatim else strings(text)
    indices = arr.indices.cast(pa.int32())
    if clean.null_count:  # a spelling read as empty: the rows holding it are null, not an index to a null
        indices = pc.if_else(pc.is_valid(clean).take(indices), indices, pa.scalar(None, pa.int32()))
    return pa.DictionaryArray.from_arrays(indices, clean)
