"""DIP (按病种分值付费) grouping: catalogue format, procedure treatment tiers, exclusion lists and the grouper."""

from grouper.dip.catalogue import (
    CATALOGUE_SCHEMA,
    KINDS,
    TIERS,
    Catalogue,
    CatalogueError,
    read_catalogue,
    write_catalogue,
)
from grouper.dip.exclusions import Exclusions, read_exclusions
from grouper.dip.group import DIP_RESULT_SCHEMA, group_dip, tie_break_profiles
from grouper.dip.tiers import ProcedureTiers, read_procedure_tiers

__all__ = [
    "CATALOGUE_SCHEMA",
    "DIP_RESULT_SCHEMA",
    "KINDS",
    "TIERS",
    "Catalogue",
    "CatalogueError",
    "Exclusions",
    "ProcedureTiers",
    "group_dip",
    "read_catalogue",
    "read_exclusions",
    "read_procedure_tiers",
    "tie_break_profiles",
    "write_catalogue",
]
