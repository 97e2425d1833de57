"""File-to-file pipelines, one per command: what ``drgdip settle`` does, callable from Python.

:func:`settle_files` reads the grouped cases (joined with their discharges by ``case_id``), the hospitals table,
the policy and the optional history folder, deductions, special cases, weights and catalogue, settles the year
with bounded memory (:func:`payment.settle.settle_batches`) and writes the settlement folder all-or-nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

import grouper
from grouper.errors import SettingsError
from grouper.io import dataset_files
from grouper.io.discharges import HeaderMapping
from grouper.io.formats import Layout
from grouper.io.writer import IfExists, atomic_folder
from payment.casefile import CaseWriter
from payment.cases import CaseSource
from payment.inputs import read_deductions, read_hospitals, read_special_cases, read_weights
from payment.kernels import loading as kernels_loading
from payment.policy import Policy
from payment.settle import BATCH_SIZE, prepare, settle_batches

if TYPE_CHECKING:
    from grouper.distributed import Engine

__all__ = ["SETTLEMENT_FILES", "settle_files"]

#: The files of a settlement folder.
SETTLEMENT_FILES = ("cases.parquet", "hospitals.csv", "region.json")


def settle_files(
    cases: str | os.PathLike,
    hospitals: str | os.PathLike,
    policy: str | os.PathLike | Policy,
    out: str | os.PathLike,
    *,
    discharges: str | os.PathLike | None = None,
    history: str | os.PathLike | None = None,
    deductions: str | os.PathLike | None = None,
    special_cases: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    catalogue: str | os.PathLike | None = None,
    encoding: str | None = None,
    batch_size: int = BATCH_SIZE,
    if_exists: IfExists = "error",
    on_rows: Callable[[int], None] | None = None,
    engine: Engine | None = None,
    on_pass: Callable[[str, int | None], None] | None = None,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
) -> dict:
    """Settle a region's year from files (区域点数法总额预算结算) into the folder ``out``.

    Parameters
    ----------
    cases : grouped cases (``drgdip group`` output, with ``discharges``), or one table with the discharge and
        grouping columns (CSV, Excel, Parquet)
    hospitals : hospitals table (``hospital_id``, ``level``, …; payment.inputs.read_hospitals)
    policy : a policy TOML file or a loaded :class:`~payment.policy.Policy`
    out : output folder: ``cases.parquet``, ``hospitals.csv``, ``region.json`` (written together, all or nothing)
    discharges : the discharges that were grouped, joined to ``cases`` by ``case_id``
    history : history folder (docs/history.md; payment.history.read_history)
    deductions : monthly audit deductions (``hospital_id``, ``month``, ``amount``)
    special_cases : declared special cases (``case_id``), in review-priority order
    weights : DRG weights (``drg``, ``rw``) for a DRG policy
    catalogue : DIP catalogue name or file (default: the policy's), when the cases carry no ``dip_avg_cost``
    encoding : encoding of CSV inputs; detected when None
    batch_size : cases per batch (memory; not results)
    if_exists : ``"error"`` (an existing output file is refused) or ``"replace"``
    on_rows : called with the rows of every batch read (over all passes), for progress bars
    engine : :class:`grouper.distributed.Engine` (local when None). On a Dask cluster ``cases`` (and
        ``discharges``) may be folders of Parquet parts (paired in path order); the passes run per part on the
        workers (payment.distributed) and the folder written is the same, byte for byte.
    on_pass : called as ``on_pass(what, rows)`` at the start of each pass (rows: None for the first pass; local
        engine only)
    layout : how the discharge file (``discharges``, else ``cases``) lays out its table (sheet, header row,
        renamed headers; :class:`grouper.io.formats.Layout`; local engine only)
    on_mapping : called once with that file's header mapping (``--show-mapping``; local engine only)

    Returns
    -------
    dict
        The region summary written to ``region.json``.
    """
    pol = policy if isinstance(policy, Policy) else Policy.load(policy)
    folders = [p for p in (cases, discharges) if p is not None and Path(p).is_dir()]
    # a dataset of parts: payment.distributed, on either engine
    parted = (engine is not None and not engine.local) or bool(folders)
    if parted and engine is None:
        from grouper.distributed import Engine

        engine = Engine()
    if parted and ((layout is not None and layout != Layout()) or on_mapping is not None):
        raise SettingsError(
            "an input layout (sheet, header row, renamed headers) and the header report are for one file on the "
            "local engine"
        )
    # a settlement of parts writes cases.parquet as a folder of parts (one per input part, in order)
    with (
        kernels_loading(not parted),  # (the local engine's first kernel call: set up beside the first reads)
        atomic_folder(
            out, SETTLEMENT_FILES, if_exists=if_exists, folders=("cases.parquet",) if parted else ()
        ) as tmp,
    ):
        parts = [(cases, discharges)]
        if parted:
            from payment.distributed import case_parts

            parts = case_parts(
                dataset_files(cases), None if discharges is None else dataset_files(discharges)
            )
        source = CaseSource(
            *parts[0],
            batch_size=batch_size,
            encoding=encoding,
            layout=layout,
            on_mapping=on_mapping,
            skip=frozenset() if pol.bed_day.categories else frozenset({"patient_id"}),  # (bed days' only use)
        )
        hosp = read_hospitals(hospitals, encoding=encoding)
        cat = None
        name = catalogue or pol.header.get("catalogue")
        if pol.scheme == "dip" and "dip_avg_cost" not in source.names and name:
            from grouper.dip.catalogue import read_catalogue  # (a DIP run without dip_avg_cost only)

            cat = read_catalogue(name)
        w = read_weights(weights, encoding=encoding) if weights is not None else None
        hist = None
        if history is not None:
            from payment.history import read_history

            hist = read_history(history)
        deducted = (
            read_deductions(deductions, hosp.column("hospital_id"), pol, encoding=encoding)
            if deductions is not None
            else None
        )
        declared = read_special_cases(special_cases, encoding=encoding) if special_cases is not None else []
        hashes = {
            "drgdip_version": grouper.__version__,
            "policy_sha256": pol.sha256,
            "catalogue_fingerprint": getattr(cat, "fingerprint", None),
            "weights_sha256": None
            if weights is None
            else hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
        }
        meta = {
            "drgdip.version" if k == "drgdip_version" else f"drgdip.{k}": str(v)
            for k, v in hashes.items()
            if v
        }

        if parted:
            from payment.distributed import settle_partitions

            reg = prepare(
                hosp,
                pol,
                catalogue=cat,
                weights=w,
                history=hist,
                special_cases=declared,
                deductions=deducted,
            )
            hosp_table, region = settle_partitions(
                engine,
                parts,
                reg,
                folder=tmp / "cases.parquet",
                metadata=meta,
                batch_size=batch_size,
                encoding=encoding,
                on_rows=on_rows,
            )
        else:
            writer = CaseWriter(tmp / "cases.parquet", meta)
            try:

                def run(src: CaseSource) -> tuple[pa.Table, dict]:
                    def counted(batches):
                        for t in batches:
                            if on_rows is not None:
                                on_rows(t.num_rows)
                            yield t

                    writer.restart()
                    return settle_batches(
                        lambda: counted(src()),
                        hosp,
                        pol,
                        write=writer,
                        catalogue=cat,
                        weights=w,
                        history=hist,
                        special_cases=declared,
                        deductions=deducted,
                        on_pass=on_pass,
                        on_rows=on_rows,
                        early=writer.early,
                    )

                hosp_table, region = source.read_with_restart(run)
                writer.close()
            except BaseException:
                writer.discard()
                raise
        region.update(hashes)
        (tmp / "hospitals.csv").write_bytes(_hospitals_csv(hosp_table))
        text = json.dumps(region, ensure_ascii=False, indent=2) + "\n"
        (tmp / "region.json").write_bytes(text.encode("utf-8"))
    return region


def _hospitals_csv(table: pa.Table) -> bytes:
    """The hospitals table as CSV text: decimals written out in full (``0.00``, never ``0E-2``)."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(table.column_names)
    columns = [
        [None if v is None else format(v, "f") for v in c.to_pylist()]
        if pa.types.is_decimal(c.type)
        else c.to_pylist()
        for c in table.columns
    ]
    out.writerows(zip(*columns, strict=True))
    return text.getvalue().encode("utf-8")
