"""Command-line interface: ``drgdip group|catalog|weights|settle|history|audit|synth|demo|policy|compare|statement``.

Each command lives in its own module and registers itself on the shared app; commands are thin:
parse options, call the public API, write.
"""

from __future__ import annotations

import gc
import os
import signal

from payment import heap
from payment.cli import (  # noqa: F401  (each module registers its command)
    _app,
    audit,
    catalog,
    compare,
    demo,
    group,
    history,
    policy,
    settle,
    statement,
    synth,
)
from payment.cli._app import app


def main() -> None:
    """Console entry point. SIGTERM ends the run as Ctrl-C does: outputs being written are removed.

    When the command is done, every object left is frozen out of the garbage collector: the interpreter's exit
    otherwise walks them all in several full collections (about 0.3-0.4 s CPU after a grouping, which loads
    numba and pyarrow), to free memory the process hands back anyway.

    Before any command loads numpy or pyarrow, :func:`own_process` sets them up for a process of its own."""
    own_process()
    signal.signal(signal.SIGTERM, _terminate)
    _app.OWN_PROCESS = True
    try:
        app()
    finally:
        gc.freeze()


def own_process() -> None:
    """Settings read when numpy and pyarrow load, for the CLI's process (a user's own settings are kept):

    - Arrow allocates from jemalloc, else the C heap, not mimalloc (:func:`payment.heap.arrow_allocator`);
    - numpy's BLAS starts no threads (no command multiplies matrices): importing numpy otherwise starts one per
      core, which spin for about 0.1 s CPU while the command starts."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", heap.arrow_allocator())
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _terminate(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)
