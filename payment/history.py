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

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from grouper.errors import InputError
from grouper.io.discharges import to_arrow
from grouper.io.tables import read_table
from grouper.io.writer import PARQUET_OPTIONS, IfExists, atomic_folder
from payment._arrays import to_str_numpy
from payment.budget import level_coefficients
from payment.inputs import first_row
from payment.policy import POOLS

__all__ = ["HISTORY_FILES", "read_history", "write_history"]

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
    first = first_row(path)
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
    return t


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
