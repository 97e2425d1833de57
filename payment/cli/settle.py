"""``drgdip settle``: settle a region's year from grouped cases, a hospitals table and a policy."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer

from grouper.dip.catalogue import CatalogueError, read_catalogue
from payment.budget import level_coefficients
from payment.cli._app import DEBUG, FORCE, QUIET, UserError, app, check_output, fail
from payment.cli._app import stderr as console
from payment.policy import Policy, PolicyError
from payment.settle import settle as settle_region


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
    point value; ``hospital_years.csv`` (pool, hospital_id, total_cost, total_points[, total_own_cost]) for the
    优值区间; ``level_years.csv`` (year, level, mean_cost; level 0 = the city) for level coefficients."""
    out: dict = {}
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
    history: Path = typer.Option(None, "--history", help="Folder with region_years.csv / level_years.csv."),
    special_cases: Path = typer.Option(None, "--special-cases", help="CSV with a case_id column (特例单议)."),
    weights: Path = typer.Option(None, "--weights", help="DRG weights (drg, rw) for a DRG policy."),
    catalogue: str = typer.Option(
        None, "--catalogue", help="DIP catalogue (default: the policy's catalogue)."
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
        table = _read_table(cases, ("case_id", "hospital_id", "dip_group", "drg"))
        if discharges is not None:
            table = _join(_read_table(discharges, ("case_id", "hospital_id")), table, discharges, cases)
        _need(table, cases, ("case_id", "hospital_id", "insurance_type", "total_cost"))
        hosp = _read_table(hospitals, ("hospital_id", "name", "region", "type"))
        _need(hosp, hospitals, ("hospital_id", "level"))
        cat = None
        name = catalogue or pol.header.get("catalogue")
        if pol.scheme == "dip" and "dip_avg_cost" not in table.column_names and name:
            cat = read_catalogue(name)
        w = None
        if weights is not None:
            w = _read_table(weights, ("drg",))
            _need(w, weights, ("drg", "rw"))
        hist = read_history(history) if history is not None else None
        declared: list[str] = []
        if special_cases is not None:
            sc = _read_table(special_cases, ("case_id",))
            _need(sc, special_cases, ("case_id",))
            declared = [x for x in sc.column("case_id").to_pylist() if x]
        try:
            result = settle_region(
                table, hosp, pol, catalogue=cat, weights=w, history=hist, special_cases=declared
            )
        except ValueError as exc:
            raise UserError(f"{cases}: {exc}") from None
        hashes = {
            "policy_sha256": pol.sha256,
            "catalogue_fingerprint": getattr(cat, "fingerprint", None),
            "weights_sha256": None if weights is None else hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
        result.region.update(hashes)
        out.mkdir(parents=True, exist_ok=True)
        meta = {f"drgdip.{k}": str(v) for k, v in hashes.items() if v}
        buf = pa.BufferOutputStream()
        pq.write_table(result.cases.replace_schema_metadata(meta), buf, compression="zstd")
        _atomic_bytes(out / "cases.parquet", buf.getvalue().to_pybytes())
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(result.hospitals.column_names)
        writer.writerows(
            zip(*(result.hospitals.column(c).to_pylist() for c in result.hospitals.column_names), strict=True)
        )
        _atomic_bytes(out / "hospitals.csv", text.getvalue().encode("utf-8"))
        js = json.dumps(result.region, ensure_ascii=False, indent=2) + "\n"
        _atomic_bytes(out / "region.json", js.encode("utf-8"))
    except (PolicyError, CatalogueError, UserError) as exc:
        fail(str(exc), debug)
    if not quiet:
        r = result.region
        console.print(
            f"{r['cases']:,} cases settled for {r['region']} {r['year']} → {out}: "
            + ", ".join(f"{k} {v:,}" for k, v in r["routes"].items() if v)
            + f"; payment due {r['totals']['payment_due']} yuan",
            highlight=False,
        )
        for w_ in r["warnings"]:
            console.print(f"[yellow]warning:[/yellow] {w_}", highlight=False)
