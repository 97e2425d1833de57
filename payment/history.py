"""The settlement history folder (历史数据, ``drgdip settle --history``): a documented format (docs/history.md)
with a reader and a writer.

Four optional files, each feeding one policy choice:

- ``region_years.csv``: ``pool, year, total_cost, total_points`` — three years per pool, for the 1:2:7 budget
  point value (``budget_method = "history"``);
- ``history_cases.parquet`` or ``.csv``: ``pool`` (or ``insurance_type``), ``year``, ``total_cost``, ``points`` —
  one row per past case, for the trimmed 1:2:7 value (``"history_trimmed"``);
- ``hospital_years.csv``: ``pool, hospital_id, total_cost, total_points[, total_own_cost]`` — for the 优值区间
  (``"efficient_1d"`` / ``"efficient_2d"``);
- ``level_years.csv``: ``year, level, mean_cost`` (level 0 = the city) — three years each, for level
  coefficients (``hospital_coef.method = "history"``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from grouper.errors import InputError
from grouper.io.discharges import to_arrow
from grouper.io.formats import InputWarning, Layout
from grouper.io.tables import first_row_of, read_table
from grouper.io.writer import PARQUET_OPTIONS, IfExists, atomic_folder
from payment._arrays import to_str_numpy
from payment.budget import level_coefficients
from payment.policy import POOLS

__all__ = ["HISTORY_FILES", "history_from_settlements", "read_history", "write_history"]

#: The files of a history folder, by the name :func:`write_history` takes them under.
HISTORY_FILES = {
    "region_years": "region_years.csv",
    "cases": "history_cases.parquet",
    "hospital_years": "hospital_years.csv",
    "level_years": "level_years.csv",
}


def read_history(folder: str | os.PathLike) -> dict:
    """Read a history folder into what :func:`payment.settle.settle` takes as ``history``.

    Returns
    -------
    dict
        ``{"pools": {pool: (costs[3], points[3])}, "hospitals": {pool: (costs, points, own_costs | None)},
        "cases": pa.Table, "level_coefficients": {level: k}}``, with the keys of the files present.

    Raises
    ------
    InputError
        A missing column, a bad value (file, row, column), a pool or level without its three years.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder", path=folder)
    out: dict = {}
    cases = _history_cases(folder)
    if cases is not None:
        out["cases"] = cases
    ry = folder / "region_years.csv"
    if ry.exists():
        t = read_table(ry, text=("pool",)).sort_by([("pool", "ascending"), ("year", "ascending")]).to_pylist()
        pools: dict = {}
        for row in t:
            pools.setdefault(row["pool"], ([], []))
            pools[row["pool"]][0].append(row["total_cost"])
            pools[row["pool"]][1].append(row["total_points"])
        for p, (c, _) in pools.items():
            if len(c) != 3:
                raise InputError(
                    f"{ry}: pool {p!r} needs exactly three years, got {len(c)}", path=ry, column="year"
                )
        out["pools"] = {p: (c, q) for p, (c, q) in pools.items()}
    hy = folder / "hospital_years.csv"
    if hy.exists():
        t = read_table(
            hy, text=("pool", "hospital_id"), required=("pool", "hospital_id", "total_cost", "total_points")
        ).sort_by([("pool", "ascending"), ("hospital_id", "ascending")])
        hosp: dict = {}
        own = "total_own_cost" in t.column_names
        for row in t.to_pylist():
            c, q, o = hosp.setdefault(row["pool"], ([], [], [] if own else None))
            c.append(row["total_cost"])
            q.append(row["total_points"])
            if own:
                o.append(row["total_own_cost"])
        out["hospitals"] = hosp
    ly = folder / "level_years.csv"
    if ly.exists():
        rows = read_table(ly).sort_by([("level", "ascending"), ("year", "ascending")]).to_pylist()
        means: dict = {}
        for row in rows:
            means.setdefault(int(row["level"]), []).append(row["mean_cost"])
        if 0 not in means or any(len(v) != 3 for v in means.values()):
            raise InputError(f"{ly}: needs three years for the city (level 0) and each level", path=ly)
        city = means.pop(0)
        out["level_coefficients"] = level_coefficients(means, city)
    return out


