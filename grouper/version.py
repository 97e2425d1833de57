"""The drgdip version, as recorded in every file drgdip writes."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["drgdip_version"]


def drgdip_version() -> str:
    """The installed package's version (``pyproject.toml``), or ``"unknown"`` when drgdip is not installed."""
    try:
        return version("drgdip")
    except PackageNotFoundError:
        return "unknown"
