"""drgdip's modules compiled to bytecode (``__pycache__``) before a benchmark times fresh processes, as an
installed drgdip has them: pip compiles a wheel's modules when it installs them. A checkout run with
``PYTHONDONTWRITEBYTECODE`` set (or whose folders are read-only) would compile them from source again in every
fresh process: about 0.3 s CPU before the first case is read, which is no part of the work timed."""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compiled() -> None:
    """The ``grouper`` and ``payment`` packages compiled to bytecode beside their sources."""
    for package in ("grouper", "payment"):
        compileall.compile_dir(ROOT / package, quiet=2)
