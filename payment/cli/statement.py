"""``drgdip statement SETTLEMENT --policy P -o DIR``: per-hospital statements of a settlement (Excel and HTML)."""

from __future__ import annotations

from pathlib import Path

import typer

from payment.cli import _options as opt
from payment.cli._app import check_output, command
from payment.cli._app import stderr as console


@command(
    help="Per-hospital statements (医院结算对账单): points → point value → allocated → clearing, with clauses."
)
def statement(
    settlement: Path = typer.Argument(..., help="Settlement folder (drgdip settle -o)."),
    policy: Path = typer.Option(..., "--policy", help="The policy the settlement was run with."),
    settings: list[str] = typer.Option(None, "--set", help="The --set values the settlement was run with."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: statement.xlsx, statement.html."),
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Per-hospital statements (医院结算对账单): points → point value → allocated → clearing, with clauses."""
    from payment.policy import Policy
    from payment.statement import statement as build
    from payment.statement import write_statement
    from payment.whatif import with_settings

    for name in ("statement.xlsx", "statement.html"):
        check_output(out / name, force)
    files = write_statement(build(settlement, with_settings(Policy.load(policy), settings or ())), out)
    if not quiet:
        console.print("→ " + ", ".join(map(str, files)), highlight=False, markup=False)
