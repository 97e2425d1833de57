"""The typer app and the options every command shares (STYLE.md §f)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="drgdip: CHS-DRG / DIP grouping and regional point-method payment (区域点数法总额预算).",
)
stderr = Console(stderr=True)

OUT = typer.Option(..., "--out", "-o", help="Output file or folder.")
ENCODING = typer.Option(
    None, "--encoding", help="Encoding of CSV inputs (utf-8, gbk, gb18030); detected if unset."
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary.")
FORCE = typer.Option(False, "--force", help="Replace an existing output.")
DEBUG = typer.Option(False, "--debug", help="Show the traceback of an error.")


class UserError(Exception):
    """An error the user can fix: printed as one line, exit code 1."""


def fail(message: str, debug: bool = False) -> None:
    """Print one error line to stderr and exit 1 (with the traceback under --debug)."""
    if debug:
        stderr.print_exception(show_locals=False)
    stderr.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a human: not with --quiet, not when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()


def progress_bar(label: str, quiet: bool) -> Progress:
    """A case-counting progress bar on stderr (hidden with --quiet or when stderr is not a terminal)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed:,} cases"),
        TimeElapsedColumn(),
        console=stderr,
        disable=not show_progress(quiet),
        transient=True,
    )


def check_folder(path: Path) -> None:
    """Refuse an output folder that is a file or lies under one (one error line, not a traceback)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{path}: {'it' if p == path else p} is a file, not a folder")
            return


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace an existing output unless --force."""
    if str(path) != "-" and path.exists() and not force:
        raise UserError(f"{path} already exists; pass --force to replace it")


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"drgdip {version('drgdip')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the drgdip version and exit."
    ),
) -> None:
    """drgdip: CHS-DRG / DIP grouping and regional point-method payment (区域点数法总额预算)."""
