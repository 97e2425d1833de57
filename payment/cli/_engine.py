"""The options that choose where a command computes (``--engine``, ``--scheduler``, ``--workers``), shared by
``group``, ``settle``, … (one definition; the commands pass them to :func:`engine`)."""

from __future__ import annotations

import typer

ENGINE = typer.Option(
    "local",
    "--engine",
    help="local (this machine, streamed) or dask (a Dask cluster: same results, partitions grouped by workers).",
)
SCHEDULER = typer.Option(
    None,
    "--scheduler",
    help="--engine dask: address of a running Dask scheduler (tcp://host:8786); without it a local cluster "
    "of --workers processes is started.",
)
WORKERS = typer.Option(
    None, "--workers", help="--engine dask without --scheduler: worker processes (default 2)."
)


def engine(kind: str, scheduler: str | None, workers: int | None):
    """The :class:`grouper.distributed.Engine` of the options (a usage error, exit 2, when they do not fit); None for
    this machine, the pipelines' default (so that a local run does not load the distributed engine)."""
    if kind == "local" and scheduler is None and workers is None:
        return None
    from grouper.distributed import ENGINES, Engine

    if kind not in ENGINES:
        raise typer.BadParameter(f"--engine must be {' or '.join(ENGINES)}, not {kind!r}")
    if kind == "local" and (scheduler or workers is not None):
        raise typer.BadParameter("--scheduler and --workers are for --engine dask")
    if workers is not None and workers < 1:
        raise typer.BadParameter("--workers must be at least 1")
    if scheduler and workers:
        raise typer.BadParameter("--workers starts a local cluster: not with --scheduler")
    return Engine(kind, scheduler=scheduler, workers=workers)
