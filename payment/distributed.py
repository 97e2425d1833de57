"""Settlement on a Dask cluster (分布式结算): the results of :func:`payment.pipeline.settle_files`, the passes over
the cases run by the workers of a ``distributed`` cluster (``--engine dask``).

The cases are a dataset of parts (one file each, or a grouped file and the discharges it was grouped from), read
on the workers by :class:`payment.cases.CaseSource`. Each pass of the local engine (:mod:`payment.settle`) runs
per part on the workers, and only small aggregates come back:

1. pass 1 per part (:func:`~payment.settle.scan_part`): sums per hospital × pool, route counts, declared special
   cases, bed-day episodes; merged here in row order (:func:`~payment.settle.merge_scans`), then the region-wide
   decisions (特例单议 approvals, bed-day amounts) and, when they change points, pass 1b per part;
2. the point values and hospital shares from the merged sums, here (:func:`~payment.settle.settle_pools`);
3. pass 2 per part: the per-case table of each part written by the worker into its own file of the folder
   ``cases.parquet/`` (:func:`payment.casefile.part_name`; the caller's temporary settlement folder, moved in
   whole at the end: a shared file system), in parallel; only the fund sums come back.

The region (policy, hospitals, point values) is sent to the workers once, never rebuilt per part. With the
local engine the same passes run part after part in this process (a folder of parts settled on one machine).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.distributed import Engine, connect, held, ordered_results
from grouper.errors import InputError
from grouper.io.writer import atomic_file
from payment.casefile import CaseWriter, part_name
from payment.cases import CaseSource
from payment.settle import (
    cases_part,
    finish,
    merge_scans,
    merge_sums,
    needs_second_sums,
    scan_part,
    settle_pools,
    sums_part,
)

__all__ = ["case_parts", "settle_partitions"]


def case_parts(cases: list[Path], discharges: list[Path] | None) -> list[tuple[str, str | None]]:
    """The parts of a settlement: each cases file with the discharges file of the same rank (or alone)."""
    if discharges is not None and len(discharges) != len(cases):
        raise InputError(
            f"{len(cases)} case files but {len(discharges)} discharge files: the parts must pair up in path order",
            path=cases[0] if cases else None,
        )
    return [
        (str(c), None if discharges is None else str(d))
        for c, d in zip(cases, discharges or cases, strict=True)
    ]


def _source(part: tuple[str, str | None], batch_size: int, encoding: str | None) -> CaseSource:
    return CaseSource(part[0], part[1], batch_size=batch_size, encoding=encoding)


def _scan(reg, part, batch_size: int, encoding: str | None):
    scan = _source(part, batch_size, encoding).read_with_restart(lambda src: scan_part(reg, src))
    scan.reg = None  # the region stays with the caller: only the aggregates travel
    return scan


def _sums(reg, part, batch_size: int, encoding: str | None, offset: int, res):
    return _source(part, batch_size, encoding).read_with_restart(lambda src: sums_part(reg, src, offset, res))


def _cases(reg, part, batch_size: int, encoding: str | None, offset: int, res, pools, target: str, metadata):
    """Pass 2 of one part, its per-case table written to ``target`` (atomically); returns (fund sums, rows)."""
    with atomic_file(target, if_exists="replace") as tmp:
        writer = CaseWriter(tmp, metadata)

        def run(src):
            writer.restart()
            return cases_part(reg, src, offset, res, pools, writer)

        try:
            fund, rows = _source(part, batch_size, encoding).read_with_restart(run)
            writer.close()
        except BaseException:
            writer.discard()
            raise
    return fund, rows


@contextlib.contextmanager
def _runner(engine: Engine) -> Iterator[tuple[Callable, Callable]]:
    """(put, run): ``put(obj)`` makes an object available to the tasks (:func:`grouper.distributed.held`);
    ``run(fn, calls)`` yields ``fn(*args)`` for each call, in order. Local engine: in this
    process."""
    if engine.local:
        yield (lambda obj: obj), (lambda fn, calls: (fn(*args) for args in calls))
        return
    with connect(engine) as client:
        yield functools.partial(held, client), functools.partial(ordered_results, client)


def settle_partitions(
    engine: Engine,
    parts: list[tuple[str, str | None]],
    reg,
    *,
    folder: Path,
    metadata: dict[str, str],
    batch_size: int,
    encoding: str | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> tuple[pa.Table, dict]:
    """Settle the cases of ``parts`` (:func:`case_parts`) with the region ``reg`` (:func:`payment.settle.prepare`)
    on the cluster (or one after the other in this process with the local engine); the per-case table of the
    ``k``-th part is written to ``folder / part_name(k)`` with ``metadata`` (the parts in order hold the rows in
    order). Returns (hospitals, region summary)."""
    with _runner(engine) as (put, run):
        region = put(reg)
        common = (batch_size, encoding)
        scans = list(run(_scan, ((region, p, *common) for p in parts)))
        offsets = np.cumsum([0] + [s.rows for s in scans])[:-1].tolist()
        scan = merge_scans(reg, scans)
        if on_rows is not None:
            on_rows(scan.rows)
        res = scan.resolve()
        decided = put(res)
        if needs_second_sums(reg, res):
            calls = ((region, p, *common, o, decided) for p, o in zip(parts, offsets, strict=True))
            scan.sums = merge_sums(reg, list(run(_sums, calls)))
        pools = settle_pools(reg, scan.sums)
        priced = put(pools)
        fund = np.zeros(reg.n_h * 8 + 1, dtype=np.int64)
        rows = 0
        folder.mkdir(exist_ok=True)
        targets = [str(folder / part_name(k)) for k in range(len(parts))]
        calls = (
            (region, p, *common, o, decided, priced, t, metadata)
            for p, o, t in zip(parts, offsets, targets, strict=True)
        )
        for part_fund, part_rows in run(_cases, calls):
            if on_rows is not None:
                on_rows(part_rows)
            fund += part_fund
            rows += part_rows
    if rows != scan.rows:
        raise InputError(f"cases: the parts changed between passes ({scan.rows} rows, then {rows})")
    return finish(reg, scan, pools, fund, res)
