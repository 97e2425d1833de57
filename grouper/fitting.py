"""File-to-file fitting: what ``drgdip catalog`` and ``drgdip weights`` do, callable from Python.

:func:`catalogue_to_file` builds a local DIP catalogue (目录库) from past years of cases, with auxiliary typing
(辅助分型) beside it; :func:`weights_to_file` fits DRG relative weights (相对权重), grouping the cases first when
they carry no ``drg``. Both read the history files, fit, and write through the one writer; they report their
passes to ``on_pass(label, total)`` (``total``: rows, or None when a pass is not counted in rows) and the rows
done to ``on_batch(rows)``, as :func:`grouper.pipeline.group_to_file` does.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from grouper.batch import DuplicateTracker
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.dip.aux import AuxTyping, aux_path
from grouper.dip.catalogue import read_catalogue
from grouper.dip.catalogue_builder import HISTORY_COLUMNS, DipCatalog
from grouper.drg.group import group_drg
from grouper.drg.weights import DrgWeights
from grouper.errors import SettingsError
from grouper.io import BATCH_SIZE, count_rows, read_cases
from grouper.io.discharges import HeaderMapping, history_files
from grouper.io.formats import PARQUET_SUFFIXES, Layout, renamed
from grouper.io.writer import IfExists, check_target

__all__ = [
    "CatalogueRun",
    "WeightsRun",
    "catalogue_groups",
    "catalogue_to_file",
    "weights_to_file",
    "with_drg",
]

OnPass = Callable[[str, int | None], None]
OnBatch = Callable[[int], None]
Paths = str | os.PathLike | Iterable[str | os.PathLike]


@dataclass
class CatalogueRun:
    """What :func:`catalogue_to_file` did: the fitted estimators, the files written and their warnings."""

    catalogue: DipCatalog
    path: Path
    aux: AuxTyping | None = None  #: the auxiliary typing fitted, when asked for
    aux_path: Path | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class WeightsRun:
    """What :func:`weights_to_file` did: the fitted weights, the file written, the scheme that grouped the cases
    (None when the history had a ``drg`` column) and the warnings."""

    weights: DrgWeights
    path: Path
    grouped_with: str | None = None
    warnings: list[str] = field(default_factory=list)


def catalogue_to_file(
    history: Paths,
    out: str | os.PathLike,
    *,
    policy=None,
    aux: bool = True,
    name: str | None = None,
    encoding: str | None = None,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    if_exists: IfExists = "error",
    on_pass: OnPass | None = None,
    on_batch: OnBatch | None = None,
    engine=None,
    **settings: Any,
) -> CatalogueRun:
    """Build a DIP catalogue from history files and write it: Parquet for a ``.parquet`` path, else CSV with
    its ``.toml`` beside it; with ``aux``, auxiliary typing fitted on the last data year and written beside it
    as ``<stem>.aux.csv`` (``<stem>.aux.params.toml``), where ``drgdip group`` finds it.

    Parameters
    ----------
    history : path or paths
        Parquet files or folders of past cases, or discharge files (:func:`grouper.io.read_cases`).
    out : path
        The catalogue file.
    policy : payment.policy.Policy, optional
        A DIP policy whose ``[dip.grouping]`` and ``[dip.catalogue]`` give the settings
        (:meth:`DipCatalog.from_policy`); a setting in ``settings`` that contradicts it is a ``SettingsError``.
    aux : bool
        Also fit auxiliary typing (default True).
    name : str, optional
        Catalogue name recorded in its metadata.
    encoding : str, optional
        Encoding of CSV history files (detected when None).
    layout, on_mapping
        How CSV/Excel history files lay out their table (sheet, header row, renamed headers; renamed headers for
        Parquet too) and a callback given each file's header mapping (:func:`grouper.io.read_cases`).
    if_exists : {"error", "replace"}
        An existing catalogue or auxiliary typing file is refused (default) or replaced; checked before any work.
    on_pass, on_batch
        Progress callbacks (module notes).
    engine : grouper.distributed.Engine, optional
        Where the history is read, grouped and reduced (local when None). On a Dask cluster each file of the
        history is read by a worker and stays there; the fit's passes (:meth:`DipCatalog.fit_parts`, then
        :meth:`DipCatalog.fit_aux_parts`), including the two groupings of the history (into the draft
        catalogue, then into the catalogue for auxiliary typing), run on the workers and only per-key and
        per-group counts and exact sums come back. The same reductions fit a table here: the same files, byte
        for byte.
    **settings
        :class:`DipCatalog` settings (``years``, ``year_weights``, ``threshold``, ``trim``, ``tiers``, …).

    Returns
    -------
    CatalogueRun
    """
    out = check_target(out, if_exists)
    typing = AuxTyping() if aux else None
    if typing is not None:
        check_target(aux_path(out), if_exists)
    columns = tuple(dict.fromkeys(HISTORY_COLUMNS + (typing.input_columns() if typing else ())))
    est = DipCatalog.from_policy(policy, **settings) if policy is not None else DipCatalog(**settings)
    build = functools.partial(
        _build_catalogue, est, out, typing, name=name, if_exists=if_exists, on_pass=on_pass, on_batch=on_batch
    )
    if engine is None or engine.local:
        table = _read(history, columns, encoding, on_pass, on_batch, layout, on_mapping, _CATALOGUE_NEEDS)

        def fit_aux(typing: AuxTyping) -> None:
            grouped = catalogue_groups(est, table, on_batch)
            _pass(on_pass, "fitting auxiliary typing", None)
            est.fit_aux(table, typing, groups=grouped)

        return build(table.num_rows, lambda: est.fit(table), fit_aux)
    from grouper.distributed import connect, history_parts

    files = _cluster_files(history, layout)
    with connect(engine) as client:
        _pass(on_pass, "reading the history on the cluster", None)
        parts, rows = history_parts(client, files, columns, encoding, on_batch, _CATALOGUE_NEEDS)

        def fit_aux_parts(typing: AuxTyping) -> None:  # the parts are grouped as the fit needs them
            _pass(on_pass, "fitting auxiliary typing", None)
            est.fit_aux_parts(parts, typing)

        try:
            return build(rows, lambda: est.fit_parts(parts), fit_aux_parts)
        finally:
            parts.release()


def _build_catalogue(
    est: DipCatalog,
    out: Path,
    typing: AuxTyping | None,
    rows: int,
    fit: Callable[[], DipCatalog],
    fit_aux: Callable[[AuxTyping], None],
    *,
    name,
    if_exists,
    on_pass,
    on_batch,
) -> CatalogueRun:
    """Fit ``est`` (``fit()``), write it, and fit auxiliary typing on the history grouped into it
    (``fit_aux(typing)``): the one code path of both engines."""
    _pass(on_pass, "fitting the catalogue", None)
    fit()
    meta = {"name": name} if name else {}
    if out.suffix.lower() == ".parquet":
        written = est.to_parquet(out, if_exists=if_exists, **meta)
    else:
        written = est.to_csv(out, if_exists=if_exists, **meta)
    run = CatalogueRun(est, written, warnings=list(est.warnings_))
    if typing is not None:
        _pass(on_pass, "grouping the history into the catalogue", rows)
        fit_aux(typing)
        cat = read_catalogue(written)
        run.aux, run.aux_path = (
            typing,
            typing.to_csv(
                aux_path(written), if_exists=if_exists, catalogue=cat.name, catalogue_sha256=cat.fingerprint
            ),
        )
        run.warnings += typing.warnings_
    return run


def catalogue_groups(est: DipCatalog, table: pa.Table, on_batch: OnBatch | None) -> pa.Table:
    """The history ``table`` grouped into the fitted catalogue ``est`` (in slices, with progress), cut to the
    columns auxiliary typing reads (``dip_group``, ``dip_kind``); a part of a history gives its rows' groups."""
    grouped = _in_batches(lambda t, duplicate: est.apply(t, duplicate=duplicate), table, on_batch)
    return grouped.select(["dip_group", "dip_kind"])


