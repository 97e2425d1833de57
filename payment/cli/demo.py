"""``drgdip demo``: the whole engine on a synthetic region, as the commands a user would run.

synth (4 years of a 40-hospital region, split by discharge year) → catalog (a local DIP catalogue from 2022–2024)
→ group (the 2025 cases against it) → settle (2025 under ``codebooks/policies/demo-2025.toml``), then a short
summary of the region.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from grouper.resources import data_path
from payment.cli import _options as opt
from payment.cli._app import UserError, app, check_folder, command, warn
from payment.cli._app import stderr as console

#: The demo policy's budget is sized to this region (codebooks/policies/demo-2025.toml, budget notes).
DEMO_CASES, DEMO_HOSPITALS, DEMO_YEARS, DEMO_SEED = 400_000, 40, "2022,2023,2024,2025", 2025
#: Fewest cases for which every step has data (a catalogue from three years of 40 hospitals, then a year to settle).
DEMO_MIN_CASES = 2_000


@command()
def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for every file the demo writes."),
    cases: int = typer.Option(
        DEMO_CASES, help="Synthetic cases over 2022–2025 (the demo budget fits the default)."
    ),
    quiet: bool = opt.QUIET,
    debug: bool = opt.DEBUG,
) -> None:
    """Run synth → catalog → group → settle on a synthetic region and print the region summary."""
    from grouper.jit import start_numba
    from grouper.synth import split_by_year

    start_numba()

    check_folder(out)
    if cases < DEMO_MIN_CASES:
        raise UserError(f"--cases {cases:,}: the demo needs at least {DEMO_MIN_CASES:,} cases")
    start = time.perf_counter()
    region, grouped, catalogue, settled = (
        out / "region",
        out / "grouped.parquet",
        out / "catalogue.csv",
        out / "settlement",
    )
    history, current = region / "history-2022-2024.parquet", region / "discharges-2025.parquet"
    steps = [
        ["synth", "--cases", str(cases), "--years", DEMO_YEARS, "--hospitals", str(DEMO_HOSPITALS),
         "--seed", str(DEMO_SEED), "--out", str(region)],
        None,  # split the region by discharge year
        ["catalog", "--history", str(history), "--years", "2022,2023,2024", "--name", "demo-2025",
         "--out", str(catalogue)],
        ["group", str(current), "--scheme", "dip", "--catalogue", str(catalogue), "--out", str(grouped)],
        ["settle", "--cases", str(grouped), "--discharges", str(current), "--hospitals", str(region / "hospitals.csv"),
         "--policy", str(data_path("policies", "demo-2025.toml")), "--catalogue", str(catalogue), "--out", str(settled)],
    ]  # fmt: skip
    for args in steps:
        if args is None:
            if not quiet:
                console.print(
                    f"[bold]# split {escape(str(region / 'discharges.parquet'))} by year[/bold]",
                    highlight=False,
                )
            split_by_year(region / "discharges.parquet", 2025, history, current, if_exists="replace")
            continue
        if not quiet:
            console.print(f"[bold]$ drgdip {escape(' '.join(args))}[/bold]", highlight=False, soft_wrap=True)
        flags = ["--force", *(["--quiet"] if quiet else []), *(["--debug"] if debug else [])]
        code = app([*args, *flags], standalone_mode=False)
        if code:
            raise typer.Exit(code)
    if not quiet:
        _summary(
            json.loads((settled / "region.json").read_text(encoding="utf-8")), time.perf_counter() - start
        )


def _summary(region: dict, seconds: float) -> None:
    """The region's budget, point values and indicators, one table (stderr)."""
    table = Table(
        title=f"{region['region']} {region['year']} ({region['scheme'].upper()}): settled in {seconds:.1f} s"
    )
    heads = (
        "pool",
        "budget (yuan)",
        "points",
        "point value budget/settled",
        "allocated (yuan)",
        "difference",
    )
    for head in heads:
        table.add_column(head, justify="left" if head == "pool" else "right")
    for pool, info in region["pools"].items():
        table.add_row(
            pool,
            f"{float(info['cascade']['distributable']):,.0f}",
            f"{float(info['total_points']):,.0f}",
            f"{float(info['budget_point_value_published']):.4f} / {float(info['settlement_point_value_published']):.4f}",
            f"{float(info['allocated']):,.2f}",
            f"{float(info['publication_difference']):+,.2f} {info['publication_difference_is']}",
        )
    console.print(table)
    console.print(
        "difference: allocated (+ kept by the fund) − budget; hospitals are paid points × the published point "
        "value, rounded to its decimals (docs/formulas.md §0)",
        highlight=False,
    )
    routes = ", ".join(f"{k} {v:,}" for k, v in region["routes"].items() if v)
    totals = {k: f"{float(v):,.2f}" for k, v in region["totals"].items()}
    console.print(
        f"routes (EXCLUDED: self-pay, duplicates): {routes}\n"
        f"payment due {totals['payment_due']} yuan, prepaid {totals['prepaid']}, clearing {totals['clearing']}\n"
        f"DRG/DIP share of inpatient cost {region['method_share']:.1%} (seed plan: ≥ 70 %); "
        f"fund spend growth {region['fund_spend_growth']:.1%} (cap 10 %)",
        highlight=False,
    )
    for warning in region["warnings"]:
        warn(warning)