def write_history(
    folder: str | os.PathLike,
    *,
    region_years=None,
    cases=None,
    hospital_years=None,
    level_years=None,
    if_exists: IfExists = "error",
) -> Path:
    """Write a history folder that :func:`read_history` reads (all files together, atomically).

    Each table is anything Arrow-compatible (a pandas DataFrame too) with the columns of its file (see the
    module docstring); ``cases`` goes to ``history_cases.parquet``, the others to CSV.
    """
    tables = {
        name: to_arrow(t)
        for name, t in (
            ("region_years", region_years),
            ("cases", cases),
            ("hospital_years", hospital_years),
            ("level_years", level_years),
        )
        if t is not None
    }
    if not tables:
        raise InputError(f"{folder}: no history table to write", path=folder)
    names = [HISTORY_FILES[n] for n in tables]
    with atomic_folder(folder, names, if_exists=if_exists) as tmp:
        for name, table in tables.items():
            target = tmp / HISTORY_FILES[name]
            if target.suffix == ".parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, target, **PARQUET_OPTIONS)
            else:
                import pyarrow.csv as pacsv

                pacsv.write_csv(table, target)
    return Path(folder)


#: Routes whose cases are paid by points (the cases the history is about).
_POINT_ROUTES = ("DRG", "DIP")


def history_from_settlements(
    settlements: Sequence[str | os.PathLike],
    cases: Sequence[str | os.PathLike],
    *,
    discharges: Sequence[str | os.PathLike | None] | None = None,
    encoding: str | None = None,
    layout: Layout | None = None,
) -> dict[str, pa.Table]:
    """The history tables of three past settled years (历史数据), as :func:`write_history` takes them.

    Each settlement folder (``drgdip settle -o``: its year from ``region.json``, each case's pool, hospital, route
    and points from ``cases.parquet``, levels from ``hospitals.csv``) is read with the cases it settled
    (``cases[i]``, and ``discharges[i]`` when ``cases[i]`` holds only grouping columns), whose ``total_cost`` is the
    case's cost. Only cases paid by points (route DRG or DIP) with points > 0 count. ``encoding`` and ``layout``
    (sheet, header row, renamed headers) are those of the discharge files (``discharges``, else ``cases``), as for
    ``drgdip settle``.

    Returns
    -------
    dict with ``region_years`` (pool, year: costs and points), ``cases`` (one row per case), ``hospital_years``
    (pool × hospital, summed over the three years) and ``level_years`` (year, level: mean cost per case; level 0
    the city; a level without cases in one of the years is left out, with an :class:`InputWarning`).

    Raises
    ------
    InputError
        Not three settlements of three different years, a folder that is not a settlement, cases that are not
        the ones settled (row count or case_id differ).
    """
    from payment.cases import CaseSource

    discharges = list(discharges) if discharges is not None else [None] * len(cases)
    if len(settlements) != 3 or len(cases) != 3 or len(discharges) != 3:
        raise InputError(
            f"the history is three settled years (1:2:7): give three settlements and their cases, not "
            f"{len(settlements)} and {len(cases)}",
            key="settlements",
        )
    frames = []
    for folder, case_file, discharge_file in zip(settlements, cases, discharges, strict=True):
        folder = Path(folder)
        try:
            region = json.loads((folder / "region.json").read_text(encoding="utf-8"))
            settled = pq.read_table(
                folder / "cases.parquet",
                columns=["case_id", "hospital_id", "insurance_type", "route", "points"],
            )
        except (OSError, ValueError, pa.ArrowException):
            raise InputError(f"{folder}: not a settlement folder (drgdip settle -o)", path=folder) from None
        levels = read_table(folder / "hospitals.csv", text=("hospital_id",)).select(["hospital_id", "level"])
        source = CaseSource(case_file, discharge_file, encoding=encoding, layout=layout)
        costs = pa.concat_tables(t.select(["case_id", "total_cost"]) for t in source())
        if costs.num_rows != settled.num_rows or not costs.column("case_id").cast(pa.string()).equals(
            settled.column("case_id").cast(pa.string())
        ):
            raise InputError(
                f"{case_file}: not the cases settled in {folder} ({costs.num_rows:,} rows, the settlement "
                f"{settled.num_rows:,}, or other case_ids)",
                path=case_file,
            )
        frame = settled.drop_columns(["case_id"]).append_column("total_cost", costs.column("total_cost"))
        frame = frame.to_pandas().astype({"route": str, "insurance_type": str, "hospital_id": str})
        frame["year"] = int(region["year"])
        frame["pool"] = "all" if list(region["pools"]) == ["all"] else frame["insurance_type"]
        frame = frame[
            frame.route.isin(_POINT_ROUTES) & (frame.points > 0) & frame.pool.isin(list(region["pools"]))
        ]
        level = dict(
            zip(levels.column("hospital_id").to_pylist(), levels.column("level").to_pylist(), strict=True)
        )
        frames.append(frame.assign(level=frame.hospital_id.map(level)))
    both = pd.concat(frames, ignore_index=True)
    if both.year.nunique() != 3:
        raise InputError(
            f"the three settlements are of the years {sorted(both.year.unique())}: three different years are needed"
        )
    if both.total_cost.isna().any():
        raise InputError(
            "the settled cases have no total_cost to build the history from", column="total_cost"
        )
    region_years = both.groupby(["pool", "year"], as_index=False).agg(
        total_cost=("total_cost", "sum"), total_points=("points", "sum")
    )
    hospital_years = both.groupby(["pool", "hospital_id"], as_index=False).agg(
        total_cost=("total_cost", "sum"), total_points=("points", "sum")
    )
    city = both.groupby("year", as_index=False).agg(mean_cost=("total_cost", "mean")).assign(level=0)
    by_level = (
        both.dropna(subset=["level"])
        .groupby(["year", "level"], as_index=False)
        .agg(mean_cost=("total_cost", "mean"))
    )
    years = by_level.groupby("level").year.transform("nunique")
    partial = sorted(int(v) for v in by_level.level[years != 3].unique())
    if partial:  # a level coefficient needs its three years: the level is left out, and said so
        warnings.warn(
            f"hospital level(s) {', '.join(map(str, partial))} lack settled cases in some of the three years; "
            "level_years.csv leaves them out",
            InputWarning,
            stacklevel=2,
        )
    level_years = pd.concat([city, by_level[years == 3]], ignore_index=True)[["year", "level", "mean_cost"]]
    level_years["level"] = level_years["level"].astype(int)
    return {
        "region_years": pa.Table.from_pandas(region_years.round({"total_cost": 2}), preserve_index=False),
        "cases": pa.Table.from_pandas(both[["pool", "year", "total_cost", "points"]], preserve_index=False),
        "hospital_years": pa.Table.from_pandas(hospital_years.round({"total_cost": 2}), preserve_index=False),
        "level_years": pa.Table.from_pandas(level_years.sort_values(["level", "year"]), preserve_index=False),
    }


