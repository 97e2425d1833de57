"""``drgdip settle``: settle a region's year from grouped cases, a hospitals table and a policy.

Parses the options and calls :func:`payment.pipeline.settle_files`, which streams the cases (read batch by batch,
two or three times) and writes the settlement folder all-or-nothing.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import typer

from payment.cli import _app
from payment.cli import _options as opt
from payment.cli._app import (
    UserError,
    check_folder,
    check_output,
    command,
    if_exists,
    layout,
    mapping_report,
    progress_bar,
    warn,
)
from payment.cli._app import stderr as console
from payment.cli._engine import ENGINE, SCHEDULER, WORKERS, engine

_HELP = (
    "Settle a region's year (区域点数法总额预算): routes, points, point values, hospital payments.\n\n"
    "Hospitals are paid points × the published point value (rounded to the policy's point_value.decimals), "
    "so a pool allocates a little more or less than its distributable budget (docs/formulas.md §0): region.json "
    "records it per pool as publication_difference (allocated + kept by the fund − distributable) and "
    "publication_difference_is (over, under or none).\n\n"
    "Cases of hospitals missing from --hospitals, cases discharged outside the policy's effective period and "
    "declared special cases that are not among the cases are reported as warnings (stderr and region.json)."
)


@command(help=_HELP)
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
        ..., "--policy", help="Policy TOML file, or the name of a shipped one (e.g. demo-2025)."
    ),
    settings: list[str] = typer.Option(
        None,
        "--set",
        help="What-if (情景测算): KEY=VALUE replacing a policy value, validated as the file is; repeatable "
        "(--set deviation.high.ratio=2.5 --set point_value.regime=fixed). Keys the file does not write are added "
        "as assumptions, so region.json lists them.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output folder: cases.parquet, hospitals.csv, region.json (cases given as a folder of parts: "
        "cases.parquet/ is a folder of one file per part, part-00000.parquet, …).",
    ),
    discharges: Path = typer.Option(
        None,
        "--discharges",
        help="The discharges that were grouped, read as `drgdip group` reads them (CSV UTF-8/GBK, Excel, "
        "Parquet; header aliases) and joined to --cases by case_id, when --cases holds only grouping columns.",
    ),
    history: Path = typer.Option(
        None,
        "--history",
        help="Folder with region_years.csv, history_cases.parquet|csv, hospital_years.csv, level_years.csv "
        "(docs/history.md).",
    ),
    deductions: Path = typer.Option(
        None,
        "--deductions",
        help="Monthly audit deductions (审核扣款) CSV/Parquet: hospital_id, month (YYYY-MM), amount (yuan)"
        "[, reason]; taken off the monthly pre-settlement.",
    ),
    encoding: str = opt.ENCODING,
    sheet: str = opt.SHEET,
    header_row: int = opt.HEADER_ROW,
    rename: list[str] = opt.RENAME,
    value_map: list[str] = opt.VALUE_MAP,
    show_mapping: bool = opt.SHOW_MAPPING,
    special_cases: Path = typer.Option(None, "--special-cases", help="CSV with a case_id column (特例单议)."),
    weights: Path = typer.Option(None, "--weights", help="DRG weights (drg, rw) for a DRG policy."),
    catalogue: str = opt.CATALOGUE,
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        help="Cases per batch (memory; not results; default 524288).",
        min=1,
        show_default=False,
    ),
    engine_kind: str = ENGINE,
    scheduler: str = SCHEDULER,
    workers: int = WORKERS,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Settle a region's year (区域点数法总额预算): routes, points, point values, hospital payments."""
    run_on = engine(engine_kind, scheduler, workers)
    if history is None:  # a settlement without history converts no pandas objects
        _app.without_pandas(run_on)
    from grouper.io import count_rows
    from grouper.jit import start_numba
    from payment.cases import grouping_only
    from payment.pipeline import SETTLEMENT_FILES, settle_files
    from payment.policy import Policy
    from payment.settle import BATCH_SIZE
    from payment.whatif import with_settings

    start_numba()
    _app.batch_process()

    pol = with_settings(Policy.load(policy), settings or ())
    check_folder(out)
    for name in SETTLEMENT_FILES:
        check_output(out / name, force)
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(f"--encoding: unknown encoding {encoding!r} (utf-8, gbk, gb18030)") from None
    files_layout = layout(
        sheet, header_row, rename, value_map
    )  # of the discharge file: --discharges, else --cases
    if discharges is None and grouping_only(cases, encoding=encoding, layout=files_layout):
        raise UserError(
            f"{cases} holds only grouping columns: pass the discharges that were grouped with --discharges"
        )
    # the rows of the first pass are known for Parquet, so the bar has a time left from the start
    first = count_rows(discharges if discharges is not None else cases)
    on_mapping, show_mapping_lines = mapping_report(show_mapping)
    with progress_bar(quiet) as bar:
        task = bar.add_task("settling: reading", total=first)

        def stage(what: str, rows: int | None) -> None:
            bar.reset(task, total=rows if rows is not None else first, description=f"settling: {what}")

        region = settle_files(
            cases,
            hospitals,
            pol,
            out,
            discharges=discharges,
            history=history,
            deductions=deductions,
            special_cases=special_cases,
            weights=weights,
            catalogue=catalogue,
            encoding=encoding,
            batch_size=batch_size or BATCH_SIZE,
            if_exists=if_exists(force),
            on_rows=lambda n: bar.advance(task, n),
            engine=run_on,
            on_pass=stage,
            layout=files_layout,
            on_mapping=on_mapping,
        )
    show_mapping_lines()
    if not quiet:
        r = region
        console.print(
            f"{r['cases']:,} cases settled for {r['region']} {r['year']} → {out}: "
            + ", ".join(f"{k} {v:,}" for k, v in r["routes"].items() if v)
            + f"; payment due {r['totals']['payment_due']} yuan",
            highlight=False,
            markup=False,
        )
        for w_ in r["warnings"]:
            warn(w_)
