"""``drgdip audit``: a hospital's (or a region's) self-audit: QC, flags, indicators, 盈亏, insurer comparison."""

from __future__ import annotations

from pathlib import Path

import typer

from payment.cli import _options as opt
from payment.cli._app import (
    UserError,
    check_folder,
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

_HELP = (
    "Self-audit (医院自查) of discharge files before upload: QC edits Q01–Q14, supervision flags (再入院, 低标入院, "
    "超长住院, 高/低倍率, 低风险组死亡, 高套嫌疑, 主诊断选择), indicators (入组率, CMI, 费用/时间消耗指数, 低风险组死亡率) "
    "and, with --policy, expected payment and 盈亏. Writes report.html, audit.xlsx and one Parquet file per table "
    "into --out. A flag is a finding to review, never a verdict."
)


@command(help=_HELP)
def audit(
    inputs: list[Path] = opt.DISCHARGES,
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: report.html, audit.xlsx, <table>.parquet."
    ),
    scheme: str = typer.Option(
        None,
        help="chs-drg-2.0 (CHS-DRG 2.0, the scheme in force; the default), chs-drg-1.1, or dip (needs a catalogue).",
        show_default=False,
    ),
    catalogue: str = opt.CATALOGUE,
    policy: Path = typer.Option(
        None, help="Policy TOML: adds expected payment, 盈亏 and the deviation flags."
    ),
    hospitals: Path = typer.Option(
        None, help="Hospitals CSV/Excel/Parquet (hospital_id, level): needed with --policy unless --level."
    ),
    level: int = typer.Option(
        None, min=1, max=3, help="Hospital level (1–3) of every hospital, in place of --hospitals."
    ),
    weights: Path = typer.Option(
        None, help="CHS-DRG weights (drg, rw[, avg_cost, avg_los]); default: RW from the cases."
    ),
    hospital: str = typer.Option(
        None, help="The hospital audited (hospital_id); the other cases are its region."
    ),
    insurer: Path = typer.Option(
        None, help="The insurer's returned grouping (CSV/Excel: case id, group, points or payment)."
    ),
    settings: Path = typer.Option(
        None, help="Audit thresholds TOML (default codebooks/qc/audit-defaults.toml)."
    ),
    aux: Path = opt.AUX,
    no_aux: bool = opt.NO_AUX,
    qc_lists: Path = typer.Option(
        None, "--qc-lists", help="A region's folder of QC lists replacing the shipped ones by name."
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
    """Self-audit of discharge files (see the help text)."""
    from grouper.codebook import DEFAULT_SCHEME
    from grouper.dip import read_catalogue
    from grouper.jit import start_numba
    from grouper.pipeline import aux_typing_for
    from payment.audit import AuditSettings, QcLists, read_insurer
    from payment.audit.files import OUTPUT_FILES, audit_to_folder
    from payment.inputs import read_hospitals, read_weights
    from payment.policy import Policy

    start_numba()

    scheme = scheme or DEFAULT_SCHEME
    run_on = engine(engine_kind, scheduler, workers)
    check_folder(out)
    for name in (*OUTPUT_FILES, "summary.parquet", "cases.parquet"):
        check_output(out / name, force)
    if scheme != "dip" and catalogue:
        raise typer.BadParameter("--catalogue is for --scheme dip")  # a command-line mistake: exit 2
    pol = Policy.load(policy) if policy is not None else None
    typing, cat = None, None
    name = catalogue or (pol.header.get("catalogue") if pol is not None else None)
    if scheme == "dip" and name:
        cat = read_catalogue(name)
        if not no_aux:  # the same auxiliary typing `drgdip group` would apply
            notes: list[str] = []
            typing = aux_typing_for(name, cat.fingerprint, aux, notes)
            for message in notes:
                warn(message)
    if pol is not None and hospitals is None and level is None:
        raise UserError("--policy needs --hospitals (hospital_id, level) or --level")
    files_layout = layout(sheet, header_row, rename, value_map)
    on_mapping, show_mapping_lines = mapping_report(show_mapping)
    with progress_bar(quiet) as bar:
        on_pass, on_batch = pass_reporter(bar)
        result = audit_to_folder(
            inputs,
            out,
            encoding=encoding,
            if_exists=if_exists(force),
            layout=files_layout,
            on_mapping=on_mapping,
            engine=run_on,
            scheme=scheme,
            catalogue=cat,
            policy=pol,
            hospitals=read_hospitals(hospitals, encoding=encoding) if hospitals is not None else None,
            level=level,
            weights=read_weights(weights, encoding=encoding) if weights is not None else None,
            hospital=hospital,
            insurer=read_insurer(insurer, encoding=encoding) if insurer is not None else None,
            settings=AuditSettings.load(settings) if settings is not None else None,
            lists=QcLists.load(qc_lists) if qc_lists is not None else None,
            aux=typing,
            on_pass=on_pass,
            on_batch=on_batch,
            on_writing=lambda: on_pass("writing audit.xlsx, report.html and the tables", None),
        )
    show_mapping_lines()
    if not quiet:
        s = {r["item"]: r["value"] for r in result["summary"].to_pylist() if r["value"] is not None}
        gain = f", 盈亏 {s['gain_loss']:,.2f} 元" if "gain_loss" in s else ""
        console.print(
            f"{int(s['cases']):,} cases audited → {out}: 入组率 {s['grouping_rate']:.2%}, CMI {s.get('cmi', float('nan')):.4f}"
            f"{gain}; {int(s['flagged_cases']):,} flagged cases, {int(s['qc_error_cases']):,} with QC errors",
            highlight=False,
        )
