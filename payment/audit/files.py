"""The audit from and to files: read discharge files, run :func:`audit`, write ``audit.xlsx``, one Parquet file
per table and ``report.html`` into a folder, all or nothing (:func:`grouper.io.atomic_folder`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from grouper import __version__
from grouper.io import atomic_folder, count_rows, read_discharges
from payment.audit.core import BATCH_SIZE, Audit, audit_batches
from payment.audit.excel import write_workbook
from payment.audit.report import write_report

__all__ = ["OUTPUT_FILES", "audit_files", "write_audit"]

#: Files every audit writes (plus ``<table>.parquet`` per table).
OUTPUT_FILES = ("audit.xlsx", "report.html")


def audit_files(
    inputs: Iterable[str | os.PathLike],
    *,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    **options,
) -> Audit:
    """:func:`audit` of the cases of ``inputs``, read batch by batch at each pass (memory bounded by
    ``batch_size`` rows and a few numbers per case); options as for :func:`audit`."""
    inputs = list(inputs)
    counts = [count_rows(p) for p in inputs]

    def batches() -> Iterator[pa.Table]:
        return (t for path in inputs for t in read_discharges(path, encoding=encoding, batch_size=batch_size))

    return audit_batches(batches, total=sum(counts) if None not in counts else None, **options)


def write_audit(result: Audit, out: str | os.PathLike, *, if_exists: str = "error") -> list[Path]:
    """Write ``audit.xlsx``, ``report.html`` and ``<table>.parquet`` per table into the folder ``out``.

    All files appear together or none does; an existing one is an ``OutputError`` unless ``if_exists="replace"``.
    Returns the files written.
    """
    out = Path(out)
    names = [*OUTPUT_FILES, *(f"{name}.parquet" for name in result.tables)]
    meta = {b"drgdip.version": __version__.encode(), b"drgdip.scheme": result.scheme.encode(),
            b"drgdip.audit_settings_sha256": result.settings.sha256.encode()}  # fmt: skip
    with atomic_folder(out, names, if_exists=if_exists) as tmp:
        for name, table in result.tables.items():
            pq.write_table(table.replace_schema_metadata(meta), tmp / f"{name}.parquet", compression="zstd")
        notes = write_workbook(result.tables, tmp / "audit.xlsx")
        write_report(result.tables, tmp / "report.html", scheme=result.scheme, notes=notes)
    return [out / n for n in names]
