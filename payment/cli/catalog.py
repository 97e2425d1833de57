"""``drgdip catalog`` and ``drgdip weights``: build a DIP catalogue (目录库) or DRG weights (RW) from history."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from payment.cli import _options as opt
from payment.cli._app import (
    UserError,
    check_output,
    command,
    if_exists,
    layout,
    mapping_report,
    pass_reporter,
    progress_bar,
    warn,
)
from payment.cli._app import stderr as console
from payment.cli._engine import ENGINE, SCHEDULER, WORKERS, engine


@command()
def catalog(
    ctx: typer.Context,
    history: list[Path] = opt.HISTORY,
    out: Path = opt.OUT,
    years: str = opt.YEARS,
    year_weights: str = opt.YEAR_WEIGHTS,
    threshold: str = typer.Option(
        "fixed:15", help="Core threshold: fixed:N (e.g. fixed:50) or coverage:SHARE."
    ),
    trim: str = opt.TRIM,
    tiers: Path = typer.Option(
        None, "--tiers", help="A region's procedure tier table (code,tier) overriding ours."
    ),
    name: str = typer.Option("", "--name", help="Catalogue name recorded in its metadata."),
    policy: Path = typer.Option(
        None,
        "--policy",
        help=escape(
            "A DIP policy whose [dip.grouping] and [dip.catalogue] give the settings (recorded in the "
            "catalogue with their sources); an option above that contradicts it is an error."
        ),  # help is rich markup: [dip.grouping] would be read as a style tag and vanish
    ),
    aux: bool = typer.Option(
        True,
        "--aux/--no-aux",
        help="Also fit auxiliary typing (辅助分型) on the last data year, grouped into the new catalogue, and "
        "write it beside the catalogue as <stem>.aux.csv (settings in <stem>.aux.params.toml), for a .csv or "
        "a .parquet catalogue alike; `drgdip group --catalogue` picks it up from there.",
    ),
    encoding: str = opt.ENCODING,
    sheet: str = opt.SHEET,
    header_row: int = opt.HEADER_ROW,
    rename: list[str] = opt.RENAME,
    value_map: list[str] = opt.VALUE_MAP,
    show_mapping: bool = opt.SHOW_MAPPING,
    engine_kind: str = ENGINE,
    scheduler: str = SCHEDULER,
    workers: int = WORKERS,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Build a local DIP catalogue (目录库) from past years of cases; writes CSV (+ .toml) or Parquet by suffix."""
    from grouper.dip.aux import aux_path
    from grouper.fitting import catalogue_to_file
    from grouper.jit import start_numba
    from payment.policy import Policy

    start_numba()
    run_on = engine(engine_kind, scheduler, workers)
    check_output(out, force)
    if aux:
        check_output(aux_path(out), force)
    parsed = {
        "years": _ints(years, "--years"),
        "year_weights": _floats(year_weights, "--year-weights"),
        "threshold": _threshold(threshold),
        "trim": trim,
        "tiers": str(tiers) if tiers else None,
    }
    # with a policy, only the options given on the command line are settings (the others leave the policy's)
    given = {k: v for k, v in parsed.items() if v is not None and (policy is None or _given(ctx, k))}
    on_mapping, show_mapping_lines = mapping_report(show_mapping)
    with progress_bar(quiet) as bar:
        on_pass, on_batch = pass_reporter(bar)
        run = catalogue_to_file(
            history,
            out,
            policy=Policy.load(policy) if policy is not None else None,
            aux=aux,
            name=name or None,
            encoding=encoding,
            layout=layout(sheet, header_row, rename, value_map),
            on_mapping=on_mapping,
            if_exists=if_exists(force),
            on_pass=on_pass,
            on_batch=on_batch,
            engine=run_on,
            **given,
        )
    show_mapping_lines()
    if not quiet:
        est, typing = run.catalogue, run.aux
        kinds = est.groups_.column("kind").value_counts().to_pylist()
        summary = ", ".join(f"{k['values']} {k['counts']:,}" for k in kinds)
        console.print(
            f"{est.n_cases_:,} cases of {', '.join(map(str, est.years_))} → {run.path}: {summary}; threshold "
            f"{est.threshold_}, mean cost {est.region_avg_cost_:,.2f}, trimmed {est.n_trimmed_:,}",
            highlight=False,
        )
        if typing is not None:
            coefs = typing.coefficients_
            groups = len(set(coefs.column("dip_group").to_pylist()))
            console.print(
                f"auxiliary typing on {typing.n_cases_:,} cases of {typing.year_} → {run.aux_path}: "
                f"{coefs.num_rows:,} subtypes admitted in {groups:,} groups",
                highlight=False,
            )
        for warning in run.warnings:
            warn(warning)


