"""The cases a settlement reads: grouped results joined with their discharges by ``case_id``, streamed.

Three shapes of input, read batch by batch as often as :func:`payment.settle.settle_batches` asks:

- one file with the discharge and the grouping columns: a Parquet file with the canonical names is read as it
  is, with the values normalised as every reader normalises them (value maps, trimmed ids, dates and numbers
  from text; dictionary columns on their dictionaries only), any other file through the discharge reader;
- grouped results (``drgdip group`` output) and the discharges that were grouped: joined by ``case_id``. When
  both list the same ids in the same order (what ``drgdip group`` writes) they are streamed side by side (memory
  bounded by the batch size); otherwise the grouping columns are looked up by ``case_id`` (memory: the grouping
  columns), and a case_id missing on either side, repeated, or empty is an :class:`InputError` — never a silent
  match by position.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.errors import InputError
from grouper.io.discharges import (
    BATCH_SIZE,
    DATE_COLUMNS,
    HeaderMapping,
    accepted_headers,
    check_dates,
    dataset_files,
    read_discharges,
    unreadable_dates,
)
from grouper.io.formats import PARQUET_SUFFIXES, Layout, first_data_row, raw_batches, read_ahead
from grouper.io.values import convert, strings
from grouper.plausibility import checked_stream
from grouper.schema import DISCHARGE_SCHEMA

__all__ = ["GROUPING_COLUMNS", "SETTLE_COLUMNS", "CaseSource", "grouping_only", "plausible"]

#: The canonical columns the settlement reads (routes, points, money, bed days); the others are not parsed.
SETTLE_COLUMNS = (
    "case_id", "patient_id", "hospital_id", "insurance_type", "admission_date", "discharge_date", "los_days",
    "department", "principal_dx", "principal_proc", "total_cost", "fund_paid", "patient_paid", "payment_method",
)  # fmt: skip
#: The columns of a grouped output (`drgdip group`, DIP or DRG, with explanations) besides case_id.
GROUPING_COLUMNS = frozenset(
    ("dip_group", "dip_kind", "dip_score", "aux_type", "aux_coef", "dip_status", "dip_avg_cost", "mdc",
     "adrg", "drg", "drg_status", "reason")
)  # fmt: skip
#: Canonical columns a case table must hold under their own names to be read as it is.
_CASE_COLUMNS = ("case_id", "hospital_id", "insurance_type", "total_cost")


def _names(path: Path, encoding: str | None, layout: Layout | None = None) -> list[str]:
    """The columns of a file as its reader names them; of a Parquet file, its header with one value read (a row
    read decodes a page of every column: 15-25 ms a call, three calls before a settlement starts reading)."""
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        return next(raw_batches(path, encoding=encoding, batch_size=1, layout=layout)).column_names
    header: list[str] = []

    def first(names: list[str]) -> list[str]:
        header.extend(names)
        return names[:1]

    next(raw_batches(path, batch_size=1, select=first, layout=layout))
    return header


def grouping_only(
    path: str | os.PathLike, *, encoding: str | None = None, layout: Layout | None = None
) -> bool:
    """Whether a file (a folder: its first Parquet part) holds only ``case_id`` and grouping columns (so its
    discharges are needed too); ``layout``: where the file keeps its header."""
    return set(_names(dataset_files(path)[0], encoding, layout)) <= GROUPING_COLUMNS | {"case_id"}


class CaseSource:
    """A re-readable stream of case tables (canonical + grouping columns), for
    :func:`payment.settle.settle_batches`: each call returns a fresh iterator over the same rows in the same order.

    Parameters
    ----------
    cases : a grouped output, or one table with the discharge and grouping columns (CSV, Excel, Parquet)
    discharges : the discharges that were grouped, when ``cases`` holds only grouping columns
    batch_size : rows per batch (memory; not results)
    encoding : CSV encoding; detected when None
    layout : how the discharge file (``discharges``, else ``cases``) lays out its table: sheet, header row,
        renamed headers (:class:`grouper.io.formats.Layout`)
    on_mapping : called once with that file's header mapping (``--show-mapping``), at the first pass
    skip : canonical columns not read from a Parquet file read as it is (those the policy does not use:
        ``patient_id`` without bed-day categories)

    Attributes
    ----------
    names : list of str   the columns of ``cases``
    """

    def __init__(
        self,
        cases: str | os.PathLike,
        discharges: str | os.PathLike | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        encoding: str | None = None,
        layout: Layout | None = None,
        on_mapping: Callable[[HeaderMapping], None] | None = None,
        skip: frozenset[str] = frozenset(),
    ):
        self.cases = Path(cases)
        self.discharges = None if discharges is None else Path(discharges)
        self.batch_size, self.encoding, self.layout = batch_size, encoding, layout
        self.columns = tuple(c for c in SETTLE_COLUMNS if c not in skip)
        self._on_mapping = on_mapping  # the discharge file's header mapping, reported at the first pass only
        self.names = _names(self.cases, None if discharges else encoding, None if discharges else layout)
        if discharges is None and set(self.names) <= GROUPING_COLUMNS | {"case_id"}:
            raise InputError(
                f"{self.cases} holds only grouping columns: the discharges that were grouped are needed too",
                path=self.cases,
            )
        self._keyed: _Keyed | None = None
        self._calls = 0
        self._first: int | None = None

    def __call__(self) -> Iterator[pa.Table]:
        """A fresh iterator over the case tables."""
        self._calls += 1
        if self.discharges is None:
            if _as_it_is(self.cases):
                # read, normalised and checked on the reading thread
                return read_ahead(
                    plausible(
                        _normalised(self.cases, self.batch_size, self.columns), self.cases, self._first_row
                    )
                )
            return plausible(self._same_file(), self.cases, self._first_row)
        return plausible(self._joined(), self.discharges, self._first_row)

    def _first_row(self) -> int:
        """The row number of the first case of the file that holds the discharges as the user sees it
        (:func:`grouper.io.formats.first_data_row`: title rows above the header counted; 1 for Parquet)."""
        if self._first is None:
            path = self.cases if self.discharges is None else self.discharges
            self._first = first_data_row(path, encoding=self.encoding, layout=self.layout)
        return self._first

    # ------------------------------------------------------------------------------------------------------

    def _base(self, path: Path) -> Iterator[pa.Table]:
        if _as_it_is(path):
            return _normalised(path, self.batch_size, self.columns)
        report, self._on_mapping = self._on_mapping, None
        return read_discharges(
            path,
            encoding=self.encoding,
            batch_size=self.batch_size,
            columns=list(SETTLE_COLUMNS),
            layout=self.layout,
            on_mapping=functools.partial(_cost_read, report),
            strict_dates=DATE_COLUMNS,
        )

    def _same_file(self) -> Iterator[pa.Table]:
        """Canonical columns through the discharge reader, grouping columns as written, from one file."""
        extra = [n for n in self.names if n in GROUPING_COLUMNS]
        grouped = (_text_as_null(t.select(extra)) for t in self._raw(self.cases, self.encoding, self.layout))
        for d, g in _aligned(read_ahead(self._base(self.cases)), read_ahead(grouped)):
            yield _attach(d, g)

    def _raw(self, path: Path, encoding: str | None, layout: Layout | None = None) -> Iterator[pa.Table]:
        return raw_batches(path, encoding=encoding, batch_size=self.batch_size, layout=layout)

    def _joined(self) -> Iterator[pa.Table]:
        """Discharges + grouping columns by case_id: side by side while the ids line up, else by lookup."""
        base = read_ahead(self._base(self.discharges))
        if self._keyed is not None:
            yield from self._keyed.join(base)
            return
        grouped = read_ahead(_text_as_null(t) for t in self._raw(self.cases, None))
        offset = 0
        for d, g in _aligned(base, grouped, strict=False):
            differ = _first_difference(d, g)
            if differ is not None:
                if self._calls > 1:
                    raise InputError(f"{self.cases}: the cases changed between passes", path=self.cases)
                i, here, there = differ
                row = first_data_row(self.cases) + offset + i  # of the grouped file
                where = f"row {row}: another case_id than in {self.discharges}"
                raise _NotAligned(where if here or there else f"row {row}: one file ends first")
            yield _attach(d, g)
            offset += d.num_rows

    def keyed(self, first_difference: str) -> None:
        """Switch to the lookup by case_id (``first_difference``: where the ids stopped lining up)."""
        self._keyed = _Keyed(
            self.cases, self.discharges, self.batch_size, self.encoding, first_difference, self._first_row
        )
        self._calls = 0

    def read_with_restart(self, run):
        """``run(self)``, run again with the lookup by case_id if the ids do not line up (first pass only)."""
        try:
            return run(self)
        except _NotAligned as exc:
            self.keyed(exc.where)
            return run(self)


def _cost_read(show: Callable[[HeaderMapping], None] | None, report: HeaderMapping) -> None:
    """``show(report)`` (``--show-mapping``), then: a discharge file without a total cost column is a whole-file
    error — every case would be COST_INVALID (docs/records.md §4), and a settlement that pays nothing by points is
    never what was meant."""
    if show is not None:
        show(report)
    if "total_cost" not in report.mapped.values():
        known = ", ".join(accepted_headers("total_cost"))
        raise InputError(
            f"{report.path}: no total cost column (accepted headers: {known}); the settlement prices each case "
            "by its cost",
            path=report.path,
            column="total_cost",
            key="header",
        )


def plausible(
    batches: Iterator[pa.Table], path: str | os.PathLike, first: int | Callable[[], int]
) -> Iterator[pa.Table]:
    """The batches, each checked against the hard plausibility rules (rows counted in ``path``, the file whose
    order the stream follows and that holds the money columns, from its first data row ``first``,
    :func:`grouper.io.formats.first_data_row`, or a function giving it); at a value outside its range the rest of
    the file is read to count the rows like it (:func:`grouper.plausibility.checked_stream`)."""
    return checked_stream(batches, where=path, first_row=first)


class _NotAligned(Exception):
    """The grouped rows do not line up with the discharges (internal: the join switches to a lookup)."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


