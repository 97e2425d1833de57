"""``drgdip settle``: settle a region's year from grouped cases, a hospitals table and a policy.

The cases are streamed (:func:`payment.settle.settle_batches`): ``--cases`` (and ``--discharges``) are read
batch by batch, twice, and ``cases.parquet`` is written row group by row group to a temporary file that
replaces the output at the end, so memory does not grow with the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import re
import unicodedata
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

import grouper
from grouper.dip.catalogue import CatalogueError, read_catalogue
from grouper.io import InputError, read_discharges
from payment._arrays import to_str_numpy
from payment.budget import level_coefficients
from payment.cli._app import (
    DEBUG,
    ENCODING,
    FORCE,
    QUIET,
    UserError,
    app,
    check_folder,
    check_output,
    fail,
    progress_bar,
)
from payment.cli._app import stderr as console
from payment.deductions import parse_deductions
from payment.policy import POOLS, Policy, PolicyError
from payment.settle import BATCH_SIZE, settle_batches

#: Rows per row group of cases.parquet (fixed, so the file does not depend on how the input was read).
ROW_GROUP = 1 << 19
#: Per-case columns copied from the input: their dictionaries are the input's, cut as the input was read.
_FROM_INPUT = ("case_id", "hospital_id", "insurance_type")


def _read_table(path: Path, strings: tuple[str, ...] = (), encoding: str | None = None) -> pa.Table:
    """A small table (hospitals, weights, deductions, …): Parquet, Excel or CSV by suffix."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".xlsx", ".xlsm"):
            return _excel(path)
        opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in strings}, strings_can_be_null=True)
        read = pacsv.ReadOptions(encoding=encoding or "utf8")
        return pacsv.read_csv(path, read_options=read, convert_options=opts)
    except (pa.ArrowInvalid, OSError) as exc:
        hint = "; pass --encoding gbk" if "UTF8" in str(exc) else ""
        raise UserError(f"{path}: cannot read: {exc}{hint}") from None


