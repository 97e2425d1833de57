"""The one contract of the fit/apply objects (估计器): ``DipCatalog``, ``DrgWeights`` and ``AuxTyping``.

Settings are keyword arguments stored unchanged and declared with the field kinds of :mod:`grouper.settings`;
:meth:`Estimator.check_settings` checks them all, once, at ``fit`` and ``read_*``. A fitted object keeps what it
learnt in attributes ending in ``_``; using one before ``fit`` or ``read_*`` raises :class:`NotFittedError`.
``to_parquet`` writes Parquet (settings and fingerprint as JSON in the schema metadata) and ``to_csv`` writes CSV
with a ``<stem>.params.toml`` beside it, whatever the path's suffix (a path without one gets the format's); like
every writer they refuse an existing file unless ``if_exists="replace"``. ``read_parquet`` / ``read_csv`` read them
back (``read`` picks by suffix). ``apply`` returns an Arrow table. No pickle.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from grouper.errors import NotFittedError, SettingsError
from grouper.io.writer import IfExists
from grouper.settings import check_settings

__all__ = ["Estimator"]


class Estimator:
    """Base of the fit/apply objects: declared settings, one not-fitted error, format-named readers and writers.

    A subclass declares :attr:`SETTINGS` (name → field kind, one per constructor argument; its keyword-only
    constructor stores them with ``self._keep(locals())``), :attr:`FITTED` (the attribute ``fit`` sets),
    :attr:`SCHEMA` and :attr:`META_KEY` of the table it saves, and implements :meth:`_saved` (the table and
    metadata to write) and :meth:`_restore` (set the fitted attributes from them).
    """

    SETTINGS: ClassVar[Mapping[str, Any]] = {}
    FITTED: ClassVar[str] = ""
    SCHEMA: ClassVar[pa.Schema]
    META_KEY: ClassVar[str] = ""

    # -- settings -----------------------------------------------------------------------------------------------
    def _keep(self, given: Mapping[str, Any]) -> None:
        """Store the constructor's arguments unchanged, each under its own name (``self._keep(locals())``)."""
        for name in inspect.signature(type(self)).parameters:
            setattr(self, name, given[name])

    def get_params(self) -> dict:
        """The settings, by name, as given to the constructor."""
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    def set_params(self, **params):
        """Change settings (checked at the next ``fit``); returns ``self``."""
        known = self.get_params()
        for name, value in params.items():
            if name not in known:
                raise SettingsError(f"unknown setting {name!r} (known: {', '.join(known)})", key=name)
            setattr(self, name, value)
        return self

    def check_settings(self) -> None:
        """Check every setting against its declared kind, then the rules between settings."""
        check_settings(type(self).__name__, self.SETTINGS, self.get_params())
        self._check_together()

    def _check_together(self) -> None:
        """Rules that tie settings together (e.g. a score method that needs a reference group)."""

    # -- fitted state -------------------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        """True after ``fit`` or ``read_*``."""
        return hasattr(self, self.FITTED)

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            name = type(self).__name__
            raise NotFittedError(f"{name}: call fit() or {name}.read_parquet()/read_csv() first")

    # -- saving -------------------------------------------------------------------------------------------------
    def _saved(self, meta: dict) -> tuple[pa.Table, dict]:
        """The table and metadata to write (``meta``: extra metadata from the caller)."""
        raise NotImplementedError

    def _restore(self, table: pa.Table, meta: dict) -> None:
        """Set the fitted attributes from a table and metadata read back."""
        raise NotImplementedError

    def _write(self, path: Path, fmt: str, meta: dict, if_exists: IfExists) -> Path:
        from grouper._history import write_fitted

        table, info = self._saved(meta)
        return write_fitted(table, info, path, self.META_KEY, fmt, if_exists=if_exists)

    def to_parquet(self, path, *, if_exists: IfExists = "error", **meta) -> Path:
        """Write the fitted table as Parquet, settings and history fingerprint in the schema metadata; atomic.

        ``if_exists``: ``"error"`` (default) refuses an existing file (:class:`OutputError`), ``"replace"``
        replaces it. ``meta``: extra metadata saved with the table. Returns the path written.
        """
        self._require_fitted()
        return self._write(_with_suffix(Path(path), "parquet"), "parquet", meta, if_exists)

    def to_csv(self, path, *, if_exists: IfExists = "error", **meta) -> Path:
        """Write the fitted table as CSV with ``<stem>.params.toml`` (settings, fingerprint) beside it; atomic.

        ``if_exists`` as :meth:`to_parquet`, checked for both files before either is written.
        """
        self._require_fitted()
        return self._write(_with_suffix(Path(path), "csv"), "csv", meta, if_exists)

    @classmethod
    def _read(cls, path: Path, fmt: str):
        from grouper._history import params_from_meta, read_fitted

        table, meta = read_fitted(path, cls.META_KEY, cls.SCHEMA, fmt)
        est = cls(**params_from_meta(meta, cls.optional_settings()))
        est.check_settings()
        est._restore(table, meta)
        return est

    @classmethod
    def read_parquet(cls, path):
        """Load what :meth:`to_parquet` wrote (settings restored and checked; no refit, no pickle)."""
        return cls._read(Path(path), "parquet")

    @classmethod
    def read_csv(cls, path):
        """Load what :meth:`to_csv` wrote (the CSV and its ``.params.toml``)."""
        return cls._read(Path(path), "csv")

    @classmethod
    def read(cls, path):
        """:meth:`read_parquet` for a ``.parquet`` path, else :meth:`read_csv`."""
        path = Path(path)
        return cls.read_parquet(path) if path.suffix.lower() == ".parquet" else cls.read_csv(path)

    @classmethod
    def optional_settings(cls) -> tuple[str, ...]:
        """Settings that may be None (saved as ``""`` in TOML)."""
        return tuple(name for name, kind in cls.SETTINGS.items() if getattr(kind, "optional", False))


def _with_suffix(path: Path, fmt: str) -> Path:
    """The path as given, or with ``.<fmt>`` added when it has no suffix."""
    return path if path.suffix else path.with_suffix(f".{fmt}")