class _Keyed:
    """Grouping columns looked up by case_id: every discharge's id once in the grouped file, and the reverse."""

    def __init__(
        self,
        grouped: Path,
        discharges: Path,
        batch_size: int,
        encoding: str | None,
        first: str,
        first_row: Callable[[], int],
    ):
        from grouper.batch import _hashes  # (the grouper's engine: imported when the ids do not line up)

        self.grouped_path, self.discharges_path = grouped, discharges
        self.first_row = first_row  # of the discharges, as the user counts them
        table = pa.concat_tables(_text_as_null(t) for t in raw_batches(grouped, batch_size=batch_size))
        if "case_id" not in table.column_names:
            raise InputError(f"{grouped}: no case_id column to match the discharges by", path=grouped)
        ids = _ids(table.column("case_id"))
        if ids.null_count:
            raise InputError(
                f"{grouped}: {ids.null_count:,} rows have no case_id; rows cannot be matched to {discharges}",
                path=grouped,
                column="case_id",
            )
        h, _ = _hashes(ids)
        order = np.argsort(h, kind="stable")
        self.hash, self.order, self.ids = h[order], order, ids
        repeated = self.hash[1:] == self.hash[:-1]
        if repeated.any():  # equal hashes: confirm exactly
            for k in np.flatnonzero(repeated):
                a, b = self.order[k], self.order[k + 1]
                if ids[int(a)].as_py() == ids[int(b)].as_py():
                    top = first_data_row(grouped)
                    raise InputError(
                        f"{grouped}: rows {top + int(a)} and {top + int(b)}, column case_id: the same case_id more than "
                        f"once; rows cannot be matched to {discharges} by case_id",
                        path=grouped,
                        row=top + int(b),
                        column="case_id",
                    )
        self.columns = table.drop_columns(["case_id"])
        self.first_difference = first
        self.seen = np.zeros(len(ids), np.bool_)

    def join(self, base: Iterator[pa.Table]) -> Iterator[pa.Table]:
        self.seen[:] = False
        offset = 0
        for d in base:
            idx = self._find(_ids(d.column("case_id")))
            missing = idx < 0
            if missing.any():
                i = int(np.argmax(missing))
                raise self._error(
                    f"row {self.first_row() + offset + i} of {self.discharges_path} has no grouped row "
                    f"({int(missing.sum()):,} in this batch)"
                )
            if self.seen[idx].any() or len(np.unique(idx)) != len(idx):
                raise self._error(f"a case_id of {self.discharges_path} is listed more than once")
            self.seen[idx] = True
            yield _attach(d, self.columns.take(pa.array(idx)))
            offset += d.num_rows
        if not self.seen.all():
            raise self._error(f"{int((~self.seen).sum()):,} grouped rows are not among the discharges")

    def _find(self, ids: pa.Array) -> np.ndarray:
        if ids.null_count:
            return np.where(ids.is_null().to_numpy(zero_copy_only=False), -1, self._find(ids.fill_null("")))
        from grouper.batch import _hashes

        h, _ = _hashes(ids)
        pos = np.searchsorted(self.hash, h)
        out = np.full(len(h), -1, np.int64)
        for shift in range(4):  # a run of equal hashes: confirm each candidate exactly
            k = np.minimum(pos + shift, len(self.hash) - 1) if len(self.hash) else pos
            if not len(self.hash):
                break
            cand = self.order[k]
            hit = (self.hash[k] == h) & (out < 0)
            if not hit.any():
                break
            same = pc.equal(self.ids.take(pa.array(cand[hit])), ids.filter(pa.array(hit)))
            rows = np.flatnonzero(hit)[pc.fill_null(same, False).to_numpy(zero_copy_only=False)]
            out[rows] = cand[rows]
        return out

    def _error(self, what: str) -> InputError:
        return InputError(
            f"{self.grouped_path}: rows do not line up with {self.discharges_path} and cannot be matched by "
            f"case_id (each case_id once on each side needed): {self.first_difference}; {what}",
            path=self.grouped_path,
            column="case_id",
        )