def weights_to_file(
    history: Paths,
    out: str | os.PathLike,
    *,
    scheme: str | None = None,
    encoding: str | None = None,
    layout: Layout | None = None,
    on_mapping: Callable[[HeaderMapping], None] | None = None,
    if_exists: IfExists = "error",
    on_pass: OnPass | None = None,
    on_batch: OnBatch | None = None,
    engine=None,
    **settings: Any,
) -> WeightsRun:
    """Fit DRG relative weights on history files and write them: Parquet for a ``.parquet`` path, else CSV with
    ``<stem>.params.toml`` beside it.

    Parameters
    ----------
    history : path or paths
        As :func:`catalogue_to_file`; cases without a ``drg`` column are grouped first under ``scheme`` (every
        file then needs ``principal_dx``).
    out : path
        The weights file.
    scheme : str, optional
        Codebook that groups a history without ``drg``; None: the scheme in force (``DEFAULT_SCHEME``,
        ``chs-drg-2.0``).
    encoding, layout, on_mapping, if_exists, on_pass, on_batch
        As :func:`catalogue_to_file`.
    engine : grouper.distributed.Engine, optional
        Where the history is read, grouped and reduced (local when None). On a Dask cluster each Parquet file of
        the history is read, and grouped when it has no ``drg``, by a worker (duplicate case ids flagged across
        the files as locally), and stays there: the fit's passes (:meth:`DrgWeights.fit_parts`) run on the
        workers and only per-group counts and exact sums come back. The same reductions fit a table here: the
        same weights file, byte for byte.
    **settings
        :class:`DrgWeights` settings (``years``, ``year_weights``, ``min_n``, ``trim``, …).

    Returns
    -------
    WeightsRun
    """
    out = check_target(out, if_exists)
    est = DrgWeights(**settings)
    if engine is not None and not engine.local:
        from grouper.distributed import connect, weights_parts

        files = _cluster_files(history, layout)
        with connect(engine) as client:
            _pass(on_pass, "reading (and grouping) the history on the cluster", None)
            parts, codebook = weights_parts(
                client,
                files,
                scheme or DEFAULT_SCHEME,
                encoding=encoding,
                on_batch=on_batch,
                required=_weights_needs(files, layout),
            )
            _pass(on_pass, "fitting the weights on the cluster", None)
            est.fit_parts(parts)
    else:
        needs = _weights_needs(_history_files(history), layout)
        table = _read(history, None, encoding, on_pass, on_batch, layout, on_mapping, needs)
        codebook = None
        if "drg" not in table.column_names:
            codebook = Codebook.load(scheme or DEFAULT_SCHEME)
            _pass(on_pass, f"grouping with {codebook.scheme}", table.num_rows)
            table = with_drg(table, codebook, on_batch)
        _pass(on_pass, "fitting the weights", None)
        est.fit(table)
    grouped_with = None if codebook is None else codebook.scheme
    if out.suffix.lower() == ".parquet":
        written = est.to_parquet(out, if_exists=if_exists)
    else:
        written = est.to_csv(out, if_exists=if_exists)
    return WeightsRun(est, written, grouped_with, list(est.warnings_))


