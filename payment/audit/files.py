"""The audit from and to files: read discharge files, run the audit, write ``audit.xlsx``, one Parquet file per
table and ``report.html`` into a folder, all or nothing (:func:`grouper.io.atomic_folder`).

:func:`audit_to_folder` streams: the per-case tables (``cases``, ``flags``) go to their Parquet files batch by
batch, so memory stays bounded by the batch size and a few numbers per case whatever the number of cases.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from grouper import __version__
from grouper.errors import OutputError
from grouper.io import atomic_folder, count_rows, dataset_files, read_discharges
from grouper.io.discharges import DATE_COLUMNS, HeaderMapping
from grouper.io.formats import Layout, first_data_row
from grouper.io.paths import path_error
from grouper.io.writer import check_target, new_folders
from payment.audit.core import BATCH_SIZE, Audit, audit_batches
from payment.audit.excel import write_workbook
from payment.audit.report import write_report
from payment.cases import plausible

__all__ = ["OUTPUT_FILES", "ROW_GROUP", "audit_files", "audit_to_folder", "write_audit"]

#: Files every audit writes (plus ``<table>.parquet`` per table).
OUTPUT_FILES = ("audit.xlsx", "report.html")
#: Rows per Parquet row group of the streamed per-case tables, whatever the batches (a table of at most this
#: many rows is one row group, as :func:`write_audit` writes it: the same bytes).
ROW_GROUP = 1 << 17
#: Every table an audit can write (``doctors`` with an attending-doctor column, ``insurer`` with ``--insurer``).
TABLES = ("summary", "hospitals", "departments", "doctors", "groups", "flags", "qc", "cases", "insurer")
#: Tables written batch by batch by :func:`audit_to_folder`.
STREAMED = ("flags", "cases")


def _batches(inputs: list, encoding: str | None, batch_size: int, layout=None, on_mapping=None):
    """The ``batches()`` of :func:`audit_batches` (read again at each pass) and the row total when known.
    ``layout``: how the files lay out their table (sheet, header row, renamed headers, value maps);
    ``on_mapping``: called with each file's header mapping, once (not at every pass). A folder is its Parquet
    files (:func:`grouper.io.dataset_files`), read in the order the Dask engine reads them."""
    inputs = dataset_files(inputs)
    reported: set[int] = set()

    def mapped(k: int) -> Callable[[HeaderMapping], None] | None:
        if on_mapping is None or k in reported:
            return None
        reported.add(k)
        return on_mapping

    def batches() -> Iterator[pa.Table]:
        return (
            t
            for k, path in enumerate(inputs)
            for t in read_checked(path, encoding, batch_size, layout, mapped(k))
        )

    counts = [count_rows(p) for p in inputs]
    return inputs, batches, sum(counts) if None not in counts else None


def read_checked(
    path, encoding: str | None, batch_size: int, layout=None, on_mapping=None
) -> Iterator[pa.Table]:
    """A file's cases, batch by batch (both engines read them so); a cost of 1e15 or inf, or a date written but not
    readable (``07/05/2025``, :func:`grouper.io.discharges.check_dates`), stops the audit as it stops a settlement
    (plausibility.csv), naming the row as every command does
    (:func:`grouper.io.formats.first_data_row`) and how many rows of the file are like it."""
    stream = read_discharges(
        path,
        encoding=encoding,
        batch_size=batch_size,
        layout=layout,
        on_mapping=on_mapping,
        strict_dates=DATE_COLUMNS,  # read as empty, a date would silently drop the case's date-based findings
    )
    head = next(stream, None)  # the file's own errors (no such file…) come first
    if head is not None:
        first = lambda: first_data_row(path, encoding=encoding, layout=layout)  # noqa: E731 (on an error only)
        yield from plausible(itertools.chain([head], stream), path, first)


def audit_files(
    inputs: Iterable[str | os.PathLike],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    **options,
) -> Audit:
    """:func:`audit` of the cases of ``inputs``, read batch by batch at each pass, every table in memory (the
    per-case ones grow with the cases: :func:`audit_to_folder` writes them as they come); ``layout`` and
    ``on_mapping`` as for :func:`grouper.io.read_discharges` (the mapping reported once per file); options as for
    :func:`audit`."""
    _, batches, total = _batches(list(inputs), encoding, batch_size, layout, on_mapping)
    return audit_batches(batches, total=total, **options)


def _metadata(scheme: str, settings) -> dict[bytes, bytes]:
    return {b"drgdip.version": __version__.encode(), b"drgdip.scheme": scheme.encode(),
            b"drgdip.audit_settings_sha256": settings.sha256.encode()}  # fmt: skip


def write_audit(result: Audit, out: str | os.PathLike, *, if_exists: str = "error") -> list[Path]:
    """Write ``audit.xlsx``, ``report.html`` and ``<table>.parquet`` per table into the folder ``out``.

    All files appear together or none does; an existing one is an ``OutputError`` unless ``if_exists="replace"``.
    Returns the files written.
    """
    out = Path(out)
    names = [*OUTPUT_FILES, *(f"{name}.parquet" for name in result.tables)]
    meta = _metadata(result.scheme, result.settings)
    with atomic_folder(out, names, if_exists=if_exists) as tmp:
        for name, table in result.tables.items():
            pq.write_table(table.replace_schema_metadata(meta), tmp / f"{name}.parquet", compression="zstd")
        notes = write_workbook(result.tables, tmp / "audit.xlsx")
        write_report(result.tables, tmp / "report.html", scheme=result.scheme, notes=notes)
    return [out / n for n in names]


class _ParquetSink:
    """``sink(name, part)`` of :func:`audit_batches`: each per-case table into ``<name>.parquet`` of a folder, in
    row groups of :data:`ROW_GROUP` rows whatever the batches."""

    def __init__(self, folder: Path, out: Path, metadata: dict[bytes, bytes]) -> None:
        self.folder, self.out, self.metadata = folder, out, metadata
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.pending: dict[str, list[pa.Table]] = {}
        self.rows: dict[str, int] = {}

    def __call__(self, name: str, part: pa.Table) -> None:
        self.pending.setdefault(name, []).append(part)
        self.rows[name] = self.rows.get(name, 0) + part.num_rows
        while self.rows[name] >= ROW_GROUP:
            self._flush(name, ROW_GROUP)

    def _flush(self, name: str, n: int) -> None:
        table = pa.concat_tables(self.pending[name])
        group, rest = table.slice(0, n), table.slice(n)
        self.pending[name], self.rows[name] = [rest], rest.num_rows
        group = group.replace_schema_metadata(self.metadata).combine_chunks()
        try:
            if name not in self.writers:
                path = self.folder / f"{name}.parquet"
                self.writers[name] = pq.ParquetWriter(path, group.schema, compression="zstd")
            self.writers[name].write_table(group)
        except OSError as exc:
            raise path_error(self.out, exc, OutputError) from None

    def close(self) -> None:
        """Write the last row group of each table (an empty table: its schema alone) and close the files (a
        footer that cannot be written, as on a full disk, is an :class:`OutputError`)."""
        try:
            for name in self.pending:
                if self.rows[name] or name not in self.writers:
                    self._flush(name, self.rows[name])
            for writer in self.writers.values():
                writer.close()
        except OSError as exc:
            raise path_error(self.out, exc, OutputError) from None
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the files (the folder is removed by the caller); a file that cannot be closed is given up, not
        closed again when collected (which would print an ignored exception after the run's error line)."""
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception:
                writer.is_open = False
        self.writers.clear()

    def review(self) -> pa.Table:
        """The ``flags`` rows to review (the workbook's sheet and the page's list), read back a row group at a
        time."""
        file = pq.ParquetFile(self.folder / "flags.parquet")
        parts = [
            b.filter(pc.equal(b.column("severity"), "review"))
            for b in file.iter_batches(batch_size=ROW_GROUP)
        ]
        return pa.Table.from_batches(parts, file.schema_arrow)


