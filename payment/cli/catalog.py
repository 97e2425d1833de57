"""``drgdip catalog`` and ``drgdip weights``: build a DIP catalogue (目录库) or DRG weights (RW) from history."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from payment.cli import _options as opt
from payment.cli._app import UserError, check_output, command, warn
from payment.cli._app import stderr as console


@command()
def catalog(
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
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Build a local DIP catalogue (目录库) from past years of cases; writes CSV (+ .toml) or Parquet by suffix."""
    from grouper.dip.aux import AuxTyping, aux_path
    from grouper.dip.catalogue import read_catalogue
    from grouper.dip.catalogue_builder import HISTORY_COLUMNS, DipCatalog
    from grouper.io import read_cases
    from payment.policy import Policy

    check_output(out, force)
    threshold_ = _threshold(threshold)
    typing = AuxTyping() if aux else None
    if typing:
        check_output(aux_path(out), force)
    columns = dict.fromkeys(HISTORY_COLUMNS + (typing.input_columns() if typing else ()))
    table = read_cases(history, columns=tuple(columns), encoding=encoding)
    settings = {
        "years": _ints(years, "--years"),
        "year_weights": _floats(year_weights, "--year-weights"),
        "threshold": threshold_,
        "trim": trim,
        "tiers": str(tiers) if tiers else None,
    }
    if policy is None:
        est = DipCatalog(**settings)
    else:  # the options left at their defaults leave the policy's settings alone
        unset = {
            "years": None,
            "year_weights": (1.0, 2.0, 7.0),
            "threshold": ("fixed", 15),
            "trim": "percentile",
        }
        changed = {k: v for k, v in settings.items() if v is not None and unset.get(k) != v}
        est = DipCatalog.from_policy(Policy.load(policy), **changed)
    est.fit(table)
    if typing:
        est.fit_aux(table, typing)
    meta = {"name": name} if name else {}
    written = est.to_parquet(out, **meta) if out.suffix.lower() == ".parquet" else est.to_csv(out, **meta)
    if typing:
        cat = read_catalogue(written)
        aux_written = typing.to_csv(aux_path(written), catalogue=cat.name, catalogue_sha256=cat.fingerprint)
    if not quiet:
        kinds = est.groups_.column("kind").value_counts().to_pylist()
        summary = ", ".join(f"{k['values']} {k['counts']:,}" for k in kinds)
        console.print(
            f"{est.n_cases_:,} cases of {', '.join(map(str, est.years_))} → {written}: {summary}; threshold "
            f"{est.threshold_}, mean cost {est.region_avg_cost_:,.2f}, trimmed {est.n_trimmed_:,}",
            highlight=False,
        )
        if typing:
            coefs = typing.coefficients_
            groups = len(set(coefs.column("dip_group").to_pylist()))
            console.print(
                f"auxiliary typing on {typing.n_cases_:,} cases of {typing.year_} → {aux_written}: "
                f"{coefs.num_rows:,} subtypes admitted in {groups:,} groups",
                highlight=False,
            )
        for warning in est.warnings_ + (typing.warnings_ if typing else []):
            warn(warning)


@command()
def weights(
    history: list[Path] = opt.HISTORY,
    out: Path = opt.OUT,
    years: str = opt.YEARS,
    year_weights: str = opt.YEAR_WEIGHTS,
    min_n: int = typer.Option(10, "--min-n", help="DRGs with fewer cases take their ADRG's weight."),
    trim: str = opt.TRIM,
    scheme: str = typer.Option("chs-drg-1.1", help="Codebook used to group cases that have no `drg` column."),
    encoding: str = opt.ENCODING,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Fit DRG relative weights (相对权重) on past years of cases; writes CSV (+ .params.toml) or Parquet."""
    from grouper.codebook import Codebook
    from grouper.drg.group import group_drg
    from grouper.drg.weights import DrgWeights
    from grouper.io import read_cases

    check_output(out, force)
    table = read_cases(history, encoding=encoding)
    if "drg" not in table.column_names:
        if not quiet:
            console.print(
                f"no `drg` column: grouping {table.num_rows:,} cases with {scheme}", highlight=False
            )
        grouped = group_drg(table, Codebook.load(scheme))
        table = table.append_column("drg", grouped.column("drg")).append_column(
            "adrg", grouped.column("adrg")
        )
    est = DrgWeights(
        years=_ints(years, "--years"),
        year_weights=_floats(year_weights, "--year-weights"),
        min_n=min_n,
        trim=trim,
    ).fit(table)
    written = est.to_parquet(out) if out.suffix.lower() == ".parquet" else est.to_csv(out)
    if not quiet:
        thin = sum(1 for b in est.weights_.column("basis").to_pylist() if b == "adrg")
        console.print(
            f"{est.n_cases_:,} cases → {written}: {est.weights_.num_rows:,} DRGs ({thin:,} from their ADRG), "
            f"mean cost {est.overall_mean_:,.2f}, trimmed {est.n_trimmed_:,}",
            highlight=False,
        )
        for warning in est.warnings_:
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
