"""File-to-file grouping: what ``drgdip group`` does, callable from Python.

:func:`group_to_file` streams discharge files through the CHS-DRG or DIP grouper (one output row per input row, in
input order; a case_id repeated anywhere in the run is DUPLICATE_CASE) and writes the results atomically, with the
codebook, catalogue, tier, exclusion and auxiliary-typing hashes in the output's metadata.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.batch import group_files
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.drg.group import INPUT_COLUMNS as DRG_COLUMNS
from grouper.drg.group import EncodedCases, encode_cases, group_drg
from grouper.drg.migration import Migration, compare_schemes, scheme_suffix
from grouper.errors import InputError, SettingsError
from grouper.io import dataset_files, part_names, write_results
from grouper.io.discharges import HeaderMapping
from grouper.io.formats import Layout
from grouper.io.readable import MONEY_COLUMNS, NameLookup, readable
from grouper.io.values import CodeReading, code_reading
from grouper.io.writer import MONEY_FORMAT, IfExists, atomic_folder
from grouper.version import drgdip_version

if TYPE_CHECKING:  # DIP's modules are imported by the runs that use them
    from grouper.dip.aux import AuxTyping
    from grouper.dip.group import EncodedDipCases
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
    names: dict[str, NameLookup] = field(default_factory=dict)  #: code column → its names (名称)
    codes: CodeReading = "clean"  #: how the reader keeps codes for this grouping (``read_discharges``)
    #: the first step of ``run``, which a streaming caller may take beside its reading (``run`` takes either)
    prepare: Callable[[pa.Table], object] | None = None

    def warm(self) -> None:
        """The run's one-time set-up (its compiled kernels loaded, the code tables hashed), by grouping one empty
        case: a streaming caller does it while its first batch is read."""
        case = pa.table({"case_id": pa.nulls(1, pa.string())})
        self.run(case if self.prepare is None else self.prepare(case), np.zeros(1, np.bool_))


def _codebook_names(codebook: Codebook, suffix: str = "") -> dict[str, NameLookup]:
    return {
        f"{level}{suffix}": (lambda codes, level=level: codebook.names(level, codes))
        for level in ("mdc", "adrg", "drg")
    }


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
    lang: str = "en",
    codes: CodeReading = "clean",
) -> Grouping:
    """Load what a scheme needs (codebook; for DIP the catalogue, tiers, exclusions and auxiliary typing).

    ``tiers`` and ``tie_break`` default to the ones the catalogue was built with (``grouping_settings``), else the
    national defaults; a setting that differs from the catalogue's is a ``SettingsError``.
    ``aux``: an auxiliary typing table (辅助分型) to apply; by default ``<stem>.aux.csv`` beside a catalogue file
    when it exists (refused when fitted against another catalogue; an ``aux`` named explicitly is only a warning).
    ``compare_with``: CHS-DRG only, a second scheme whose results are added beside (``compare_schemes``).
    ``lang``: of the ``explain`` reasons (``en`` or ``zh``).
    ``codes``: CHS-DRG only, ``"verbatim"`` matches codes exactly as written, as the reference does
    (:func:`grouper.group_drg`); ``"clean"`` (default) reads them as the 医保版 codes they stand for.
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
    if scheme == "dip" and code_reading(codes) != "clean":
        raise SettingsError("verbatim code reading is for the CHS-DRG schemes", key="codes")
    if scheme != "dip":
        if catalogue or exclusions:
            raise SettingsError("a catalogue and exclusion lists are for the DIP scheme", key="scheme")
        if compare_with:
            other = Codebook.load(compare_with)
            metadata.update(
                {"drgdip.compared_with": other.scheme, "drgdip.compared_sha256": other.fingerprint}
            )

            def run_both(table: pa.Table, duplicate) -> pa.Table:
                return compare_schemes(
                    table, codebook, other, explain=explain, duplicate=duplicate, lang=lang, codes=codes
                )

            names = _codebook_names(codebook) | _codebook_names(other, f"_{scheme_suffix(other.scheme)}")
            return Grouping(run_both, metadata, "drg_status", DRG_COLUMNS, names=names, codes=codes)

        def run_drg(table: pa.Table | EncodedCases, duplicate) -> pa.Table:
            return group_drg(table, codebook, explain=explain, duplicate=duplicate, lang=lang, codes=codes)

        def encode(table: pa.Table) -> EncodedCases:
            return encode_cases(table, codebook, codes=codes)

        names = _codebook_names(codebook)
        return Grouping(
            run_drg, metadata, "drg_status", DRG_COLUMNS, names=names, codes=codes, prepare=encode
        )
    if compare_with:
        raise SettingsError("comparing with another scheme is for CHS-DRG schemes", key="compare_with")
    if not catalogue:
        raise SettingsError(
            "the DIP scheme needs a catalogue (e.g. pingdingshan-2025, or a file)", key="catalogue"
        )
    from grouper.dip import group_dip, read_catalogue, read_exclusions, read_procedure_tiers
    from grouper.dip.group import INPUT_COLUMNS as DIP_COLUMNS
    from grouper.dip.group import encode_dip_cases, grouping_settings

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
            lang=lang,
        )

    columns = tuple(dict.fromkeys(DIP_COLUMNS + (typing.input_columns() if typing else ())))
    codes = cat.table.column("dip_code").combine_chunks()
    group_names = np.append(cat.table.column("name").to_numpy(zero_copy_only=False).astype(object), "")

    def dip_names(values: np.ndarray) -> np.ndarray:
        pos = pc.index_in(pa.array(values, pa.string()), value_set=codes).fill_null(-1)
        return group_names[pos.to_numpy(zero_copy_only=False)]

    def encode_dip(table: pa.Table) -> EncodedDipCases:
        return encode_dip_cases(table, cat, codebook=codebook, tiers=settings.tiers, exclusions=excluded)

    names = {"dip_group": dip_names}
    return Grouping(run_dip, metadata, "dip_status", columns, warnings, names=names, prepare=encode_dip)


