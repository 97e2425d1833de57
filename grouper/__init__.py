"""Grouping of discharge records (出院病例分组) under CHS-DRG and DIP."""

from grouper.batch import group_files
from grouper.codebook import Codebook, CodebookError
from grouper.dip import Catalogue, CatalogueError, group_dip, read_catalogue
from grouper.dip.aux import AuxTyping
from grouper.dip.catalog import DipCatalog
from grouper.drg.group import group_drg
from grouper.drg.weights import DrgWeights
from grouper.io import InputError, read_discharges, write_results
from grouper.schema import DISCHARGE_SCHEMA
from grouper.status import Status

__version__ = "0.1.0"

__all__ = [
    "DISCHARGE_SCHEMA",
    "AuxTyping",
    "Catalogue",
    "CatalogueError",
    "Codebook",
    "CodebookError",
    "DipCatalog",
    "DrgWeights",
    "InputError",
    "Status",
    "__version__",
    "group_dip",
    "group_drg",
    "group_files",
    "read_catalogue",
    "read_discharges",
    "write_results",
]
