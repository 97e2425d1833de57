"""``drgdip compare A B``: differences between two settlement folders (a baseline and a what-if)."""

from __future__ import annotations

from pathlib import Path

import typer

from payment.cli import _options as opt
from payment.cli._app import check_output, command
from payment.cli._app import stderr as console


@command(
    help="Compare two settlements (结算对比): per hospital, per hospital × pool, per pool, and a summary."
)
def compare(
    a: Path = typer.Argument(..., help="Baseline settlement folder (drgdip settle -o)."),
    b: Path = typer.Argument(..., help="Scenario settlement folder."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="compare.xlsx (one sheet per table) or a folder of compare_*.csv files."
    ),
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Compare two settlements (结算对比): per hospital, per hospital × pool, per pool, and a summary."""
    from payment.compare import compare_settlements, write_comparison

    if out.suffix.lower() == ".xlsx":
        check_output(out, force)
    else:
        for name in ("summary", "hospitals", "hospital_pools", "pools"):
            check_output(out / f"compare_{name}.csv", force)
    cmp = compare_settlements(a, b)
    write_comparison(cmp, out)
    if not quiet:
        for row in cmp.summary.itertuples():
            if row.item in ("payment_due", "clearing"):
                console.print(f"{row.item}: {row.a} → {row.b} (Δ {row.diff})", highlight=False, markup=False)
            elif row.item == "hospitals_changed":  # a, b: the hospitals of each; diff: those paid otherwise
                line = f"hospitals paid otherwise: {row.diff} of {row.b}"
                console.print(line, highlight=False, markup=False)
        console.print(f"→ {out}", highlight=False, markup=False)