# ---------------------------------------------------------------------------------------------------------


def _as_it_is(path: Path) -> bool:
    """A Parquet file with the canonical names is typed already: read as it is (values normalised)."""
    if path.suffix.lower() not in PARQUET_SUFFIXES:
        return False
    return set(_CASE_COLUMNS) <= set(_names(path, None))


_CANONICAL = {f.name: f for f in DISCHARGE_SCHEMA}


def _normalised(path: Path, batch_size: int, columns: tuple[str, ...] = SETTLE_COLUMNS) -> Iterator[pa.Table]:
    """A canonical Parquet file batch by batch, its values normalised as the discharge reader normalises them
    (a date written but not readable is an error there too); only the columns the settlement reads (discharge and
    grouping columns; of the first, ``columns``)."""

    def select(headers: list[str]) -> list[str]:
        return [h for h in headers if h in columns or h in GROUPING_COLUMNS]

    def rest(column: str, header: str) -> int:  # the file's other unreadable dates (on an error only)
        return sum(
            int(unreadable_dates(t.column(header), convert(_CANONICAL[column], t.column(column))).sum())
            for t in batches
        )

    offset = 0
    batches = raw_batches(path, batch_size=batch_size, select=select)
    for t in batches:
        out = _normalise(t)
        dates = {c: c for c in DATE_COLUMNS if c in t.column_names}
        check_dates(path, t, out, dates, offset, lambda: first_data_row(path), rest)
        offset += t.num_rows
        yield out


