"""Input and output: the readers of every table the commands take and the one writer module.

- :mod:`grouper.io.discharges`: discharge files (结算清单 exports) → canonical batches.
- :mod:`grouper.io.writer`: atomic files and folders, ``if_exists="error" | "replace"``, Parquet/CSV/Excel/JSON.

The names are imported on first use (PEP 562): ``grouper.io.formats`` alone does not load pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from grouper._lazy import lazy_exports
from grouper.errors import InputError, OutputError

if TYPE_CHECKING:
    from grouper.io.discharges import (
        BATCH_SIZE,
        as_discharges,
        canonicalise,
        count_rows,
        dataset_files,
        part_names,
        read_cases,
        read_discharges,
        to_arrow,
    )
    from grouper.io.writer import atomic_file, atomic_folder, write_json, write_results

#: Where each public name lives (imported on first access).
_HOMES = {
    "BATCH_SIZE": "grouper.io.discharges",
    "as_discharges": "grouper.io.discharges",
    "canonicalise": "grouper.io.discharges",
    "count_rows": "grouper.io.discharges",
    "dataset_files": "grouper.io.discharges",
    "part_names": "grouper.io.discharges",
    "read_cases": "grouper.io.discharges",
    "read_discharges": "grouper.io.discharges",
    "to_arrow": "grouper.io.discharges",
    "atomic_file": "grouper.io.writer",
    "atomic_folder": "grouper.io.writer",
    "write_json": "grouper.io.writer",
    "write_results": "grouper.io.writer",
}

__all__ = [
    "BATCH_SIZE",
    "InputError",
    "OutputError",
    "as_discharges",
    "atomic_file",
    "atomic_folder",
    "canonicalise",
    "count_rows",
    "dataset_files",
    "part_names",
    "read_cases",
    "read_discharges",
    "to_arrow",
    "write_json",
    "write_results",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)
