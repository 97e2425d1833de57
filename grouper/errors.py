"""One error family: every error drgdip raises on purpose derives from :class:`DrgdipError`.

Each error carries where it happened (``path``, ``row``, ``column``, ``key``) besides its message; the CLI catches
only this family, so anything else is a bug. Messages name files, rows, columns and keys, never a command-line
option and never a patient's data.
"""

from __future__ import annotations

import os

__all__ = [
    "CatalogueError",
    "ClusterError",
    "CodebookError",
    "DrgdipError",
    "InputError",
    "NotFittedError",
    "OutputError",
    "PolicyError",
    "SettingsError",
]


class DrgdipError(Exception):
    """Base of every error drgdip raises on purpose.

    Parameters
    ----------
    message : str                     what is wrong and what to do (the location is already in it where it helps)
    path : str or PathLike, optional  the file concerned
    row : int, optional               1-based data row (never the row's content)
    column : str, optional            the column concerned
    key : str, optional               the dotted policy or settings key concerned
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike | None = None,
        row: int | None = None,
        column: str | None = None,
        key: str | None = None,
    ):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.row, self.column, self.key = row, column, key


class InputError(DrgdipError):
    """An input file or table that cannot be used as given (discharges, hospitals, history, deductions…)."""


class OutputError(DrgdipError):
    """An output that cannot be written (exists, unwritable folder, disk full…)."""


class CodebookError(DrgdipError):
    """A codebook that cannot be loaded: the message names the file, row and column."""


class CatalogueError(DrgdipError):
    """A DIP catalogue, exclusion or tier table that does not follow its format."""


class PolicyError(DrgdipError):
    """A policy file that does not validate; the message names the file and the dotted key."""


class SettingsError(DrgdipError):
    """Settings of an estimator or a generator (synthetic region) that are out of their range."""


class NotFittedError(DrgdipError):
    """An estimator used before ``fit`` or ``read_*``."""


class ClusterError(DrgdipError):
    """A Dask cluster that cannot be reached or cannot finish a run (``--engine dask``)."""