def _excel(path: Path) -> pa.Table:
    """The first sheet of a workbook, every column as text (empty cells null)."""
    try:
        frame = pd.read_excel(path, dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise UserError(f"{path}: not a readable Excel workbook ({exc})") from None
    frame.columns = [str(c) for c in frame.columns]
    return pa.Table.from_pandas(frame.astype(object).where(frame.notna(), None), preserve_index=False)


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


def _ids(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """case_ids as the discharge reader gives them: text, trimmed, empty → null."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    text = pc.utf8_trim_whitespace(pc.cast(col, pa.string()))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _join(base: pa.Table, grouped: pa.Table, base_path: Path, grouped_path: Path, row: int) -> pa.Table:
    """Discharges + grouping columns, row by row; the two files must list the same case_ids in the same order.

    ``row``: the row number (from 1) of the slice's first case, for the error message.
    """
    a = _ids(base.column("case_id"))
    b = _ids(grouped.column("case_id")) if "case_id" in grouped.column_names else a
    if not a.equals(b):
        same = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
        same |= pc.and_(a.is_null(), b.is_null()).to_numpy(zero_copy_only=False)
        i = int(np.argmin(same))
        raise UserError(
            f"{grouped_path}: rows do not line up with {base_path} (same case_ids, same order needed): "
            f"row {row + i}: case_id {b[i].as_py()!r} here, {a[i].as_py()!r} in {base_path}"
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


def _batches(path: Path, batch_size: int, encoding: str | None = None) -> Iterator[pa.Table]:
    """Read a table batch by batch as it is (Parquet row batches; Excel; CSV blocks, every column as text),
    at least one table: grouped outputs as `drgdip group` writes them, and full case tables."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        table = _excel(path)
        yield from (table.slice(i, batch_size) for i in range(0, max(table.num_rows, 1), batch_size))
        return
    try:
        if suffix == ".parquet":
            pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering keeps every row group read
            tables = (pa.Table.from_batches([b]) for b in pf.iter_batches(batch_size=batch_size))
            empty = pf.schema_arrow.empty_table()
        else:
            read = pacsv.ReadOptions(encoding=encoding or "utf8", block_size=1 << 24)
            names = pacsv.open_csv(path, read_options=read).schema.names
            opts = pacsv.ConvertOptions(
                column_types={c: pa.string() for c in names}, strings_can_be_null=True
            )
            reader = pacsv.open_csv(path, read_options=read, convert_options=opts)
            tables = (pa.Table.from_batches([b]) for b in reader)
            empty = pa.schema([(c, pa.string()) for c in names]).empty_table()
        seen = False
        for t in tables:
            seen = True
            yield t
        if not seen:
            yield empty
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        hint = "; pass --encoding gbk" if "UTF8" in str(exc) or "utf-8" in str(exc) else ""
        raise UserError(f"{path}: cannot read: {exc}{hint}") from None


#: The canonical columns the settlement reads (routes, points, money, bed days); the others are not parsed.
_SETTLE_COLUMNS = (
    "case_id", "patient_id", "hospital_id", "insurance_type", "admission_date", "discharge_date", "los_days",
    "department", "principal_dx", "principal_proc", "total_cost", "fund_paid", "patient_paid", "payment_method",
)  # fmt: skip


def _discharges(path: Path, batch_size: int, encoding: str | None) -> Iterator[pa.Table]:
    """Discharges through the grouper's reader (aliases, encodings, dates, trimming; a bad value → null)."""
    try:
        yield from read_discharges(path, encoding=encoding, batch_size=batch_size, columns=_SETTLE_COLUMNS)
    except InputError as exc:
        raise UserError(str(exc)) from None


#: The columns of a grouped output (`drgdip group`, DIP or DRG, with --explain) besides case_id.
_GROUPING = frozenset(
    ("dip_group", "dip_kind", "dip_score", "aux_type", "aux_coef", "dip_status", "dip_avg_cost", "mdc",
     "adrg", "drg", "drg_status", "reason")
)  # fmt: skip
#: Canonical columns a case table must hold under their own names to be read as it is.
_CASE_COLUMNS = ("case_id", "hospital_id", "insurance_type", "total_cost")


def _as_it_is(path: Path) -> bool:
    """A Parquet file with the canonical names is typed already: read as it is (no alias, text or date to map)."""
    if path.suffix.lower() != ".parquet":
        return False
    return set(_CASE_COLUMNS) <= set(next(_batches(path, 1)).column_names)


def _case_batches(cases: Path, discharges: Path | None, batch_size: int, encoding: str | None):
    """The function that returns a fresh stream of case tables (canonical + grouping columns), and the
    column names of ``--cases``.

    ``--discharges`` (or a ``--cases`` file that is not a grouped output) go through the grouper's reader,
    unless :func:`_as_it_is`; a grouped output is read as `drgdip group` writes it and joined row by row.
    """
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(f"--encoding: unknown encoding {encoding!r} (utf-8, gbk, gb18030)") from None
    names = next(_batches(cases, 1, None if discharges else encoding)).column_names
    if discharges is None and set(names) <= _GROUPING | {"case_id"}:
        raise UserError(
            f"{cases} holds only grouping columns: pass the discharges that were grouped with --discharges"
        )
    if discharges is None and _as_it_is(cases):
        return lambda: _prefetched(_batches(cases, batch_size)), names
    base_path = discharges or cases
    extra = [n for n in names if n in _GROUPING] if discharges is None else None  # same file: rows align
    raw = discharges is not None and _as_it_is(discharges)

    def stream() -> Iterator[pa.Table]:
        grouped = _batches(cases, batch_size, None if discharges else encoding)
        if extra is not None:
            grouped = (t.select(extra) for t in grouped)
        base = _batches(base_path, batch_size) if raw else _discharges(base_path, batch_size, encoding)
        row = 1
        for d, g in _aligned(_prefetched(base), _prefetched(grouped), base_path, cases):
            yield _join(d, g, base_path, cases, row)
            row += d.num_rows

    return stream, names


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


#: Hospital levels as exports write them: 1–3, 一级/二级/三级 (with 甲/乙/丙等), 3级 (full-width digits too).
_LEVEL = r"^\s*(?:([123])(?:\.0*)?|([123一二三])\s*[级級]?\s*(?:[甲乙丙]等?)?)\s*$"
_NUMERALS = {"1": 1, "2": 2, "3": 3, "一": 1, "二": 2, "三": 3}


def _hospitals(path: Path, encoding: str | None) -> pa.Table:
    """The hospitals table, checked: at least one row, unique trimmed hospital_id, level 1–3 (三级 → 3)."""
    table = _read_table(path, ("hospital_id", "name", "region", "type", "level"), encoding)
    _need(table, path, ("hospital_id", "level"))
    if table.num_rows == 0:
        raise UserError(f"{path}: no hospital rows (only a header)")
    first = 1 if path.suffix.lower() == ".parquet" else 2
    ids = _ids(table.column("hospital_id"))
    if ids.null_count:
        i = int(np.argmax(ids.is_null().to_numpy(zero_copy_only=False)))
        raise UserError(f"{path}: row {first + i}, column hospital_id: empty")
    text = to_str_numpy(ids)
    values, counts = np.unique(text, return_counts=True)
    if (counts > 1).any():
        dup = values[counts > 1][0]
        rows = ", ".join(str(first + int(i)) for i in np.flatnonzero(text == dup)[:5])
        raise UserError(f"{path}: hospital_id {str(dup)!r} is listed more than once (rows {rows})")
    digits = []
    for i, value in enumerate(table.column("level").to_pylist()):  # a few hundred hospitals
        found = re.match(_LEVEL, unicodedata.normalize("NFKC", str(value or "")))
        if not found:
            raise UserError(
                f"{path}: row {first + i}, column level: {value!r} is not a hospital level "
                "(1, 2 or 3; 一级/二级/三级)"
            )
        digits.append(_NUMERALS[found.group(1) or found.group(2)])
    table = table.set_column(table.schema.get_field_index("level"), "level", pa.array(digits, pa.int8()))
    return table.set_column(table.schema.get_field_index("hospital_id"), "hospital_id", ids)


def _which_file(message: str, cases: Path, hospitals: Path) -> str:
    """An engine error with the file it is about (the hospitals table, the cases, or none: the policy's)."""
    if message.startswith("hospitals table"):
        return f"{hospitals}: {message}"
    if "batches changed" in message or "comparison average" in message:
        return f"{cases}: {message}"
    return message


_HELP = (
    "Settle a region's year (区域点数法总额预算): routes, points, point values, hospital payments.\n\n"
    "Hospitals are paid points × the published point value (rounded to the policy's point_value.decimals), "
    "so a pool allocates a little more or less than its distributable budget (payment.md §0): region.json "
    "records it per pool as publication_difference (allocated + kept by the fund − distributable) and "
    "publication_difference_is (over, under or none).\n\n"
    "Cases of hospitals missing from --hospitals, cases discharged outside the policy's effective period and "
    "declared special cases that are not among the cases are reported as warnings (stderr and region.json)."
)


@app.command(help=_HELP)
def settle(
    cases: Path = typer.Option(
        ...,
        "--cases",
        help="Grouped cases: the output of `drgdip group` (.parquet/.csv/.xlsx) with --discharges, or one "
        "table with the discharge and grouping columns.",
    ),
    hospitals: Path = typer.Option(
        ...,
        "--hospitals",
        help="Hospitals CSV/Excel/Parquet: hospital_id (unique), name, level (1–3 or 一级/二级/三级), …",
    ),
    policy: Path = typer.Option(
        ..., "--policy", help="Policy TOML (codebooks/policies/<region>-<year>.toml)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: cases.parquet, hospitals.csv, region.json."
    ),
    discharges: Path = typer.Option(
        None,
        "--discharges",
        help="The discharges that were grouped (same rows, same order), read as `drgdip group` reads them "
        "(CSV UTF-8/GBK, Excel, Parquet; header aliases), when --cases holds only grouping columns.",
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
    encoding: str = ENCODING,
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
        check_folder(out)
        for name in ("cases.parquet", "hospitals.csv", "region.json"):
            check_output(out / name, force)
        batches, names = _case_batches(cases, discharges, batch_size, encoding)

        hosp = _hospitals(hospitals, encoding)
        cat = None
        name = catalogue or pol.header.get("catalogue")
        if pol.scheme == "dip" and "dip_avg_cost" not in names and name:
            cat = read_catalogue(name)
        w = None
        if weights is not None:
            w = _read_table(weights, ("drg",), encoding)
            _need(w, weights, ("drg", "rw"))
        hist = read_history(history) if history is not None else None
        deducted = None
        if deductions is not None:
            table = _read_table(deductions, ("hospital_id", "month", "amount", "reason"), encoding)
            first = 2 if deductions.suffix.lower() != ".parquet" else 1
            try:
                deducted = parse_deductions(
                    table, hosp.column("hospital_id").cast(pa.string()).to_pylist(), pol, first_row=first
                )
            except ValueError as exc:
                raise UserError(f"{deductions}: {exc}") from None
        declared: list[str] = []
        if special_cases is not None:
            sc = _read_table(special_cases, ("case_id",), encoding)
            _need(sc, special_cases, ("case_id",))
            declared = [x for x in _ids(sc.column("case_id")).to_pylist() if x]
        hashes = {
            "drgdip_version": grouper.__version__,
            "policy_sha256": pol.sha256,
            "catalogue_fingerprint": getattr(cat, "fingerprint", None),
            "weights_sha256": None if weights is None else hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".cases.parquet.tmp"
        meta = {
            "drgdip.version" if k == "drgdip_version" else f"drgdip.{k}": str(v)
            for k, v in hashes.items()
            if v
        }
        writer = _CaseWriter(tmp, meta)

        def counted():  # settle reads the cases twice (or three times): the bar counts every row read
            for t in batches():
                bar.advance(task, t.num_rows)
                yield t

        try:
            with progress_bar("settling (cases read over all passes)", quiet) as bar:
                task = bar.add_task("settle", total=None)
                hosp_table, region = settle_batches(
                    counted,
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
                raise UserError(_which_file(str(exc), cases, hospitals)) from None
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
