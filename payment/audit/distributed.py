"""The self-audit on a Dask cluster (分布式自查, ``drgdip audit --engine dask``): the passes of
:func:`payment.audit.audit_batches` run per partition by the workers, with the local engine's batch functions.

A dataset is a list of files (:func:`grouper.io.dataset_files`), one partition per file, read in the order the
local engine reads them, batch by batch as it does, so every batch sees the same rows.

1. Duplicate case ids across partitions: :func:`grouper.distributed.repeated_ids` seeds each partition's tracker.
2. Pass 1 per partition (:func:`payment.audit.core.first_part`): grouping, QC edits and a few numbers per case
   come back in row order; the pricing's scan of each partition is merged here in row order.
3. Here: the run-wide findings from those numbers (weights from the run, group means, risk classes,
   re-admissions of the same patient across partitions).
4. Last pass per partition (:func:`payment.audit.core.last_part`): expected payment, the flags' variants regrouped,
   the ``cases`` and ``flags`` rows; they come back in row order, a few partitions ahead of the writer, and the
   indicators are computed here as locally. The outputs are the local engine's, byte for byte.

The grouping, QC lists and settings are sent to the workers once per pass (:func:`grouper.distributed.held`:
recomputed when a worker holding them dies), never rebuilt per partition.
Paths must be readable by the workers under the same names (a shared file system).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.batch import DuplicateTracker
from grouper.distributed import Engine, connect, held, ordered_results, repeated_ids
from payment.audit.core import Setup, first_part, last_part, scan_part

__all__ = ["DaskParts", "dask_parts"]


def _reader(path: str, reading: tuple, batch_size: int) -> Callable[[], Iterator[pa.Table]]:
    from payment.audit.files import read_checked

    encoding, layout = reading  # how the files are read, as locally
    return lambda: read_checked(path, encoding, batch_size, layout)


def _first(setup: Setup, path: str, seen: np.ndarray, pricing, reading: tuple, batch_size: int):
    part = pricing.part() if pricing is not None else None
    records = first_part(setup, _reader(path, reading, batch_size), DuplicateTracker(seen), part)
    return records, part.scanned() if part is not None else None


def _scan(setup: Setup, path: str, dups: list, pricing, reading: tuple, batch_size: int):
    part = pricing.part()
    scan_part(setup, _reader(path, reading, batch_size), dups, part)
    return part.scanned()


def _last(
    setup: Setup, path: str, dups: list, ctx: dict, base: int, pricing, reading: tuple, batch_size: int
):
    at = pricing.at(base) if pricing is not None else None
    return list(last_part(setup, _reader(path, reading, batch_size), dups, ctx, base, at))


class DaskParts:
    """The ``parts`` of :func:`payment.audit.audit_batches` on a cluster: one partition per file."""

    def __init__(self, client, files: list[Path], *, encoding: str | None, batch_size: int, layout=None,
                 on_batch=None):  # fmt: skip
        self.client, self.files = client, [str(f) for f in files]
        self.reading, self.batch_size, self.on_batch = (encoding, layout), batch_size, on_batch
        self.seen = repeated_ids(client, files, encoding=encoding)
        self.dups: list[list[np.ndarray]] = []
        self.rows: list[int] = []

    def _put(self, obj):
        return held(self.client, obj)

    def _progress(self, rows: int) -> None:
        if self.on_batch is not None:
            self.on_batch(rows)

    def first(self, setup: Setup, pricing) -> list[dict]:
        s, p = self._put(setup), self._put(pricing) if pricing is not None else None
        calls = (
            (s, f, seen, p, self.reading, self.batch_size)
            for f, seen in zip(self.files, self.seen, strict=True)
        )
        records, scans = [], []
        for part, scan in ordered_results(self.client, _first, calls):
            records.extend(part)
            scans.append(scan)
            self.dups.append([r["dup"] for r in part])
            self.rows.append(sum(r["rows"] for r in part))
            self._progress(self.rows[-1])
        if pricing is not None:
            pricing.merge(scans)
        return records

    def scan(self, setup: Setup, pricing) -> None:
        s, p = self._put(setup), self._put(pricing)
        calls = (
            (s, f, d, p, self.reading, self.batch_size) for f, d in zip(self.files, self.dups, strict=True)
        )
        scans = []
        for scan, rows in zip(ordered_results(self.client, _scan, calls), self.rows, strict=True):
            scans.append(scan)
            self._progress(rows)
        pricing.merge(scans)

    def last(self, setup: Setup, ctx: dict, pricing) -> Iterator[dict]:
        s = self._put(setup)
        p = self._put(pricing.at(0)) if pricing is not None else None  # resolved once, here
        bases = np.cumsum([0, *self.rows])[:-1].tolist()

        def calls():
            for f, d, base, rows in zip(self.files, self.dups, bases, self.rows, strict=True):
                part = self._put({k: _rows(v, base, rows) for k, v in ctx.items()})
                yield s, f, d, part, base, p, self.reading, self.batch_size

        for results, rows in zip(ordered_results(self.client, _last, calls()), self.rows, strict=True):
            yield from results
            self._progress(rows)


def _rows(value, base: int, rows: int):
    """One partition's rows of a per-case array of the run (anything else as it is)."""
    if isinstance(value, np.ndarray):
        return value[base : base + rows]
    if isinstance(value, pa.Array):
        return value.slice(base, rows)
    return value


@contextlib.contextmanager
def dask_parts(
    engine: Engine, files: list[Path], *, encoding: str | None, batch_size: int, layout=None, on_batch=None
) -> Iterator[DaskParts]:
    """:class:`DaskParts` of ``files`` on the cluster of ``engine`` (connected for the run); ``layout`` as for
    :func:`grouper.io.read_discharges`."""
    with connect(engine) as client:
        yield DaskParts(
            client, files, encoding=encoding, batch_size=batch_size, layout=layout, on_batch=on_batch
        )
