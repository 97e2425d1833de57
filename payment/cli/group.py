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
    scheme: str = typer.Option("chs-drg-1.1", help="Codebook: chs-drg-1.1, or dip (needs --catalogue)."),
    explain: bool = typer.Option(
        False, "--explain", help="Add a `reason` column: why each case landed there."
    ),
    encoding: str = ENCODING,
    quiet: bool = QUIET,
    force: bool = FORCE,
    debug: bool = DEBUG,
) -> None:
    """Group discharge records into CHS-DRG groups (mdc, adrg, drg, drg_status); output by suffix of --out."""
    try:
        check_output(out, force)
        codebook = Codebook.load(scheme)
        metadata = {
            "drgdip.version": grouper.__version__,
            "drgdip.codebook": codebook.scheme,
            "drgdip.codebook_sha256": codebook.fingerprint,
        }

        def run(table: pa.Table, duplicate) -> pa.Table:
            return grouper.group_drg(table, codebook, explain=explain, duplicate=duplicate)

        counts: collections.Counter[str] = collections.Counter()

        def tally(tables):
            for t in tables:
                counts.update(_count(t))
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
            results = group_files(inputs, run, encoding=encoding, on_batch=lambda n: bar.advance(task, n))
            rows = write_results(tally(results), out, overwrite=force, metadata=metadata)
    except (InputError, CodebookError, UserError) as exc:
        fail(str(exc), debug)
    if not quiet:
        summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        console.print(f"{rows:,} cases grouped with {codebook.scheme} → {out}: {summary}", highlight=False)


def _count(table: pa.Table) -> dict[str, int]:
    vc = table.column("drg_status").combine_chunks().cast(pa.string()).value_counts()
    return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
