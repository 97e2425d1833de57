"""Grouping of discharge records (出院病例分组) under CHS-DRG and DIP.

The public names are imported on first use (PEP 562), so ``import grouper.errors`` or ``drgdip --help`` does not
load numpy, pandas, numba or pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grouper._lazy import lazy_exports

if TYPE_CHECKING:
    from grouper.batch import group_files
    from grouper.codebook import Codebook, CodebookError
    from grouper.dip import Catalogue, CatalogueError, group_dip, read_catalogue
    from grouper.dip.aux import AuxTyping
    from grouper.dip.catalogue_builder import DipCatalog
    from grouper.drg.group import group_drg
    from grouper.drg.migration import Migration, compare_schemes
    from grouper.drg.weights import DrgWeights
    from grouper.errors import DrgdipError, OutputError
    from grouper.io import InputError, canonicalise, read_cases, read_discharges, to_arrow, write_results
    from grouper.schema import DISCHARGE_SCHEMA
    from grouper.status import Status

#: Where each public name lives (imported on first access).
_HOMES = {
    "DISCHARGE_SCHEMA": "grouper.schema",
    "AuxTyping": "grouper.dip.aux",
    "Catalogue": "grouper.dip",
    "CatalogueError": "grouper.dip",
    "Codebook": "grouper.codebook",
    "CodebookError": "grouper.codebook",
    "DipCatalog": "grouper.dip.catalogue_builder",
    "DrgWeights": "grouper.drg.weights",
    "DrgdipError": "grouper.errors",
    "Migration": "grouper.drg.migration",
    "compare_schemes": "grouper.drg.migration",
    "InputError": "grouper.io",
    "OutputError": "grouper.errors",
    "Status": "grouper.status",
    "canonicalise": "grouper.io",
    "group_dip": "grouper.dip",
    "group_drg": "grouper.drg.group",
    "group_files": "grouper.batch",
    "read_cases": "grouper.io",
    "read_catalogue": "grouper.dip",
    "read_discharges": "grouper.io",
    "to_arrow": "grouper.io",
    "write_results": "grouper.io",
}

__all__ = [
    "DISCHARGE_SCHEMA",
    "AuxTyping",
    "Catalogue",
    "CatalogueError",
    "Codebook",
    "CodebookError",
    "DipCatalog",
    "DrgWeights",
    "DrgdipError",
    "InputError",
    "Migration",
    "OutputError",
    "Status",
    "__version__",
    "canonicalise",
    "compare_schemes",
    "group_dip",
    "group_drg",
    "group_files",
    "read_cases",
    "read_catalogue",
    "read_discharges",
    "to_arrow",
    "write_results",
]


def _version() -> str:
    """The version of this drgdip (from the package metadata, so ``pyproject.toml`` is its one source)."""
    from grouper.version import drgdip_version

    return drgdip_version()


__getattr__, __dir__ = lazy_exports(globals(), _HOMES, {"__version__": _version})