def status_counts(table: pa.Table, column: str) -> dict[str, int]:
    """Cases per status of a result table (the run's summary counts)."""
    arr = one_array(table.column(column))
    if pa.types.is_dictionary(arr.type):  # counted by index: the statuses are never spelt out per case
        at = arr.indices.fill_null(len(arr.dictionary)).to_numpy(zero_copy_only=False)
        counts = np.bincount(at, minlength=len(arr.dictionary) + 1)
        names = [*arr.dictionary.cast(pa.string()).to_pylist(), None]
        found: dict[str, int] = {}
        for name, count in zip(names, counts.tolist(), strict=True):
            if count:
                found[str(name)] = found.get(str(name), 0) + count
        return found
    vc = arr.cast(pa.string()).value_counts()
    return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}


def aux_typing_for(
    catalogue, fingerprint: str, aux=None, warnings: list[str] | None = None
) -> AuxTyping | None:
    """The auxiliary typing (辅助分型) named by ``aux``, else ``<stem>.aux.csv`` beside the catalogue file (None
    when there is none). Fitted against another catalogue: an InputError when found beside it, a message added
    to ``warnings`` when named."""
    from grouper.dip.aux import AuxTyping, aux_path

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
    names: bool | None = None,
    lang: str | None = None,
    keep: Sequence[str] = (),
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    out_encoding: str | None = None,
    **settings: Any,
) -> GroupRun:
    """Group discharge files (CSV, Excel, Parquet; a folder: its Parquet files, hive partitions included) into one
    result file (``.parquet``, ``.csv``, ``.xlsx``; ``"-"``: CSV on standard output), streamed with bounded memory,
    or, when ``out`` has no suffix, into a folder of Parquet parts, one per input file under the same relative
    name (:func:`grouper.io.part_names`), written together (all or nothing).

    ``settings`` are the keyword arguments of :func:`grouping` (``scheme``, ``catalogue``, ``tiers``,
    ``tie_break``, ``exclusions``, ``aux``, ``use_aux``, ``explain``, ``compare_with``); besides them ``migration``
    (with ``compare_with``: write the migration table there), ``encoding`` (CSV inputs; detected when None),
    ``if_exists``, ``on_batch(rows)`` (progress)
    and ``engine`` (:class:`grouper.distributed.Engine`; local when None): on a Dask cluster each file is a
    partition grouped by the same batch functions, and the output is the same, byte for byte.

    Readable outputs (:mod:`grouper.io.readable`): ``names`` adds ``<code>_name`` columns (DRG/ADRG/MDC names,
    DIP group names), ``lang`` (``zh``/``en``) a ``<status>_label`` column and the language of the ``explain``
    reasons (English when None); both on (Chinese) by default for an ``.xlsx`` output, off for the others.
    ``keep``: input headers carried into the output after ``case_id``; ``layout`` and ``on_mapping``: how the
    inputs are laid out and a report of their headers (:func:`grouper.io.read_discharges`; local engine only);
    ``out_encoding``: of a CSV output (UTF-8 with a byte-order mark by default).
    """
    compare_with = settings.get("compare_with")
    if migration and not compare_with:
        raise SettingsError("a migration table needs a scheme to compare with", key="migration")
    excel = Path(out).suffix.lower() == ".xlsx"
    names = excel if names is None else names
    lang = ("zh" if excel else None) if lang is None else lang
    settings = {**settings, "lang": lang or "en"}  # the reasons' language (grouping's own parameter)
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

        if names or lang or keep or (layout is not None and layout != Layout()) or on_mapping is not None:
            raise SettingsError(
                "names, status labels, kept columns and input layouts are for one output file, not a folder "
                "of parts",
                key="out",
            )
        part_files = part_names(inputs)
        rows = 0
        with atomic_folder(out, part_files, if_exists=if_exists) as tmp:
            parts = group_to_parts(
                engine or Engine(),
                files,
                [tmp / n for n in part_files],
                settings,
                g.metadata,
                encoding=encoding,
                on_batch=on_batch,
            )
            for part_rows, part_counts in parts:
                rows += part_rows
                counts.update(part_counts)
        return GroupRun(rows, dict(counts), g.metadata, g.warnings)

    statuses = (g.status_column, f"drg_status_{scheme_suffix(compare_with)}" if compare_with else "")

    def readable_results(tables):
        for t in tables:
            yield readable(t, names=g.names if names else None, lang=lang, statuses=statuses)

    formats = {c: MONEY_FORMAT for c in MONEY_COLUMNS}

    def mapped(report: HeaderMapping) -> None:  # a kept money column (总费用 → total_cost) gets two decimals
        formats.update({h: MONEY_FORMAT for h in keep if report.mapped.get(h) in MONEY_COLUMNS})
        if on_mapping is not None:
            on_mapping(report)

    if engine is None or engine.local:
        results = group_files(
            files,
            g.run,
            encoding=encoding,
            columns=g.columns,
            on_batch=on_batch,
            codes=g.codes,
            keep=keep,
            layout=layout,
            on_mapping=mapped,
            encoded=True,
            prepare=g.prepare,
            warm=g.warm,
        )
    else:
        if keep or (layout is not None and layout != Layout()) or on_mapping is not None:
            raise SettingsError(
                "kept columns, input layouts and the header report are for the local engine", key="engine"
            )
        from grouper.distributed import group_partitions

        results = group_partitions(engine, files, settings, g.metadata, encoding=encoding, on_batch=on_batch)
    with contextlib.closing(results):
        rows = write_results(
            tally(readable_results(results) if names or lang else results),
            out,
            if_exists=if_exists,
            metadata=g.metadata,
            encoding=out_encoding,
            sheet="分组结果" if lang != "en" else "results",
            formats=formats,
        )
    if migration:
        write_results(moved.table(), migration, if_exists=if_exists, metadata=g.metadata)
    if counts.get("SEX_INVALID"):
        g.warnings.append(_sex_written_otherwise(counts["SEX_INVALID"], g.metadata["drgdip.codebook"]))
    return GroupRun(rows, dict(counts), g.metadata, g.warnings, moved)


def _sex_written_otherwise(cases: int, scheme: str) -> str:
    """The one warning for cases stopped by SEX_INVALID (性别写法), with the remedy, in Chinese and English: an HIS
    export that writes 男/女 gets it on every case under a scheme that takes sex only as 1/2."""
    spelt = " / ".join(Codebook.load(scheme).settings.sex_spellings)
    return (
        f"{cases:,} 例性别写法不符未入组（SEX_INVALID）：{scheme} 只接受性别写作 {spelt}（GB/T 2261.1 代码，结算清单要求）；"
        f"若导出文件写作 男/女，请加 --value-map sex:男=1,女=2 读取。{cases:,} cases stopped with SEX_INVALID: "
        f"{scheme} takes sex only written as {spelt} (GB/T 2261.1 codes, as the settlement list requires); if the "
        "export writes 男/女, read it with --value-map sex:男=1,女=2."
    )
