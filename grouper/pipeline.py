"""File-to-file grouping: what ``drgdip group`` does, callable from Python (DESIGN.md §5).

:func:`group_to_file` streams discharge files through the CHS-DRG or DIP grouper (one output row per input row, in
input order; a case_id repeated anywhere in the run is DUPLICATE_CASE) and writes the results atomically, with the
codebook, catalogue, tier, exclusion and auxiliary-typing hashes in the output's metadata.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from grouper.batch import group_files
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.dip import group_dip, read_catalogue, read_exclusions, read_procedure_tiers
from grouper.dip.aux import AuxTyping, aux_path
from grouper.dip.group import INPUT_COLUMNS as DIP_COLUMNS
from grouper.dip.group import grouping_settings
from grouper.drg.group import INPUT_COLUMNS as DRG_COLUMNS
from grouper.drg.group import group_drg
from grouper.drg.migration import Migration, compare_schemes
from grouper.errors import InputError, SettingsError
from grouper.io import dataset_files, part_names, write_results
from grouper.io.writer import IfExists, atomic_folder
from grouper.version import drgdip_version

if TYPE_CHECKING:
    from grouper.distributed import Engine

__all__ = ["GroupRun", "aux_typing_for", "group_to_file", "grouping", "status_counts"]


@dataclass
class GroupRun:
    """What :func:`group_to_file` did: rows written, cases per status, the output's metadata, warnings."""

    rows: int
    counts: dict[str, int]
    metadata: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    migration: Migration | None = None  #: with ``compare_with``: cases per (old DRG, new DRG) pair


@dataclass
class Grouping:
    """A scheme made ready for a run: the batch function, the output metadata, its status column and the
    canonical columns it reads."""

    run: Callable[[pa.Table, object], pa.Table]
    metadata: dict[str, str]
    status_column: str
    columns: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)


def grouping(
    scheme: str = DEFAULT_SCHEME,
    *,
    catalogue: str | os.PathLike | None = None,
    tiers: str | os.PathLike | None = None,
    tie_break: str | None = None,
    exclusions: str | os.PathLike | None = None,
    aux: str | os.PathLike | None = None,
    use_aux: bool = True,
    explain: bool = False,
    compare_with: str | None = None,
) -> Grouping:
    """Load what a scheme needs (codebook; for DIP the catalogue, tiers, exclusions and auxiliary typing).

    ``tiers`` and ``tie_break`` default to the ones the catalogue was built with (``grouping_settings``), else the
    national defaults; a setting that differs from the catalogue's is a ``SettingsError``.
    ``aux``: an auxiliary typing table (辅助分型) to apply; by default ``<stem>.aux.csv`` beside a catalogue file
    when it exists (refused when fitted against another catalogue; an ``aux`` named explicitly is only a warning).
    ``compare_with``: CHS-DRG only, a second scheme whose results are added beside (``compare_schemes``).
    """
    # DIP reads only the 医保版 2.0 diagnosis and procedure dictionaries, which the CHS-DRG codebooks share (2.0
    # adds 81 procedure codes): the scheme in force's
    codebook = Codebook.load(DEFAULT_SCHEME if scheme == "dip" else scheme)
    metadata = {
        "drgdip.version": drgdip_version(),
        "drgdip.scheme": scheme,
        "drgdip.codebook": codebook.scheme,
        "drgdip.codebook_sha256": codebook.fingerprint,
    }
    if aux and (not use_aux or scheme != "dip"):
        raise SettingsError(
            "an auxiliary typing table is for the DIP scheme with auxiliary typing on", key="aux"
        )
    if scheme != "dip":
        if catalogue or exclusions:
            raise SettingsError("a catalogue and exclusion lists are for the DIP scheme", key="scheme")
        if compare_with:
            other = Codebook.load(compare_with)
            metadata.update(
                {"drgdip.compared_with": other.scheme, "drgdip.compared_sha256": other.fingerprint}
            )

            def run_both(table: pa.Table, duplicate) -> pa.Table:
                return compare_schemes(table, codebook, other, explain=explain, duplicate=duplicate)

            return Grouping(run_both, metadata, "drg_status", DRG_COLUMNS)

        def run_drg(table: pa.Table, duplicate) -> pa.Table:
            return group_drg(table, codebook, explain=explain, duplicate=duplicate)

        return Grouping(run_drg, metadata, "drg_status", DRG_COLUMNS)
    if compare_with:
        raise SettingsError("comparing with another scheme is for CHS-DRG schemes", key="compare_with")
    if not catalogue:
        raise SettingsError(
            "the DIP scheme needs a catalogue (e.g. pingdingshan-2025, or a file)", key="catalogue"
        )
    cat = read_catalogue(catalogue)
    settings = grouping_settings(
        cat, tiers=read_procedure_tiers(tiers) if tiers else None, tie_break=tie_break
    )
    excluded = read_exclusions(exclusions)
    metadata.update(
        {
            "drgdip.catalogue": cat.name,
            "drgdip.catalogue_sha256": cat.fingerprint,
            "drgdip.tiers_sha256": settings.tiers.fingerprint,
            "drgdip.exclusions_sha256": excluded.fingerprint,
        }
    )
    warnings: list[str] = []
    typing = aux_typing_for(catalogue, cat.fingerprint, aux, warnings) if use_aux else None
    if typing is not None:
        metadata["drgdip.aux_sha256"] = typing.fingerprint

    def run_dip(table: pa.Table, duplicate) -> pa.Table:
        return group_dip(
            table,
            cat,
            codebook=codebook,
            tiers=settings.tiers,
            tie_break=settings.tie_break,
            related_match=settings.related_match,
            tier_from=settings.tier_from,
            main_fallback=settings.main_fallback,
            exclusions=excluded,
            explain=explain,
            duplicate=duplicate,
            aux=typing,
        )

    columns = tuple(dict.fromkeys(DIP_COLUMNS + (typing.input_columns() if typing else ())))
    return Grouping(run_dip, metadata, "dip_status", columns, warnings)


