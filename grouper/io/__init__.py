"""Input and output (STYLE.md §d): the readers of every table the commands take and the one writer module.

- :mod:`grouper.io.discharges`: discharge files (结算清单 exports) → canonical batches.
- :mod:`grouper.io.writer`: atomic files and folders, ``if_exists="error" | "replace"``, Parquet/CSV/Excel/JSON.
"""

from grouper.errors import InputError, OutputError
from grouper.io.discharges import (
    BATCH_SIZE,
    as_discharges,
    canonicalise,
    count_rows,
    read_cases,
    read_discharges,
    to_arrow,
)
from grouper.io.writer import atomic_file, atomic_folder, write_json, write_results

__all__ = [
    "BATCH_SIZE",
    "InputError",
    "OutputError",
    "as_discharges",
    "atomic_file",
    "atomic_folder",
    "canonicalise",
    "count_rows",
    "read_cases",
    "read_discharges",
    "to_arrow",
    "write_json",
    "write_results",
]
