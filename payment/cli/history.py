"""``drgdip history``: the ``--history`` folder of ``drgdip settle`` (docs/history.md) from three past settled years.

Parses the options and calls :func:`payment.history.history_from_settlements` and
:func:`payment.history.write_history`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from payment.cli import _options as opt
from payment.cli._app import check_folder, check_output, command, layout
from payment.cli._app import stderr as console


@command(
    help="Write the --history folder of `drgdip settle` (历史数据: region_years.csv, history_cases.parquet, "
    "hospital_years.csv, level_years.csv; docs/history.md) from three past settled years."
)
def history(
    settlements: list[Path] = typer.Argument(
        ..., help="Three settlement folders (drgdip settle -o), one per past year, in any order."
    ),
    cases: list[Path] = typer.Option(
        ...,
        "--cases",
        help="The cases each settlement settled (its --cases), in the order of the folders; repeat it.",
    ),
    discharges: list[Path] = typer.Option(
        None,
        "--discharges",
        help="The discharges each settlement read (its --discharges), in the order of the folders, when --cases "
        "holds only grouping columns.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (the --history folder of drgdip settle)."
    ),
    encoding: str = opt.ENCODING,
    sheet: str = opt.SHEET,
    header_row: int = opt.HEADER_ROW,
    rename: list[str] = opt.RENAME,
    value_map: list[str] = opt.VALUE_MAP,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Write the --history folder of `drgdip settle` from three past settled years."""
    from payment.history import HISTORY_FILES, history_from_settlements, write_history

    if discharges and len(discharges) != len(settlements):
        raise typer.BadParameter("give one --discharges per settlement folder, or none")
    if len(cases) != len(settlements):
        raise typer.BadParameter("give one --cases per settlement folder, in the same order")
    check_folder(out)
    for name in HISTORY_FILES.values():
        check_output(out / name, force)
    tables = history_from_settlements(
        settlements,
        cases,
        discharges=discharges or None,
        encoding=encoding,
        layout=layout(
            sheet, header_row, rename, value_map
        ),  # of the discharge files: --discharges, else --cases
    )
    write_history(out, **tables, if_exists="replace" if force else "error")
    if not quiet:
        years = sorted(set(tables["region_years"].column("year").to_pylist()))
        console.print(
            f"history of {', '.join(map(str, years))} ({tables['cases'].num_rows:,} cases) → {out}",
            highlight=False,
            markup=False,
        )