def status_counts(table: pa.Table, column: str) -> dict[str, int]:
    """Cases per status of a result table (the run's summary counts)."""
    vc = table.column(column).combine_chunks().cast(pa.string()).value_counts()
    return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}


def aux_typing_for(
    catalogue, fingerprint: str, aux=None, warnings: list[str] | None = None
) -> AuxTyping | None:
    """The auxiliary typing (辅助分型) named by ``aux``, else ``<stem>.aux.csv`` beside the catalogue file (None
    when there is none). Fitted against another catalogue: an InputError when found beside it, a message added
    to ``warnings`` when named."""
    path = Path(aux) if aux else aux_path(catalogue)
    if not aux and not (Path(catalogue).exists() and path.is_file()):
        return None
    typing = AuxTyping.read(path)
    fitted_on = typing.meta_.get("catalogue_sha256", fingerprint)
    if fitted_on != fingerprint:
        message = f"{path} was fitted against another catalogue than {catalogue}"
        if not aux:
            raise InputError(
                f"{message}; rebuild both, name an auxiliary typing table or group without one", path=path
            )
        if warnings is not None:
            warnings.append(message)
    return typing


def group_to_file(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    migration: str | os.PathLike | None = None,
    encoding: str | None = None,
    if_exists: IfExists = "error",
    on_batch: Callable[[int], None] | None = None,
    engine: Engine | None = None,
    **settings: Any,
) -> GroupRun:
    """Group discharge files (CSV, Excel, Parquet; a folder: its Parquet files, hive partitions included) into one
    result file (``.parquet``, ``.csv``, ``.xlsx``; ``"-"``: CSV on standard output), streamed with bounded memory,
    or, when ``out`` has no suffix, into a folder of Parquet parts, one per input file under the same relative
    name (:func:`grouper.io.part_names`), written together (all or nothing).

    ``settings`` are the keyword arguments of :func:`grouping` (``scheme``, ``catalogue``, ``tiers``,
    ``tie_break``, ``exclusions``, ``aux``, ``use_aux``, ``explain``, ``compare_with``); besides them ``migration``
    (with ``compare_with``: write the migration table there), ``encoding`` (CSV inputs; detected when None), ``if_exists``, ``on_batch(rows)`` (progress)
    and ``engine`` (:class:`grouper.distributed.Engine`; local when None): on a Dask cluster each file is a
    partition grouped by the same batch functions, and the output is the same, byte for byte.
    """
    compare_with = settings.get("compare_with")
    if migration and not compare_with:
        raise SettingsError("a migration table needs a scheme to compare with", key="migration")
    g = grouping(**settings)
    files = dataset_files(inputs)
    counts: collections.Counter[str] = collections.Counter()
    moved = (
        Migration(g.metadata["drgdip.compared_with"], g.metadata["drgdip.codebook"]) if compare_with else None
    )

    def tally(tables):
        for t in tables:
            if moved is not None:
                moved.add(t)
            counts.update(status_counts(t, g.status_column))
            yield t

    if str(out) != "-" and not Path(out).suffix:  # a folder: one Parquet part per input file
        if migration:
            raise SettingsError(
                "a migration table needs one output file, not a folder of parts", key="migration"
            )
        from grouper.distributed import Engine, group_to_parts

        names = part_names(inputs)
        rows = 0
        with atomic_folder(out, names, if_exists=if_exists) as tmp:
            parts = group_to_parts(
                engine or Engine(),
                files,
                [tmp / n for n in names],
                settings,
                g.metadata,
                encoding=encoding,
                on_batch=on_batch,
            )
            for part_rows, part_counts in parts:
                rows += part_rows
                counts.update(part_counts)
        return GroupRun(rows, dict(counts), g.metadata, g.warnings)
    if engine is None or engine.local:
        results = group_files(files, g.run, encoding=encoding, columns=g.columns, on_batch=on_batch)
    else:
        from grouper.distributed import group_partitions

        results = group_partitions(engine, files, settings, g.metadata, encoding=encoding, on_batch=on_batch)
    with contextlib.closing(results):
        rows = write_results(tally(results), out, if_exists=if_exists, metadata=g.metadata)
    if migration:
        write_results(moved.table(), migration, if_exists=if_exists, metadata=g.metadata)
    return GroupRun(rows, dict(counts), g.metadata, g.warnings, moved)
