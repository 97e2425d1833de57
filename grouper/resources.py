"""Where shipped data lives: the ``codebooks/`` folder, packaged as ``grouper.codebooks`` in the wheel.

Every data file read at run time is found through :func:`data_path`. The environment variable
``DRGDIP_CODEBOOKS`` points the whole tree at another folder (a region's own copy, a test fixture).
"""

from __future__ import annotations

import csv
import os
from functools import cache
from importlib.resources import files
from pathlib import Path

__all__ = ["ENV_VAR", "data_path", "data_root", "text_columns"]

#: The one override variable: a folder laid out like the shipped ``codebooks/``.
ENV_VAR = "DRGDIP_CODEBOOKS"


def data_root() -> Path:
    """The codebooks folder: ``$DRGDIP_CODEBOOKS`` if set, else the shipped one."""
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else _shipped()


@cache
def _shipped() -> Path:
    return Path(str(files("grouper.codebooks")))


def data_path(*parts: str) -> Path:
    """A path under the codebooks folder, e.g. ``data_path("records", "column_aliases.csv")``."""
    return data_root().joinpath(*parts)


def text_columns(*parts: str) -> dict[str, list[str]]:
    """A shipped CSV table (UTF-8, a header row) under the codebooks folder, every cell read as written: header →
    its column's values (``""`` for an empty cell; blank lines skipped). The small tables of ``records/`` are
    read this way, without pandas."""
    with data_path(*parts).open(encoding="utf-8-sig", newline="") as f:
        rows = [row for row in csv.reader(f) if row]
    header, body = rows[0], rows[1:]
    return {name: [row[i] if i < len(row) else "" for row in body] for i, name in enumerate(header)}
