"""The audit from and to files: read discharge files, run :func:`audit`, write ``audit.xlsx``, one Parquet file
per table and ``report.html`` into a folder (each file written atomically)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from grouper import __version__
from grouper.errors import OutputError
from grouper.io import read_discharges
from payment.audit.core import Audit, audit
from payment.audit.excel import write_workbook
from payment.audit.report import write_report

__all__ = ["OUTPUT_FILES", "audit_files", "read_all", "write_audit"]

#: Files every audit writes (plus ``<table>.parquet`` per table).
OUTPUT_FILES = ("audit.xlsx", "report.html")


def read_all(inputs: Iterable[str | os.PathLike], *, encoding: str | None = None) -> pa.Table:
    """Every case of the discharge files as one canonical table (the audit needs the whole region at once:
    readmissions across files, region means per group)."""
    parts = [t for path in inputs for t in read_discharges(path, encoding=encoding)]
    return pa.concat_tables(parts).combine_chunks()


def audit_files(inputs: Iterable[str | os.PathLike], *, encoding: str | None = None, **options) -> Audit:
    """:func:`audit` of the cases of ``inputs`` (options as for :func:`audit`)."""
    return audit(read_all(inputs, encoding=encoding), **options)


def write_audit(result: Audit, out: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Write ``audit.xlsx``, ``report.html`` and ``<table>.parquet`` per table into the folder ``out``.

    Returns the files written. An existing file is an ``OutputError`` unless ``overwrite``.
    """
    out = Path(out)
    targets = [out / f for f in OUTPUT_FILES] + [out / f"{name}.parquet" for name in result.tables]
    if not overwrite:
        for t in targets:
            if t.exists():
                raise OutputError(f"{t} already exists; pass --force to replace it", path=t)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the folder ({exc.strerror})", path=out) from None
    meta = {b"drgdip.version": __version__.encode(), b"drgdip.scheme": result.scheme.encode(),
            b"drgdip.audit_settings_sha256": result.settings.sha256.encode()}  # fmt: skip
    try:
        for name, table in result.tables.items():
            path = out / f"{name}.parquet"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        notes = write_workbook(result.tables, out / "audit.xlsx")
        write_report(result.tables, out / "report.html", scheme=result.scheme, notes=notes)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the audit ({exc.strerror})", path=out) from None
    return targets
