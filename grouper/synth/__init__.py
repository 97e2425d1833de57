"""Synthetic region (合成区域): believable discharges for tests, benchmarks and ``drgdip demo``.

Real discharge data is private; this generator draws a region's worth of cases offline, deterministically and
fast. Case mix, costs (log-normal around the group mean with the group's CV) and LOS come from the real DIP
catalogue; codes from the CHS-DRG 1.1 医保版 dictionaries (principal diagnosis and procedures from the group key,
so each case regroups into its group; other diagnoses with CC/MCC and exclusions; sex and age consistent with
the diagnosis); hospital level effects, cost growth, bed-day and per-case populations, deaths, re-admissions,
the insurance split, and a flagged share of dirty rows. All parameters: ``codebooks/synth/region-default.toml``.

Examples
--------
>>> discharges, hospitals = generate(1000, [2023, 2024], 5, seed=1)
>>> discharges.num_rows, hospitals.num_rows
(1000, 5)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper.errors import SettingsError
from grouper.io.writer import PARQUET_OPTIONS, IfExists, atomic_file, atomic_folder
from grouper.synth.blocks import FEE_FIELDS, SYNTH_SCHEMA, TRUTH_FIELD, generate_block, output_schema
from grouper.synth.casemix import CaseMix, build_casemix
from grouper.synth.hospitals import HOSPITAL_SCHEMA, Hospitals, make_hospitals
from grouper.synth.plan import Plan, make_plan
from grouper.synth.region import DEFECT_KINDS, Region, RegionError, load_region

__all__ = [
    "DEFECT_KINDS",
    "FEE_FIELDS",
    "HOSPITAL_SCHEMA",
    "SYNTH_SCHEMA",
    "TRUTH_FIELD",
    "CaseMix",
    "Hospitals",
    "Plan",
    "Region",
    "RegionError",
    "generate",
    "iter_batches",
    "load_region",
    "output_schema",
    "plan_region",
    "split_by_year",
    "write_parquet",
    "write_region",
]

_CASEMIX: dict[str, CaseMix] = {}


def plan_region(
    cases: int, years: list[int], hospitals: int, seed: int, region: Region | str | Path | None = None
) -> Plan:
    """Plan a synthetic region: load its parameters, case mix and hospitals.

    Parameters
    ----------
    cases : int
        Total number of discharges over all years.
    years : list of int
        Discharge years.
    hospitals : int
        Number of hospitals.
    seed : int
        Random seed: the same arguments give the same data, byte for byte.
    region : Region, str or Path, optional
        Region parameters (default ``codebooks/synth/region-default.toml``).

    Returns
    -------
    Plan
    """
    if not isinstance(region, Region):
        region = load_region(region)
    key = json.dumps(dict(region.params), sort_keys=True, default=str)
    if key not in _CASEMIX:
        _CASEMIX[key] = build_casemix(region)
    casemix = _CASEMIX[key]
    return make_plan(region, casemix, make_hospitals(region, hospitals, seed), cases, years, seed)


def iter_batches(plan: Plan, truth: bool = False, fees: bool = False) -> Iterator[pa.RecordBatch]:
    """Yield the plan's discharges block by block (rows of :func:`output_schema`; memory stays flat).

    Parameters
    ----------
    plan : Plan
    truth : bool
        Add :data:`TRUTH_FIELD`, the DIP group each row was generated for.
    fees : bool
        Fill the fee breakdown :data:`FEE_FIELDS` (``fee_01`` … ``fee_14``, summing to total_cost); else null.
    """
    for b in range(plan.n_blocks):
        yield generate_block(plan, b, truth, fees)


def generate(
    cases: int,
    years: list[int],
    hospitals: int,
    seed: int,
    region: Region | str | Path | None = None,
    truth: bool = False,
    fees: bool = False,
) -> tuple[pa.Table, pa.Table]:
    """Generate a (small) region in memory; arguments as for :func:`plan_region` and :func:`iter_batches`.

    Returns
    -------
    discharges : pa.Table
        :func:`output_schema` rows.
    hospitals : pa.Table
        :data:`HOSPITAL_SCHEMA`.
    """
    plan = plan_region(cases, years, hospitals, seed, region)
    batches = list(iter_batches(plan, truth, fees))
    return pa.Table.from_batches(batches, schema=output_schema(truth)), plan.hospitals.table


def write_region(
    out: str | Path,
    cases: int,
    years: list[int],
    hospitals: int,
    seed: int,
    region: Region | str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    compression: str = "zstd",
    fees: bool = False,
    *,
    if_exists: IfExists = "replace",
    parts: int | None = None,
) -> tuple[Path, Path]:
    """Write ``discharges.parquet`` and ``hospitals.csv`` into the folder ``out``, streaming block by block.

    All files are written into a temporary folder and moved in together when complete (grouper.io.writer).
    With ``parts``, the discharges are a partitioned dataset instead: the folder ``discharges/`` of ``parts``
    files ``part-00000.parquet`` … (consecutive blocks; the same rows, in the same order, as the one file).

    Parameters
    ----------
    out : str or Path
        Output folder (created if missing).
    cases, years, hospitals, seed, region
        As for :func:`plan_region`.
    progress : callable, optional
        Called with the number of rows of each block written.
    compression : str
        Parquet compression codec.
    fees : bool
        Fill the fee breakdown columns (else null).

    parts : int, optional
        Write the discharges as this many Parquet parts in ``discharges/`` (a dataset for ``--engine dask``).

    Returns
    -------
    (Path, Path)
        The discharge file (with ``parts``: folder) and the hospital file.
    """
    plan = plan_region(cases, years, hospitals, seed, region)
    folder = Path(out)
    if parts is not None and not 1 <= parts <= max(plan.n_blocks, 1):
        raise SettingsError(
            f"parts must be between 1 and {max(plan.n_blocks, 1)} (one block each at least)", key="parts"
        )
    blocks = [range(plan.n_blocks)] if parts is None else _split(plan.n_blocks, parts)
    files = (
        ["discharges.parquet"]
        if parts is None
        else [f"discharges/part-{k:05d}.parquet" for k in range(parts)]
    )
    names = (*files, "hospitals.csv")
    with atomic_folder(folder, names, if_exists=if_exists) as tmp:
        for name, part in zip(files, blocks, strict=True):
            (tmp / name).parent.mkdir(exist_ok=True)
            _write_discharges(plan, tmp / name, progress, compression, fees, part)
        pacsv.write_csv(plan.hospitals.table, tmp / names[-1], pacsv.WriteOptions(quoting_style="needed"))
    return folder / ("discharges.parquet" if parts is None else "discharges"), folder / names[-1]


def _split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` consecutive ranges of nearly equal length."""
    edges = [n * k // parts for k in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(edges)]


def write_parquet(
    plan: Plan,
    target: str | Path,
    progress: Callable[[int], None] | None = None,
    compression: str = "zstd",
    fees: bool = False,
) -> Path:
    """Write the plan's discharges to one Parquet file (one row group per block), atomically."""
    with atomic_file(target, if_exists="replace") as tmp:
        _write_discharges(plan, tmp, progress, compression, fees)
    return Path(target)


def _write_discharges(
    plan: Plan, path: Path, progress, compression: str, fees: bool, blocks: range | None = None
) -> None:
    with pq.ParquetWriter(path, output_schema(), compression=compression, **PARQUET_OPTIONS) as writer:
        for b in range(plan.n_blocks) if blocks is None else blocks:
            batch = generate_block(plan, b, False, fees)
            writer.write_batch(batch, row_group_size=plan.block_size)
            if progress is not None:
                progress(batch.num_rows)


def split_by_year(
    source: str | Path, year: int, before: str | Path, rest: str | Path, *, if_exists: IfExists = "error"
) -> tuple[Path, Path]:
    """Stream a discharges Parquet file into the cases discharged before ``year`` and all the others (later or
    undated ones too: settlement routes them by the policy period, so no case is lost); both files atomically.
    """
    reader = pq.ParquetFile(source, pre_buffer=False)
    with (
        atomic_file(before, if_exists=if_exists) as tmp_before,
        atomic_file(rest, if_exists=if_exists) as tmp_rest,
        pq.ParquetWriter(tmp_before, reader.schema_arrow, **PARQUET_OPTIONS) as past,
        pq.ParquetWriter(tmp_rest, reader.schema_arrow, **PARQUET_OPTIONS) as now,
    ):
        for batch in reader.iter_batches():
            y = pc.year(batch.column("discharge_date"))
            past.write_batch(batch.filter(pc.fill_null(pc.less(y, year), False)))
            now.write_batch(batch.filter(pc.fill_null(pc.greater_equal(y, year), True)))
    return Path(before), Path(rest)