def _history_cases(folder: Path) -> pa.Table | None:
    """``history_cases.parquet`` (or ``.csv``), checked row by row: a bad value names its row and column."""
    found = [
        folder / f"history_cases.{ext}"
        for ext in ("parquet", "csv")
        if (folder / f"history_cases.{ext}").exists()
    ]
    if not found:
        return None
    if len(found) > 1:
        raise InputError(f"{folder}: both history_cases.parquet and history_cases.csv; keep one", path=folder)
    path = found[0]
    t = read_table(path, text=("pool", "insurance_type"))
    key = "pool" if "pool" in t.column_names else "insurance_type"
    missing = [c for c in (key, "year", "total_cost", "points") if c not in t.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}", path=path, column=missing[0])
    first = first_row_of(t)
    if key == "pool":
        bad = ~np.isin(to_str_numpy(t.column("pool").combine_chunks()), POOLS)
        _bad_row(path, "pool", bad, first, f"is not one of {', '.join(POOLS)}", t)
    checks = (
        ("year", lambda x: np.isfinite(x) & (x == np.round(x)), "is not a year"),
        ("total_cost", lambda x: np.isfinite(x) & (x >= 0), "is not an amount ≥ 0"),
        ("points", lambda x: np.isfinite(x) & (x > 0), "is not a number of points > 0"),
    )
    for name, ok, what in checks:
        values = pd.to_numeric(t.column(name).to_pandas(), errors="coerce").to_numpy(np.float64)
        _bad_row(path, name, ~ok(values), first, what, t)
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(values))
    return t.replace_schema_metadata(None)


def _bad_row(path: Path, column: str, bad: np.ndarray, first: int, what: str, table: pa.Table) -> None:
    """A bad value of a history table (aggregates, not a patient's row): named with its row and column."""
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{path}: row {first + i}, column {column}: {table.column(column)[i].as_py()!r} {what}",
            path=path,
            row=first + i,
            column=column,
        )
