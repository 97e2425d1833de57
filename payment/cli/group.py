"""``drgdip group``: group discharge files under CHS-DRG or DIP; one output row per input row, in input order.

Parses the options and calls :func:`grouper.pipeline.group_to_file`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from payment.cli import _app
from payment.cli import _options as opt
from payment.cli._app import (
    check_output,
    column_list,
    command,
    if_exists,
    layout,
    mapping_report,
    progress_bar,
    warn,
)
from payment.cli._app import stderr as console
from payment.cli._engine import ENGINE, SCHEDULER, WORKERS, engine


@command()
def group(
    inputs: list[Path] = opt.DISCHARGES,
    out: Path = opt.OUT,
    scheme: str = typer.Option(
        None,
        help="chs-drg-2.0 (CHS-DRG 2.0, the scheme in force; the default), chs-drg-1.1, or dip (needs --catalogue).",
        show_default=False,
    ),
    compare_with: str = typer.Option(
        None,
        "--compare-with",
        help="CHS-DRG: also group under this scheme (e.g. chs-drg-1.1): its mdc/adrg/drg/drg_status columns "
        "are added beside, and the summary gives the share of cases whose ADRG or DRG changed.",
    ),
    migration: Path = typer.Option(
        None,
        "--migration",
        help="With --compare-with: write the migration table (cases per old DRG, new DRG pair) to this file.",
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
    aux: Path = opt.AUX,
    no_aux: bool = opt.NO_AUX,
    explain: bool = typer.Option(
        False, "--explain", help="Add a `reason` column: why each case landed there."
    ),
    codes: str = typer.Option(
        "clean",
        "--codes",
        help="CHS-DRG: clean (read j18.900, ' J18.900' or a 国临版 code as the 医保版 code it stands for) or "
        "verbatim (match codes exactly as written, as the reference grouper does; docs/codebook.md).",
    ),
    names: bool = typer.Option(
        None,
        "--names/--no-names",
        help="Add the group names (drg_name, adrg_name, mdc_name; dip_group_name) beside the codes "
        "(default: on for .xlsx outputs).",
        show_default=False,
    ),
    lang: str = typer.Option(
        None,
        "--lang",
        help="zh or en: add a <status>_label column saying each status in words, naming the field that "
        "decided it, and write the --explain reasons in that language (default: zh for .xlsx outputs; "
        "otherwise no labels and English reasons).",
        show_default=False,
    ),
    keep: str = typer.Option(
        None,
        "--keep",
        help="Input columns to carry into the output after case_id, comma-separated as headed in the input "
        "(--keep 病案号,科室,总费用).",
    ),
    show_mapping: bool = opt.SHOW_MAPPING,
    sheet: str = opt.SHEET,
    header_row: int = opt.HEADER_ROW,
    rename: list[str] = opt.RENAME,
    value_map: list[str] = opt.VALUE_MAP,
    out_encoding: str = typer.Option(
        None,
        "--out-encoding",
        help="Encoding of a .csv output: utf-8-sig (UTF-8 with a byte-order mark, for Excel; the default), "
        "utf-8, gbk.",
        show_default=False,
    ),
    encoding: str = opt.ENCODING,
    engine_kind: str = ENGINE,
    scheduler: str = SCHEDULER,
    workers: int = WORKERS,
    quiet: bool = opt.QUIET,
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Group discharge records under CHS-DRG (mdc, adrg, drg, drg_status) or DIP (dip_group … dip_status)."""
    run_on = engine(engine_kind, scheduler, workers)
    _app.without_pandas(run_on)  # a grouping converts no pandas objects
    from grouper.codebook import DEFAULT_SCHEME
    from grouper.io import count_rows
    from grouper.io.paths import kind_of
    from grouper.jit import KERNELS, needs_compiling, start_numba
    from grouper.pipeline import group_to_file

    scheme = scheme or DEFAULT_SCHEME
    if aux and (no_aux or scheme != "dip"):
        raise typer.BadParameter(
            "--aux is for --scheme dip, without --no-aux"
        )  # a command-line mistake: exit 2
    if scheme != "dip" and (catalogue or exclusions):
        raise typer.BadParameter("--catalogue and --exclusions are for --scheme dip")
    if scheme == "dip" and not catalogue:
        raise typer.BadParameter(
            "--scheme dip needs --catalogue (e.g. pingdingshan-2025, or a catalogue file)"
        )
    if compare_with and scheme == "dip":
        raise typer.BadParameter("--compare-with is for CHS-DRG schemes")
    if migration and not compare_with:
        raise typer.BadParameter("--migration needs --compare-with")
    if codes not in ("clean", "verbatim") or (codes == "verbatim" and scheme == "dip"):
        raise typer.BadParameter("--codes is clean or verbatim (verbatim for CHS-DRG schemes)")
    if lang is not None and lang not in ("zh", "en"):
        raise typer.BadParameter(f"--lang is zh or en, not {lang!r}")
    files_layout = layout(sheet, header_row, rename, value_map)
    check_output(out, force)
    if migration:
        check_output(migration, force)
    totals = [count_rows(p) for p in inputs]
    start_numba()
    _app.batch_process()
    kernels = KERNELS["dip" if scheme == "dip" else "drg"]
    if not quiet and all(kind_of(p) == "file" for p in inputs) and needs_compiling(kernels):
        console.print("compiling kernels (first run only)…", highlight=False)
    total = sum(totals) if all(x is not None for x in totals) else None
    on_mapping, show_mapping_lines = mapping_report(show_mapping)
    with progress_bar(quiet) as bar:
        task = bar.add_task("grouping", total=total)
        done = group_to_file(
            inputs,
            out,
            scheme=scheme,
            catalogue=catalogue,
            tiers=tiers,
            tie_break=tie_break,
            exclusions=exclusions,
            aux=aux,
            use_aux=not no_aux,
            explain=explain,
            codes=codes,
            compare_with=compare_with,
            migration=migration,
            encoding=encoding,
            if_exists=if_exists(force),
            on_batch=lambda n: bar.advance(task, n),
            engine=run_on,
            names=names,
            lang=lang,
            keep=column_list(keep),
            layout=files_layout,
            on_mapping=on_mapping,
            out_encoding=out_encoding,
        )
    show_mapping_lines()
    for message in done.warnings:
        warn(message)
    if not quiet:
        counts = sorted(done.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        summary = ", ".join(f"{k} {v:,}" for k, v in counts)
        console.print(
            f"{done.rows:,} cases grouped ({done.metadata['drgdip.scheme']}) → {out}: {summary}",
            highlight=False,
            markup=False,
        )
        if done.migration is not None:
            console.print(
                done.migration.summary() + (f" → {migration}" if migration else ""), highlight=False
            )
