"""``drgdip synth``: write a synthetic region (discharges.parquet + hospitals.csv) into a folder."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from payment.cli import _options as opt
from payment.cli._app import UserError, check_output, command, if_exists, progress_bar
from payment.cli._app import stderr as console


def _years(text: str) -> list[int]:
    try:
        years = [int(y) for y in text.split(",") if y.strip()]
    except ValueError:
        raise UserError(f"--years {text!r}: expected comma-separated years such as 2022,2023,2024") from None
    if not years or any(not 1900 < y < 2200 for y in years):
        raise UserError(f"--years {text!r}: expected comma-separated years such as 2022,2023,2024")
    return years


@command()
def synth(
    out: Path = opt.OUT,
    cases: int = typer.Option(100_000, "--cases", help="Number of discharges over all years."),
    years: str = typer.Option("2022,2023,2024", "--years", help="Comma-separated discharge years."),
    hospitals: int = typer.Option(40, "--hospitals", help="Number of hospitals."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives byte-identical files."),
    region: Path | None = typer.Option(
        None, "--region", help="Region parameters (default codebooks/synth/region-default.toml)."
    ),
    fees: bool = typer.Option(
        False, "--fees", help="Add the fee breakdown fee_01 … fee_14 (医疗收费项目类别)."
    ),
    parts: int = typer.Option(
        None,
        "--parts",
        help="Write the discharges as a partitioned dataset: discharges/part-00000.parquet … (this many files, "
        "the same rows in the same order), for --engine dask.",
        show_default=False,
    ),
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Generate a synthetic region: discharges.parquet (canonical columns + synthetic_defect) and hospitals.csv."""
    from grouper.synth import write_region

    year_list = _years(years)
    if cases < 0 or hospitals < 1 or seed < 0:
        raise UserError("--cases must be ≥ 0, --hospitals ≥ 1 and --seed ≥ 0")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; --out names a folder")
    for name in ("discharges.parquet" if parts is None else "discharges", "hospitals.csv"):
        check_output(out / name, force)
    start = time.perf_counter()
    with progress_bar(quiet) as bar:
        task = bar.add_task("generating", total=cases)
        write_region(
            out,
            cases,
            year_list,
            hospitals,
            seed,
            region,
            lambda n: bar.advance(task, n),
            fees=fees,
            if_exists=if_exists(force),
            parts=parts,
        )
    seconds = time.perf_counter() - start
    if not quiet:
        console.print(
            f"{cases:,} cases × {hospitals} hospitals, years {','.join(map(str, year_list))}, seed {seed} → {out} "
            f"({seconds:.1f} s)",
            highlight=False,
        )
