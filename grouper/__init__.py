"""Grouping of discharge records (出院病例分组) under CHS-DRG and DIP."""

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
from grouper.version import drgdip_version

#: The version of this drgdip (from the package metadata, so ``pyproject.toml`` is its one source).
__version__ = drgdip_version()

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