def audit_to_folder(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    if_exists: str = "error",
    on_writing: Callable[[], None] | None = None,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    engine=None,
    **options,
) -> Audit:
    """Audit the cases of ``inputs`` into the folder ``out`` (the files of :func:`write_audit`, the same bytes),
    with memory bounded by ``batch_size`` and a few numbers per case: ``cases.parquet`` and ``flags.parquet``
    are written batch by batch. Returns the audit without those two tables (they are in the files).
    ``on_writing()`` is called before the workbook and the page are written; ``layout`` and ``on_mapping`` as for
    :func:`audit_files`. ``engine``: a :class:`grouper.distributed.Engine` (``"dask"``: the partitions, one per
    file, audited by the workers of a cluster, :mod:`payment.audit.distributed`; the same files). Other options as
    for :func:`audit`."""
    from grouper.codebook import DEFAULT_SCHEME
    from payment.audit.settings import AuditSettings

    out = Path(out)
    for name in (*OUTPUT_FILES, *(f"{t}.parquet" for t in TABLES)):
        check_target(out / name, if_exists)
    files, batches, total = _batches(list(inputs), encoding, batch_size, layout, on_mapping)
    if options.get("settings") is None:
        options["settings"] = AuditSettings.load()
    meta = _metadata(options.get("scheme") or DEFAULT_SCHEME, options["settings"])
    with _scratch(out) as scratch:
        sink = _ParquetSink(scratch, out, meta)
        try:
            with _parts(engine, files, encoding, batch_size, layout, options.get("on_batch")) as parts:
                result = audit_batches(batches, total=total, sink=sink, parts=parts, **options)
        except BaseException:
            sink.abort()
            raise
        sink.close()
        if on_writing is not None:
            on_writing()
        tables = {**result.tables, "flags": sink.review()}
        names = [*OUTPUT_FILES, *(f"{t}.parquet" for t in TABLES if t in result.tables or t in STREAMED)]
        with atomic_folder(out, names, if_exists=if_exists) as tmp:
            for name in STREAMED:
                os.replace(scratch / f"{name}.parquet", tmp / f"{name}.parquet")
            for name, table in result.tables.items():
                pq.write_table(
                    table.replace_schema_metadata(meta), tmp / f"{name}.parquet", compression="zstd"
                )
            notes = write_workbook(tables, tmp / "audit.xlsx")
            write_report(tables, tmp / "report.html", scheme=result.scheme, notes=notes)
    return result


@contextlib.contextmanager
def _parts(engine, files: list[Path], encoding: str | None, batch_size: int, layout, on_batch) -> Iterator:
    """Who runs the passes: None (the local engine, in :func:`audit_batches`) or the partitions on Dask."""
    if engine is None or engine.local:
        yield None
        return
    from payment.audit.distributed import dask_parts

    with dask_parts(
        engine, files, encoding=encoding, batch_size=batch_size, layout=layout, on_batch=on_batch
    ) as p:
        yield p


@contextlib.contextmanager
def _scratch(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` for the streamed tables (named as :func:`grouper.io.atomic_folder`
    names its own, so a run killed midway leaves nothing the next run does not remove)."""
    parent = out.parent
    folder = parent / f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.drgdip-tmp"
    with new_folders(parent, out):  # parents this run created are removed again if it fails
        try:
            folder.mkdir()
        except OSError as exc:
            raise path_error(out, exc, OutputError) from None
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