def _normalise(table: pa.Table) -> pa.Table:
    """The canonical columns of a typed table normalised in place (other columns and types kept): text is trimmed
    and value-mapped (``310`` → employee), text dates and numbers parsed; a dictionary column is converted on its
    dictionary only (cheap, and its type is kept)."""
    for i, name in enumerate(table.column_names):
        field = _CANONICAL.get(name)
        if field is None or name in GROUPING_COLUMNS or name not in SETTLE_COLUMNS:
            continue
        col = one_array(table.column(i))  # (one chunk: not copied)
        typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            continue  # typed already
        if pa.types.is_dictionary(col.type) and pa.types.is_string(field.type):
            new = pa.DictionaryArray.from_arrays(col.indices, convert(field, col.dictionary))
        else:
            new = convert(field, col.cast(typ) if pa.types.is_dictionary(col.type) else col)
        table = table.set_column(i, name, new)
    return table


def _text_as_null(table: pa.Table) -> pa.Table:
    """Text columns of a grouped file as written, empty cells null (CSV and Excel give "")."""
    cols = [
        strings(c) if pa.types.is_string(c.type) or pa.types.is_large_string(c.type) else c
        for c in table.columns
    ]
    return pa.table(cols, names=table.column_names)


def _ids(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """case_ids as the discharge reader gives them: text, trimmed, empty → null."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return strings(col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col)


def _first_difference(d: pa.Table | None, g: pa.Table | None) -> tuple[int, str | None, str | None] | None:
    """(index, grouped id, discharge id) of the first row whose case_ids differ; None when all agree."""
    if d is None or g is None:
        return 0, None, None
    if "case_id" not in g.column_names:
        return None
    a, b = _ids(d.column("case_id")), _ids(g.column("case_id"))
    if a.equals(b):
        return None
    same = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    same |= pc.and_(a.is_null(), b.is_null()).to_numpy(zero_copy_only=False)
    if same.all():
        return None
    i = int(np.argmin(same))
    return i, b[i].as_py(), a[i].as_py()


def _attach(base: pa.Table, grouped: pa.Table) -> pa.Table:
    """The grouping columns set on (or added to) the discharge columns, row for row."""
    for name in grouped.column_names:
        if name != "case_id":
            col = grouped.column(name)
            if name in base.column_names:
                base = base.set_column(base.schema.get_field_index(name), name, col)
            else:
                base = base.append_column(name, col)
    return base


def _aligned(a: Iterator[pa.Table], b: Iterator[pa.Table], *, strict: bool = True):
    """Pairs of equal-length slices of two row streams, however each stream was cut into batches; with
    ``strict=False`` a stream that ends first gives ``None`` on its side (once)."""
    ta, tb = next(a, None), next(b, None)
    while ta is not None and tb is not None:
        n = min(ta.num_rows, tb.num_rows)
        yield ta.slice(0, n), tb.slice(0, n)
        ta = ta.slice(n) if ta.num_rows > n else next(a, None)
        tb = tb.slice(n) if tb.num_rows > n else next(b, None)
    if (ta is not None and ta.num_rows) or (tb is not None and tb.num_rows):
        if strict:
            raise InputError("the two streams of one file do not have the same rows")
        yield (
            (ta if ta is not None and ta.num_rows else None),
            (tb if tb is not None and tb.num_rows else None),
        )