@command()
def weights(
    history: list[Path] = opt.HISTORY,
    out: Path = opt.OUT,
    years: str = opt.YEARS,
    year_weights: str = opt.YEAR_WEIGHTS,
    min_n: int = typer.Option(10, "--min-n", help="DRGs with fewer cases take their ADRG's weight."),
    trim: str = opt.TRIM,
    scheme: str = typer.Option(
        None,
        help="Codebook that groups cases without a `drg` column: chs-drg-2.0 (the scheme in force; the "
        "default) or chs-drg-1.1.",
        show_default=False,
    ),
    encoding: str = opt.ENCODING,
    sheet: str = opt.SHEET,
    header_row: int = opt.HEADER_ROW,
    rename: list[str] = opt.RENAME,
    value_map: list[str] = opt.VALUE_MAP,
    show_mapping: bool = opt.SHOW_MAPPING,
    engine_kind: str = ENGINE,
    scheduler: str = SCHEDULER,
    workers: int = WORKERS,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Fit DRG relative weights (相对权重) on past years of cases; writes CSV (+ .params.toml) or Parquet."""
    from grouper.fitting import weights_to_file
    from grouper.jit import start_numba

    start_numba()

    run_on = engine(engine_kind, scheduler, workers)
    check_output(out, force)
    on_mapping, show_mapping_lines = mapping_report(show_mapping)
    with progress_bar(quiet) as bar:
        on_pass, on_batch = pass_reporter(bar)
        run = weights_to_file(
            history,
            out,
            scheme=scheme,
            encoding=encoding,
            layout=layout(sheet, header_row, rename, value_map),
            on_mapping=on_mapping,
            if_exists=if_exists(force),
            on_pass=on_pass,
            on_batch=on_batch,
            years=_ints(years, "--years"),
            year_weights=_floats(year_weights, "--year-weights"),
            min_n=min_n,
            trim=trim,
            engine=run_on,
        )
    show_mapping_lines()
    if not quiet:
        est = run.weights
        if run.grouped_with:
            console.print(f"no `drg` column: cases grouped with {run.grouped_with}", highlight=False)
        thin = sum(1 for b in est.weights_.column("basis").to_pylist() if b == "adrg")
        console.print(
            f"{est.n_cases_:,} cases → {run.path}: {est.weights_.num_rows:,} DRGs ({thin:,} from their ADRG), "
            f"mean cost {est.overall_mean_:,.2f}, trimmed {est.n_trimmed_:,}",
            highlight=False,
        )
        for warning in run.warnings:
            warn(warning)


def _threshold(text: str) -> tuple[str, float | int]:
    """``fixed:N`` or ``coverage:SHARE`` (0 < SHARE ≤ 1)."""
    kind, _, value = text.partition(":")
    if kind == "fixed":
        return kind, _int(value, "--threshold fixed")
    if kind == "coverage":
        try:
            return kind, float(value)
        except ValueError:
            pass
    raise UserError(
        f"--threshold: {text!r} is not fixed:N (e.g. fixed:15) or coverage:SHARE (e.g. coverage:0.95)"
    )


def _given(ctx: typer.Context, setting: str) -> bool:
    """Whether the option of a setting was given on the command line (not left at its default)."""
    source = ctx.get_parameter_source(setting)  # each setting's option has the setting's name
    return source is not None and source.name != "DEFAULT"  # typer's own click: compared by name


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    return None if not text else tuple(_int(x, option) for x in text.split(","))


def _int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a whole number") from None


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"{option}: {text!r} is not a comma-separated list of numbers") from None
