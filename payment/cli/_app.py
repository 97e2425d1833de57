"""The typer app, its error handling, progress bars and output checks, shared by every command.

The options several commands take are in :mod:`payment.cli._options`.
"""

from __future__ import annotations

import functools
import gc
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from grouper.errors import DrgdipError
from payment.cli._coerce import Command, Group

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="drgdip: CHS-DRG / DIP grouping and regional point-method payment (区域点数法总额预算).",
)
stderr = Console(stderr=True)


INTERNAL = "internal error, please report (rerun with --debug)"
#: Whether the command runs in a process of its own (the console entry point, :func:`payment.cli.main`), not
#: inside a caller's (typer's test runner, a notebook): only then may it change how the process imports
#: (:func:`grouper._arrow.defer_pandas`).
OWN_PROCESS = False
#: The option that sets what an error's ``key`` names, added to its line (library messages name no option).
_OPTION_HINTS = {
    "encoding": " (--encoding)",
    "header": " (a header under title rows: --header-row N; a header of another name: --rename SRC=DST)",
    "sheet": " (--sheet)",
    "rename": " (--rename)",
    "keep": " (--keep)",
    "value_map": " (--value-map)",
}


class UserError(DrgdipError):
    """A mistake in the command's options that only the CLI can see (it may name an option)."""


def fail(message: str, debug: bool = False) -> NoReturn:
    """Print one error line to stderr and exit 1 (with the traceback under --debug).

    The message is printed as plain text on one line: a path, a header or an id holding ``[/b]`` is not markup.
    """
    if debug:
        stderr.print_exception(show_locals=False)
    line = " ".join(str(message).splitlines())
    stderr.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def warn(message: str) -> None:
    """Print one warning line to stderr (plain text, as :func:`fail`)."""
    stderr.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)


def command(*args, on: typer.Typer | None = None, **kwargs) -> Callable[[Callable], Callable]:
    """``app.command`` (``on.command`` for a command group) for a drgdip command: an error of the family (:class:`DrgdipError`) is one line and exit 1;
    anything else is a bug: its traceback with ``--debug``, else one line asking for a report (exit 1)."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*a, **k):
            from grouper.io.formats import InputWarning  # here, not at start-up: it loads pyarrow

            debug = bool(k.get("debug", False))
            caught: list[warnings.WarningMessage] = []
            failed = False
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", InputWarning)
                    return fn(*a, **k)
            except DrgdipError as exc:
                failed = True
                fail(str(exc) + _OPTION_HINTS.get(exc.key or "", ""), debug)
            except (typer.Exit, typer.Abort, typer.BadParameter):  # typer's own: exit codes and usage errors
                raise
            except Exception:
                failed = True
                fail(INTERNAL, debug)
            finally:  # what the readers noticed (a skipped sheet…) as warning lines, each once (a file read at
                # every pass warns at every pass), unless the run failed (its error is the one line); other
                # warnings as usual
                said: set[str] = set()
                for w in caught:
                    if issubclass(w.category, InputWarning):
                        if not failed and str(w.message) not in said:
                            said.add(str(w.message))
                            warn(str(w.message))
                    else:
                        warnings.showwarning(w.message, w.category, w.filename, w.lineno)

        return (on or app).command(*args, cls=Command, **kwargs)(run)

    return register


def without_pandas(run_on) -> None:
    """Defer pandas (:func:`grouper._arrow.defer_pandas`) for a command that converts no pandas objects when it
    runs on this machine (``run_on`` None, :func:`payment.cli._engine.engine`) in a process of its own
    (:data:`OWN_PROCESS`); called before the engine's modules load, as they convert values when they do."""
    if run_on is None and OWN_PROCESS:
        from grouper._arrow import defer_pandas

        defer_pandas()


def batch_process() -> None:
    """For a command that works batch after batch in a process of its own (:data:`OWN_PROCESS`), once its modules
    are imported: freed memory is kept for the next batch (:func:`payment.heap.keep_freed_memory`), and what the
    imports made (about 150,000 objects: numba, pyarrow, typer) is frozen out of the garbage collector, whose full
    passes during the run then skip it (three of them held the GIL for about 0.2 s on 10M settled cases)."""
    if OWN_PROCESS:
        from payment.heap import keep_freed_memory

        keep_freed_memory()
        gc.freeze()


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a human: not with --quiet, not when stderr is not a terminal."""
    return not quiet and sys.stderr.isatty()


def progress_bar(quiet: bool) -> Progress:
    """A case-counting progress bar on stderr (hidden with --quiet or when stderr is not a terminal): a task's
    description, its cases, the time spent and, when its total is known, the time left."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} cases"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not show_progress(quiet),
        transient=True,
    )


def pass_reporter(bar: Progress) -> tuple[Callable[[str, int | None], None], Callable[[int], None]]:
    """``on_pass`` and ``on_batch`` callbacks of a library pipeline of several passes, shown as one task that
    each pass restarts (its label, its total)."""
    task = bar.add_task("", total=None)

    def on_pass(label: str, total: int | None) -> None:
        bar.reset(task, total=total, description=label)

    return on_pass, lambda rows: bar.advance(task, rows)


def layout(
    sheet: str | None, header_row: int | None, rename: list[str] | None, value_map: list[str] | None = None
):
    """The inputs' :class:`grouper.io.formats.Layout` from ``--sheet``, ``--header-row``, ``--rename`` and
    ``--value-map``."""
    from grouper.io.formats import Layout

    pairs = {}
    for item in rename or ():
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise typer.BadParameter(f"--rename takes SRC=DST, not {item!r}")
        pairs[src.strip()] = dst.strip()
    values: dict[str, dict[str, str]] = {}
    for item in value_map or ():
        column, sep, rest = item.replace("：", ":").partition(":")
        maps = [m.partition("=") for m in rest.replace("，", ",").split(",") if m.strip()]
        if not sep or not column.strip() or not maps or any(not s or not a.strip() for a, s, _ in maps):
            raise typer.BadParameter(f"--value-map takes COLUMN:FROM=TO[,FROM=TO…], not {item!r}")
        values.setdefault(column.strip(), {}).update({a.strip(): b.strip() for a, _, b in maps})
    return Layout(sheet=sheet, header_row=header_row, rename=pairs, values=values)


def mapping_report(show: bool) -> tuple[Callable | None, Callable[[], None]]:
    """``--show-mapping``: the reader's ``on_mapping`` callback (None when not asked) and a function printing what
    it collected (each input header and what it was read as), to call once the command's work is done."""
    lines: list[str] = []

    def show_lines() -> None:
        for line in lines:
            stderr.print(line, highlight=False, markup=False)

    return ((lambda report: lines.extend(report.lines())) if show else None), show_lines


def column_list(text: str | None) -> list[str]:
    """``COL,COL`` (also ``，``-separated) as a list of names."""
    return [c.strip() for c in (text or "").replace("，", ",").split(",") if c.strip()]


def if_exists(force: bool) -> str:
    """The writers' ``if_exists`` for ``--force``."""
    return "replace" if force else "error"


def check_folder(path: Path) -> None:
    """Refuse an output folder that is a file or lies under one (one error line, not a traceback)."""
    for p in (path, *path.parents):
        try:
            found = p.exists()
        except OSError:  # a name too long…: the writer reports it
            return
        if found:
            if not p.is_dir():
                raise UserError(f"{path}: {'it' if p == path else p} is a file, not a folder")
            return


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace an existing output unless --force (checked before any work, with the option's name)."""
    try:
        exists = str(path) != "-" and path.exists() and not path.is_dir()
    except OSError:  # a name too long…: the writer reports it
        return
    if exists and not force:
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
