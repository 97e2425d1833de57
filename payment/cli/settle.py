"""``drgdip settle``: settle a region's year from grouped cases, a hospitals table and a policy.

The cases are streamed (:func:`payment.settle.settle_batches`): ``--cases`` (and ``--discharges``) are read
batch by batch, twice, and ``cases.parquet`` is written row group by row group to a temporary file that
replaces the output at the end, so memory does not grow with the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer

from grouper.dip.catalogue import CatalogueError, read_catalogue
from payment._arrays import to_str_numpy
from payment.budget import level_coefficients
from payment.cli._app import DEBUG, FORCE, QUIET, UserError, app, check_output, fail
from payment.cli._app import stderr as console
from payment.deductions import parse_deductions
from payment.policy import POOLS, Policy, PolicyError
from payment.settle import BATCH_SIZE, settle_batches

#: Rows per row group of cases.parquet (fixed, so the file does not depend on how the input was read).
ROW_GROUP = 1 << 19
#: Per-case columns copied from the input: their dictionaries are the input's, cut as the input was read.
_FROM_INPUT = ("case_id", "hospital_id", "insurance_type")


def _read_table(path: Path, strings: tuple[str, ...] = ()) -> pa.Table:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in strings}, strings_can_be_null=True)
        return pacsv.read_csv(path, convert_options=opts)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def _need(table: pa.Table, path: Path, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}")


def read_history(folder: Path) -> dict:
    """Read ``--history DIR``: ``region_years.csv`` (pool, year, total_cost, total_points) for the 1:2:7 budget
    point value; ``history_cases.parquet`` or ``.csv`` (pool or insurance_type, year, total_cost, points; one
    row per case) for the trimmed 1:2:7 value; ``hospital_years.csv`` (pool, hospital_id, total_cost,
    total_points[, total_own_cost]) for the 优值区间; ``level_years.csv`` (year, level, mean_cost; level 0 =
    the city) for level coefficients."""
    out: dict = {}
    cases = _history_cases(folder)
    if cases is not None:
        out["cases"] = cases
    ry = folder / "region_years.csv"
    if ry.exists():
        t = _read_table(ry, ("pool",)).sort_by([("pool", "ascending"), ("year", "ascending")]).to_pylist()
        pools: dict = {}
        for row in t:
            pools.setdefault(row["pool"], ([], []))
            pools[row["pool"]][0].append(row["total_cost"])
            pools[row["pool"]][1].append(row["total_points"])
        for p, (c, _) in pools.items():
            if len(c) != 3:
                raise UserError(f"{ry}: pool {p!r} needs exactly three years, got {len(c)}")
        out["pools"] = {p: (c, q) for p, (c, q) in pools.items()}
    hy = folder / "hospital_years.csv"
    if hy.exists():
        t = _read_table(hy, ("pool", "hospital_id")).sort_by(
            [("pool", "ascending"), ("hospital_id", "ascending")]
        )
        _need(t, hy, ("pool", "hospital_id", "total_cost", "total_points"))
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
        rows = _read_table(ly).sort_by([("level", "ascending"), ("year", "ascending")]).to_pylist()
        means: dict = {}
        for row in rows:
            means.setdefault(int(row["level"]), []).append(row["mean_cost"])
        if 0 not in means or any(len(v) != 3 for v in means.values()):
            raise UserError(f"{ly}: needs three years for the city (level 0) and each level")
        city = means.pop(0)
        out["level_coefficients"] = level_coefficients(means, city)
    return out


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
        raise UserError(f"{folder}: both history_cases.parquet and history_cases.csv; keep one")
    path = found[0]
    t = _read_table(path, ("pool", "insurance_type"))
    key = "pool" if "pool" in t.column_names else "insurance_type"
    _need(t, path, (key, "year", "total_cost", "points"))
    first = 2 if path.suffix == ".csv" else 1  # CSV rows counted as lines (the header is line 1)
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
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(
            f"{path}: row {first + i}, column {column}: {table.column(column)[i].as_py()!r} {what}"
        )


def _join(base: pa.Table, grouped: pa.Table, base_path: Path, grouped_path: Path) -> pa.Table:
    """Discharges + grouping columns, row by row; the two files must list the same case_ids in the same order."""
    if base.num_rows != grouped.num_rows or not base.column("case_id").equals(grouped.column("case_id")):
        raise UserError(
            f"{grouped_path}: rows do not line up with {base_path} (same case_ids, same order needed)"
        )
    for name in grouped.column_names:
        if name != "case_id":
            col = grouped.column(name)
            base = (
                base.set_column(base.schema.get_field_index(name), name, col)
                if name in base.column_names
                else base.append_column(name, col)
            )
    return base


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _batches(path: Path, batch_size: int) -> Iterator[pa.Table]:
    """Read cases batch by batch (Parquet row batches; CSV blocks, every column as text), at least one table."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read
            tables = (pa.Table.from_batches([b]) for b in pf.iter_batches(batch_size=batch_size))
            empty = pf.schema_arrow.empty_table()
        else:
            names = pacsv.open_csv(path).schema.names
            opts = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, strings_can_be_null=True
            )
            reader = pacsv.open_csv(
                path, read_options=pacsv.ReadOptions(block_size=1 << 24), convert_options=opts
            )
            tables = (pa.Table.from_batches([b]) for b in reader)
            empty = pa.schema([(c, pa.string()) for c in names]).empty_table()
        seen = False
        for t in tables:
            seen = True
            yield t
        if not seen:
            yield empty
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None


