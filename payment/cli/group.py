"""``drgdip group``: group discharge files under CHS-DRG or DIP; one output row per input row, in input order."""

from __future__ import annotations

import collections
from pathlib import Path

import pyarrow as pa
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import grouper
from grouper.batch import group_files
from grouper.codebook import Codebook, CodebookError
from grouper.dip import CatalogueError, group_dip, read_catalogue, read_procedure_tiers
from grouper.dip.group import INPUT_COLUMNS as DIP_COLUMNS
from grouper.drg.group import INPUT_COLUMNS as DRG_COLUMNS
from grouper.io import InputError, count_rows, write_results
from payment.cli._app import (
    DEBUG,
    ENCODING,
    FORCE,
    OUT,
    QUIET,
    UserError,
    app,
    check_output,
    fail,
    show_progress,
)
from payment.cli._app import stderr as console


@app.command()
def group(
    inputs: list[Path] = typer.Argument(
        ..., help="Discharge files: CSV (UTF-8 or GBK), Excel (.xlsx) or Parquet."
    ),
    out: Path = OUT,
    scheme: str = typer.Option(
        "chs-drg-1.1", help="chs-drg-1.1 (CHS-DRG codebook) or dip (needs --catalogue)."
    ),
    catalogue: str = typer.Option(
        None,
        help="DIP catalogue (目录库): a shipped name such as pingdingshan-2025, or a .csv/.parquet file.",
    ),
    tiers: Path = typer.Option(
        None, help="DIP: a region's procedure tier table (code,tier) over the default."
    ),
    tie_break: str = typer.Option("national", help="DIP: tie-break profile of codebooks/dip/grouping.toml."),
    explain: bool = typer.Option(
        False, "--explain", help="Add a `reason` column: why each case landed there."
    ),
    encoding: str = ENCODING,
    quiet: bool = QUIET,
    force: bool = FORCE,
    debug: bool = DEBUG,
) -> None:
    """Group discharge records under CHS-DRG (mdc, adrg, drg, drg_status) or DIP (dip_group … dip_status)."""
    try:
        check_output(out, force)
        run, metadata, status_column, columns = _grouping(scheme, catalogue, tiers, tie_break, explain)
        counts: collections.Counter[str] = collections.Counter()

        def tally(tables):
            for t in tables:
                vc = t.column(status_column).combine_chunks().cast(pa.string()).value_counts()
                counts.update({str(v["values"]): int(v["counts"]) for v in vc.to_pylist()})
                yield t

        totals = [count_rows(p) for p in inputs]
        total = sum(totals) if all(x is not None for x in totals) else None
        with Progress(
            TextColumn("grouping"),
            BarColumn(),
            TextColumn("{task.completed:,} cases"),
            TimeElapsedColumn(),
            console=console,
            disable=not show_progress(quiet),
            transient=True,
        ) as bar:
            task = bar.add_task("group", total=total)
            results = group_files(
                inputs, run, encoding=encoding, columns=columns, on_batch=lambda n: bar.advance(task, n)
            )
            rows = write_results(tally(results), out, overwrite=force, metadata=metadata)
    except (InputError, CodebookError, CatalogueError, UserError) as exc:
        fail(str(exc), debug)
    if not quiet:
        summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        console.print(
            f"{rows:,} cases grouped ({metadata['drgdip.scheme']}) → {out}: {summary}", highlight=False
        )


def _grouping(scheme: str, catalogue: str | None, tiers: Path | None, tie_break: str, explain: bool):
    """The batch function, the output metadata, the status column and the input columns of a scheme."""
    codebook = Codebook.load("chs-drg-1.1" if scheme == "dip" else scheme)
    metadata = {
        "drgdip.version": grouper.__version__,
        "drgdip.scheme": scheme,
        "drgdip.codebook": codebook.scheme,
        "drgdip.codebook_sha256": codebook.fingerprint,
    }
    if scheme != "dip":
        if catalogue:
            raise UserError("--catalogue is for --scheme dip")

        def run_drg(table: pa.Table, duplicate) -> pa.Table:
            return grouper.group_drg(table, codebook, explain=explain, duplicate=duplicate)

        return run_drg, metadata, "drg_status", DRG_COLUMNS
    if not catalogue:
        raise UserError("--scheme dip needs --catalogue (e.g. pingdingshan-2025, or a catalogue file)")
    cat = read_catalogue(catalogue)
    proc_tiers = read_procedure_tiers(tiers)
    metadata.update(
        {
            "drgdip.catalogue": cat.name,
            "drgdip.catalogue_sha256": cat.fingerprint,
            "drgdip.tiers_sha256": proc_tiers.fingerprint,
        }
    )

    def run_dip(table: pa.Table, duplicate) -> pa.Table:
        return group_dip(
            table,
            cat,
            tiers=proc_tiers,
            codebook=codebook,
            tie_break=tie_break,
            explain=explain,
            duplicate=duplicate,
        )

    return run_dip, metadata, "dip_status", DIP_COLUMNS
