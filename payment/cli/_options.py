"""The options more than one command takes, each defined once.

A command names them (``from payment.cli import _options as opt``, then ``out: Path = opt.OUT``) instead of
writing its own copy, so a flag has one spelling, one default and one help text everywhere. An option whose
meaning differs by command (what ``--out`` holds for a folder output, what ``--policy`` adds) stays in its command.
"""

from __future__ import annotations

import typer

OUT = typer.Option(..., "--out", "-o", help="Output file or folder.")
ENCODING = typer.Option(
    None, "--encoding", help="Encoding of CSV inputs (utf-8, gbk, gb18030); detected if unset."
)
#: How an input file lays out its table (grouper.io.formats.Layout), for the commands that read discharges or
#: past cases (group, settle, audit, catalog, weights, history).
SHEET = typer.Option(
    None,
    "--sheet",
    help="Excel inputs: the sheet to read (default: the first sheet holding a table, and every "
    "sheet with the same header).",
)
HEADER_ROW = typer.Option(
    None,
    "--header-row",
    min=1,
    help="Row of the header, counted from 1 (default: found below title rows of one cell).",
    show_default=False,
)
RENAME = typer.Option(
    None,
    "--rename",
    help="SRC=DST: read the input column SRC as DST (a canonical name or any accepted header, e.g. "
    "--rename 住院流水号=结算ID); repeatable.",
)
VALUE_MAP = typer.Option(
    None,
    "--value-map",
    help="COLUMN:FROM=TO[,FROM=TO…]: read these values of a discharge column (a header, or a column such as "
    "sex) as others, e.g. --value-map sex:男=1,女=2 for chs-drg-2.0, which takes sex only as 1/2; repeatable.",
)
SHOW_MAPPING = typer.Option(
    False, "--show-mapping", help="Print what each input header was read as (and which were not read)."
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary.")
FORCE = typer.Option(False, "--force", help="Replace an existing output.")
DEBUG = typer.Option(False, "--debug", help="Show the traceback of an error.")

#: The discharge files ``group`` and ``audit`` read.
DISCHARGES = typer.Argument(..., help="Discharge files: CSV (UTF-8 or GBK), Excel (.xlsx) or Parquet.")
#: The catalogue of commands that also take a policy.
CATALOGUE = typer.Option(
    None,
    "--catalogue",
    help="DIP catalogue (目录库): a shipped name or a .csv/.parquet file (default: the policy's).",
)
AUX = typer.Option(
    None,
    "--aux",
    help="DIP: auxiliary typing table (辅助分型) to apply; default: <stem>.aux.csv beside the catalogue file "
    "when it exists (as written by `drgdip catalog`; refused if fitted against another catalogue).",
)
NO_AUX = typer.Option(False, "--no-aux", help="DIP: no auxiliary typing (aux_coef 1.0).")

#: Past cases and their year window, for ``catalog`` and ``weights``.
HISTORY = typer.Option(
    ...,
    "--history",
    help="Parquet file or folder of past cases (repeatable; folders are read recursively for *.parquet), "
    "or discharge files (CSV/Excel, read like `drgdip group` reads them; the year from discharge_date).",
)
YEARS = typer.Option(
    None, "--years", help="Data years, e.g. 2022,2023,2024 (default: the last 3 years seen)."
)
YEAR_WEIGHTS = typer.Option("1,2,7", "--year-weights", help="Weight per year, oldest first (renormalised).")
TRIM = typer.Option("percentile", "--trim", help="Trimming: percentile (P2.5/P97.5), iqr, log_sd or none.")
