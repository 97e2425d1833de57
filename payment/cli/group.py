"""``drgdip group``: group discharge files under CHS-DRG or DIP; one output row per input row, in input order."""

from __future__ import annotations

import collections
from pathlib import Path

import pyarrow as pa
import typer

import grouper
from grouper.batch import group_files
from grouper.codebook import Codebook
from grouper.dip import group_dip, read_catalogue, read_exclusions, read_procedure_tiers
from grouper.dip.aux import AuxTyping, aux_path
from grouper.dip.group import INPUT_COLUMNS as DIP_COLUMNS
from grouper.dip.group import grouping_settings
from grouper.drg.group import INPUT_COLUMNS as DRG_COLUMNS
from grouper.io import count_rows, write_results
from payment.cli._app import (
    DEBUG,
    ENCODING,
    FORCE,
    OUT,
    QUIET,
    UserError,
    check_output,
    command,
    if_exists,
    progress_bar,
    warn,
)
from payment.cli._app import stderr as console


@command()
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
        None,
        help="DIP: a region's procedure tier table (code,tier) over the default (default: the one the "
        "catalogue was built with).",
    ),
    tie_break: str = typer.Option(
        None,
        help="DIP: tie-break profile of codebooks/dip/grouping.toml (default: the catalogue's, else national).",
    ),
    exclusions: Path = typer.Option(
        None,
        "--exclusions",
        help="DIP: a region's exclusion lists (排除表: kind,code,match,rule,pdx_scope,source,note) added to "
        "codebooks/dip/exclusions.csv.",
    ),
    aux: Path = typer.Option(
        None,
        "--aux",
        help="DIP: auxiliary typing table (辅助分型) to apply; default: <stem>.aux.csv beside the catalogue "
        "file when it exists (as written by `drgdip catalog`; refused if fitted against another catalogue).",
    ),
    no_aux: bool = typer.Option(False, "--no-aux", help="DIP: no auxiliary typing (aux_coef 1.0)."),
    explain: bool = typer.Option(
        False, "--explain", help="Add a `reason` column: why each case landed there."
    ),
    encoding: str = ENCODING,
    quiet: bool = QUIET,
    force: bool = FORCE,
    debug: bool = DEBUG,
) -> None:
    """Group discharge records under CHS-DRG (mdc, adrg, drg, drg_status) or DIP (dip_group … dip_status)."""
    check_output(out, force)
    run, metadata, status_column, columns = _grouping(
        scheme, catalogue, tiers, tie_break, explain, aux, no_aux, exclusions
    )
    counts: collections.Counter[str] = collections.Counter()

    def tally(tables):
        for t in tables:
            vc = t.column(status_column).combine_chunks().cast(pa.string()).value_counts()
            counts.update({str(v["values"]): int(v["counts"]) for v in vc.to_pylist()})
            yield t

    totals = [count_rows(p) for p in inputs]
    total = sum(totals) if all(x is not None for x in totals) else None
    with progress_bar("grouping", quiet) as bar:
        task = bar.add_task("group", total=total)
        results = group_files(
            inputs, run, encoding=encoding, columns=columns, on_batch=lambda n: bar.advance(task, n)
        )
        rows = write_results(tally(results), out, if_exists=if_exists(force), metadata=metadata)
    if not quiet:
        summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        console.print(
            f"{rows:,} cases grouped ({metadata['drgdip.scheme']}) → {out}: {summary}", highlight=False
        )


def _grouping(
    scheme: str,
    catalogue: str | None,
    tiers: Path | None,
    tie_break: str | None,
    explain: bool,
    aux: Path | None,
    no_aux: bool,
    exclusions: Path | None = None,
):
    """The batch function, the output metadata, the status column and the input columns of a scheme."""
    codebook = Codebook.load("chs-drg-1.1" if scheme == "dip" else scheme)
    metadata = {
        "drgdip.version": grouper.__version__,
        "drgdip.scheme": scheme,
        "drgdip.codebook": codebook.scheme,
        "drgdip.codebook_sha256": codebook.fingerprint,
    }
    if aux and (no_aux or scheme != "dip"):
        raise typer.BadParameter(
            "--aux is for --scheme dip, without --no-aux"
        )  # a command-line mistake: exit 2
    if scheme != "dip":
        if catalogue or exclusions:
            raise typer.BadParameter(
                "--catalogue and --exclusions are for --scheme dip"
            )  # a command-line mistake: exit 2

        def run_drg(table: pa.Table, duplicate) -> pa.Table:
            return grouper.group_drg(table, codebook, explain=explain, duplicate=duplicate)

        return run_drg, metadata, "drg_status", DRG_COLUMNS
    if not catalogue:
        raise typer.BadParameter(
            "--scheme dip needs --catalogue (e.g. pingdingshan-2025, or a catalogue file)"
        )  # a command-line mistake: exit 2
    cat = read_catalogue(catalogue)
    settings = grouping_settings(
        cat, tiers=read_procedure_tiers(tiers) if tiers else None, tie_break=tie_break
    )
    excluded = read_exclusions(exclusions)
    metadata.update(
        {
            "drgdip.catalogue": cat.name,
            "drgdip.catalogue_sha256": cat.fingerprint,
            "drgdip.tiers_sha256": settings.tiers.fingerprint,
            "drgdip.exclusions_sha256": excluded.fingerprint,
        }
    )
    typing = None if no_aux else _aux_typing(catalogue, cat.fingerprint, aux)
    if typing is not None:
        metadata["drgdip.aux_sha256"] = typing.fingerprint

    def run_dip(table: pa.Table, duplicate) -> pa.Table:
        return group_dip(
            table,
            cat,
            codebook=codebook,
            tiers=settings.tiers,
            tie_break=settings.tie_break,
            related_match=settings.related_match,
            tier_from=settings.tier_from,
            main_fallback=settings.main_fallback,
            exclusions=excluded,
            explain=explain,
            duplicate=duplicate,
            aux=typing,
        )

    columns = tuple(dict.fromkeys(DIP_COLUMNS + (typing.input_columns() if typing else ())))
    return run_dip, metadata, "dip_status", columns


def _aux_typing(catalogue: str, fingerprint: str, aux: Path | None) -> AuxTyping | None:
    """The auxiliary typing (辅助分型) named by ``--aux``, else ``<stem>.aux.csv`` beside the catalogue file."""
    path = aux or aux_path(catalogue)
    if not aux and not (Path(catalogue).exists() and path.is_file()):
        return None
    typing = AuxTyping.read(path)
    fitted_on = typing.meta_.get("catalogue_sha256", fingerprint)
    if fitted_on != fingerprint:
        message = f"{path} was fitted against another catalogue than {catalogue}"
        if not aux:
            raise UserError(
                f"{message}; rebuild both with `drgdip catalog`, name a table with --aux or pass --no-aux"
            )
        warn(message)
    return typing