def _history_files(history: Paths) -> list[Path]:
    """The files of a history, in the order :func:`grouper.io.read_cases` reads them."""
    return history_files([history] if isinstance(history, str | os.PathLike) else history)


def _cluster_files(history: Paths, layout: Layout | None) -> list[Path]:
    """The files of a history read on a cluster, one part each (no input layout: the workers read the files as
    they are)."""
    if layout is not None and layout != Layout():
        raise SettingsError("an input layout (sheet, header row, renamed headers) is for the local engine")
    return _history_files(history)


def _pass(on_pass: OnPass | None, label: str, total: int | None) -> None:
    if on_pass is not None:
        on_pass(label, total)


#: The canonical columns a history must have for a catalogue, for weights (a column missing is named with its
#: file by the reader, here or on a cluster's worker, rather than by the fit, which sees a table or a part).
_CATALOGUE_NEEDS = ("total_cost", "principal_dx")
_WEIGHTS_NEED = ("total_cost",)


def _weights_needs(files: list[Path], layout: Layout | None) -> tuple[str, ...]:
    """The columns every file of a weights history must have: ``total_cost``, and ``principal_dx`` when the fit
    groups the cases, that is when no file gives their ``drg`` (:func:`grouper.io.read_cases` reads a history
    that is not all Parquet as discharges, without it). Without it a file's cases would be grouped as
    ungroupable and only counted among the cases of DRGs left out (``n_excluded``), the file not named."""
    if all(f.suffix.lower() in PARQUET_SUFFIXES for f in files):
        rename = layout.rename if layout is not None else {}
        for f in files:
            try:
                names = pq.read_schema(f).names
            except (OSError, pa.ArrowException):  # read_cases names an unreadable file
                continue
            if "drg" in renamed(f, names, rename):
                return _WEIGHTS_NEED
    return (*_WEIGHTS_NEED, "principal_dx")


def _read(
    history: Paths, columns, encoding, on_pass, on_batch, layout=None, on_mapping=None, required=()
) -> pa.Table:
    """The history as one table; one progress step per file (rows when a file's count is known up front)."""
    paths = [history] if isinstance(history, str | os.PathLike) else list(history)
    counts = [count_rows(p) for p in paths]
    _pass(on_pass, "reading the history", sum(counts) if None not in counts else None)
    table = read_cases(
        paths, columns=columns, encoding=encoding, layout=layout, on_mapping=on_mapping, required=required
    )
    if on_batch is not None:
        on_batch(table.num_rows)
    return table


def with_drg(
    table: pa.Table, codebook: Codebook, on_batch: OnBatch | None, seen: pa.Array | None = None
) -> pa.Table:
    """``table`` with the ``drg`` and ``adrg`` of its cases grouped under ``codebook`` (in slices, with progress;
    ``seen``: case ids met before this table, as :class:`~grouper.batch.DuplicateTracker` takes them)."""
    grouped = _in_batches(
        lambda t, duplicate: group_drg(t, codebook, duplicate=duplicate), table, on_batch, seen
    )
    return table.append_column("drg", grouped.column("drg")).append_column("adrg", grouped.column("adrg"))


def _in_batches(
    group: Callable[..., pa.Table], table: pa.Table, on_batch: OnBatch | None, seen: pa.Array | None = None
) -> pa.Table:
    """``group(part, duplicate)`` (one result row per input row) over slices of ``table``, concatenated, with
    progress; a case_id repeated anywhere in the table (or in ``seen``) is a duplicate, as when grouping it in
    one call."""
    if table.num_rows == 0:
        return group(table, None)
    tracker = DuplicateTracker(seen) if "case_id" in table.column_names else None  # no ids: no duplicates
    parts = []
    for start in range(0, table.num_rows, BATCH_SIZE):
        part = table.slice(start, BATCH_SIZE)
        duplicate = None if tracker is None else tracker.flag(part.column("case_id").combine_chunks())
        parts.append(group(part, duplicate))
        if on_batch is not None:
            on_batch(part.num_rows)
    return pa.concat_tables(parts)