def _columns(*paths: Path | None) -> set[str]:
    """Column names of the case files (Parquet schema or CSV header)."""
    names: set[str] = set()
    for path in paths:
        if path is not None:
            names.update(next(_batches(path, 1)).column_names)
    return names


def _aligned(a: Iterator[pa.Table], b: Iterator[pa.Table], a_path: Path, b_path: Path):
    """Pairs of equal-length slices of two row streams, however each stream was cut into batches."""
    ta, tb = next(a, None), next(b, None)
    while ta is not None and tb is not None:
        n = min(ta.num_rows, tb.num_rows)
        yield ta.slice(0, n), tb.slice(0, n)
        ta = ta.slice(n) if ta.num_rows > n else next(a, None)
        tb = tb.slice(n) if tb.num_rows > n else next(b, None)
    if (ta is not None and ta.num_rows) or (tb is not None and tb.num_rows):
        raise UserError(f"{b_path}: rows do not line up with {a_path} (same case_ids, same order needed)")


def _prefetched(items: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The same items, the next one read in a background thread while the current one is used."""
    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(next, items, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, items, None)
            yield item


def _first_seen(column: pa.ChunkedArray) -> pa.Array:
    """A dictionary column as one array whose dictionary lists the values in order of first appearance.

    Parquet stores the Arrow dictionary as it is, so this makes a row group's bytes depend only on its values.
    """
    code: dict = {}
    parts = [np.zeros(0, dtype=np.int32)]
    for chunk in column.chunks:
        idx = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        remap = np.full(len(chunk.dictionary) + 1, -1, dtype=np.int32)  # the last entry: null
        used = pc.unique(pa.array(idx)).to_numpy()  # in order of first appearance
        used = used[used >= 0]
        for i, value in zip(used.tolist(), chunk.dictionary.take(pa.array(used)).to_pylist(), strict=True):
            remap[i] = code.setdefault(value, len(code))
        parts.append(remap[idx])
    new = np.concatenate(parts)
    indices = pa.array(new, mask=new < 0).cast(column.type.index_type)  # no more values than the input's
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(code), column.type.value_type))


class _CaseWriter:
    """Per-case tables → Parquet in row groups of ``ROW_GROUP`` rows whatever the batches (byte-stable);
    each row group is written in a background thread while the next batches are settled."""

    def __init__(self, path: Path, metadata: dict[str, str]):
        self.path, self.metadata = path, metadata
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.rows = 0
        self.pool = ThreadPoolExecutor(1)
        self.busy: Future | None = None  # the row group being written

    def __call__(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        while self.rows >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        group, rest = table.slice(0, n), table.slice(n)
        self.pending, self.rows = [rest], rest.num_rows
        cols = [
            _first_seen(c) if pa.types.is_dictionary(c.type) and name in _FROM_INPUT else c
            for name, c in zip(group.column_names, group.columns, strict=True)
        ]
        group = pa.table(cols, names=group.column_names).replace_schema_metadata(self.metadata)
        if self.busy is not None:
            self.busy.result()
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, group.schema, compression="zstd")
        self.busy = self.pool.submit(self.writer.write_table, group, row_group_size=ROW_GROUP)

    def close(self) -> None:
        """Write the last row group (or the empty table) and close the file."""
        if self.rows or self.writer is None:
            self._flush(self.rows)
        self.busy.result()
        self.pool.shutdown()
        self.writer.close()

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        self.pool.shutdown()
        if self.writer is not None:
            self.writer.close()
        self.path.unlink(missing_ok=True)


@app.command()
def settle(
    cases: Path = typer.Option(
        ..., "--cases", help="Grouped cases: Parquet or CSV (canonical + grouping columns)."
    ),
    hospitals: Path = typer.Option(..., "--hospitals", help="Hospitals CSV: hospital_id, name, level, …"),
    policy: Path = typer.Option(
        ..., "--policy", help="Policy TOML (codebooks/policies/<region>-<year>.toml)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: cases.parquet, hospitals.csv, region.json."
    ),
    discharges: Path = typer.Option(
        None,
        "--discharges",
        help="The discharges that were grouped (same rows, same order) when --cases holds "
        "only grouping columns, as `drgdip group` writes them.",
    ),
    history: Path = typer.Option(
        None,
        "--history",
        help="Folder with region_years.csv, history_cases.parquet|csv, hospital_years.csv, level_years.csv.",
    ),
    deductions: Path = typer.Option(
        None,
        "--deductions",
        help="Monthly audit deductions (审核扣款) CSV/Parquet: hospital_id, month (YYYY-MM), amount (yuan)"
        "[, reason]; taken off the monthly pre-settlement.",
    ),
    special_cases: Path = typer.Option(None, "--special-cases", help="CSV with a case_id column (特例单议)."),
    weights: Path = typer.Option(None, "--weights", help="DRG weights (drg, rw) for a DRG policy."),
    catalogue: str = typer.Option(
        None, "--catalogue", help="DIP catalogue (default: the policy's catalogue)."
    ),
    batch_size: int = typer.Option(
        BATCH_SIZE, "--batch-size", help="Cases per batch (memory; not results).", min=1
    ),
    quiet: bool = QUIET,
    force: bool = FORCE,
    debug: bool = DEBUG,
) -> None:
    """Settle a region's year (区域点数法总额预算): routes, points, point values, hospital payments."""
    try:
        pol = Policy.load(policy)
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} exists and is not a folder")
        for name in ("cases.parquet", "hospitals.csv", "region.json"):
            check_output(out / name, force)

        def batches() -> Iterator[pa.Table]:
            grouped = _prefetched(_batches(cases, batch_size))
            if discharges is not None:
                pairs = _aligned(_prefetched(_batches(discharges, batch_size)), grouped, discharges, cases)
                grouped = (_join(d, g, discharges, cases) for d, g in pairs)
            for t in grouped:
                _need(t, cases, ("case_id", "hospital_id", "insurance_type", "total_cost"))
                yield t

        hosp = _read_table(hospitals, ("hospital_id", "name", "region", "type"))
        _need(hosp, hospitals, ("hospital_id", "level"))
        cat = None
        name = catalogue or pol.header.get("catalogue")
        if pol.scheme == "dip" and "dip_avg_cost" not in _columns(cases, discharges) and name:
            cat = read_catalogue(name)
        w = None
        if weights is not None:
            w = _read_table(weights, ("drg",))
            _need(w, weights, ("drg", "rw"))
        hist = read_history(history) if history is not None else None
        deducted = None
        if deductions is not None:
            table = _read_table(deductions, ("hospital_id", "month", "amount", "reason"))
            first = 2 if deductions.suffix.lower() != ".parquet" else 1
            try:
                deducted = parse_deductions(
                    table, hosp.column("hospital_id").cast(pa.string()).to_pylist(), pol, first_row=first
                )
            except ValueError as exc:
                raise UserError(f"{deductions}: {exc}") from None
        declared: list[str] = []
        if special_cases is not None:
            sc = _read_table(special_cases, ("case_id",))
            _need(sc, special_cases, ("case_id",))
            declared = [x for x in sc.column("case_id").to_pylist() if x]
        hashes = {
            "policy_sha256": pol.sha256,
            "catalogue_fingerprint": getattr(cat, "fingerprint", None),
            "weights_sha256": None if weights is None else hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".cases.parquet.tmp"
        writer = _CaseWriter(tmp, {f"drgdip.{k}": str(v) for k, v in hashes.items() if v})
        try:
            hosp_table, region = settle_batches(
                batches,
                hosp,
                pol,
                write=writer,
                catalogue=cat,
                weights=w,
                history=hist,
                special_cases=declared,
                deductions=deducted,
            )
            writer.close()
        except BaseException as exc:
            writer.discard()
            if isinstance(exc, ValueError):
                raise UserError(f"{cases}: {exc}") from None
            raise
        region.update(hashes)
        text = io.StringIO()
        csv_out = csv.writer(text, lineterminator="\n")
        csv_out.writerow(hosp_table.column_names)
        csv_out.writerows(
            zip(*(hosp_table.column(c).to_pylist() for c in hosp_table.column_names), strict=True)
        )
        os.replace(tmp, out / "cases.parquet")
        _atomic_bytes(out / "hospitals.csv", text.getvalue().encode("utf-8"))
        js = json.dumps(region, ensure_ascii=False, indent=2) + "\n"
        _atomic_bytes(out / "region.json", js.encode("utf-8"))
    except (PolicyError, CatalogueError, UserError) as exc:
        fail(str(exc), debug)
    if not quiet:
        r = region
        console.print(
            f"{r['cases']:,} cases settled for {r['region']} {r['year']} → {out}: "
            + ", ".join(f"{k} {v:,}" for k, v in r["routes"].items() if v)
            + f"; payment due {r['totals']['payment_due']} yuan",
            highlight=False,
        )
        for w_ in r["warnings"]:
            console.print(f"[yellow]warning:[/yellow] {w_}", highlight=False)
