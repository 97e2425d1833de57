"""DIP catalogue (病种目录库) file format: one row per payable group, plus metadata.

A catalogue is a table with the columns of :data:`CATALOGUE_SCHEMA` and a flat metadata mapping (name, region,
year, data_year, score_scale, region_avg_cost, source, …). On disk it is either a CSV file with a ``.toml`` of
the same stem beside it, or one Parquet file carrying the metadata as JSON in the schema metadata.

Row kinds (``kind``):

========== ===========================================================================================
core       核心病种: ``subcategory`` is the principal-diagnosis 亚目 (``K35.8``, ``A46.x``); ``main_proc`` and
           ``related_procs`` (``+``-joined, all required) are empty for the conservative group
comprehensive 综合病种: ``subcategory`` is the 类目 (``K35``); ``tier`` is the treatment tier
priority   先期分组 (transplant, life support, low birth weight): matched by ``codebooks/dip/priority_rules.csv``
blank      空白病种 ``KBBZ``: catch-all for unmatched cases
placeholder a region's 未入组 placeholder (平顶山 ``CP01:SS`` …); never matched by the grouper
export_only in the export but not in the published list (平顶山 ``U07:*``); never matched
========== ===========================================================================================

``tier`` ∈ {surgery, interventional, therapeutic, diagnostic, conservative} (docs/dip.md §3.8).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper.errors import CatalogueError
from grouper.io.writer import PARQUET_OPTIONS, IfExists, check_target, write_text, write_with
from grouper.resources import data_path

__all__ = [
    "CATALOGUE_SCHEMA",
    "KINDS",
    "TIERS",
    "Catalogue",
    "CatalogueError",
    "read_catalogue",
    "write_catalogue",
]

#: Columns of a catalogue table, in file order.
CATALOGUE_SCHEMA = pa.schema(
    [
        pa.field("dip_code", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("subcategory", pa.string(), nullable=False),
        pa.field("main_proc", pa.string(), nullable=False),
        pa.field("related_procs", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("avg_cost", pa.float64()),
        pa.field("cv", pa.float64()),
        pa.field("n_cases", pa.int64()),
        pa.field("avg_los", pa.float64()),
        pa.field("discuss_flag", pa.int8()),
    ]
)
#: Closed set of row kinds.
KINDS = ("core", "comprehensive", "priority", "blank", "placeholder", "export_only")
#: Closed set of treatment tiers, lowest first (保守 < 诊断性 < 治疗性 < 介入 < 手术).
TIERS = ("conservative", "diagnostic", "therapeutic", "interventional", "surgery")

_META_KEY = b"drgdip.catalogue"


@dataclass(frozen=True, eq=False)
class Catalogue:
    """A DIP catalogue (病种目录库): rows of :data:`CATALOGUE_SCHEMA` plus metadata.

    Parameters
    ----------
    table : pa.Table
        Catalogue rows; columns are cast to :data:`CATALOGUE_SCHEMA` (string nulls become ``""``).
    meta : dict
        Metadata (``name``, ``region``, ``year``, ``data_year``, ``score_scale``, ``region_avg_cost``, …).

    Attributes
    ----------
    fingerprint : str
        SHA-256 over the rows and the metadata; equal catalogues have equal fingerprints.
    """

    table: pa.Table
    meta: MappingProxyType = field(default_factory=dict)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        table = _conform(self.table, "<table>")
        meta = dict(self.meta)
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "meta", MappingProxyType(meta))
        object.__setattr__(self, "fingerprint", _fingerprint(table, meta))

    def __reduce__(self):
        # the metadata view cannot be pickled: rebuild from the rows and a plain dict (a worker of a cluster)
        return (Catalogue, (self.table, dict(self.meta)))

    @property
    def name(self) -> str:
        """The catalogue's ``name`` metadata, or ``""``."""
        return str(self.meta.get("name", ""))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalogue) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return f"Catalogue(name={self.name!r}, rows={len(self)}, fingerprint={self.fingerprint[:12]}…)"


def _conform(table: pa.Table, where: str) -> pa.Table:
    missing = [f.name for f in CATALOGUE_SCHEMA if f.name not in table.column_names]
    if missing:
        raise CatalogueError(f"{where}: missing column(s) {', '.join(missing)}")
    cols = []
    for f in CATALOGUE_SCHEMA:
        col = table.column(f.name)
        try:
            col = col.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CatalogueError(f"{where}: column {f.name}: cannot read as {f.type}: {exc}") from None
        if pa.types.is_string(f.type):
            col = col.fill_null("")
        cols.append(col)
    table = pa.Table.from_arrays(cols, schema=CATALOGUE_SCHEMA).combine_chunks()
    for column, allowed in (("kind", KINDS), ("tier", ("", *TIERS))):
        values = table.column(column).to_pylist()
        for i, v in enumerate(values):
            if v not in allowed:
                raise CatalogueError(
                    f"{where}: row {i + 1}: {column} {v!r} is not one of {', '.join(a for a in allowed if a)}"
                )
    codes = table.column("dip_code").to_pylist()
    if len(set(codes)) != len(codes):
        seen: set[str] = set()
        dup = next(c for c in codes if c in seen or seen.add(c))
        raise CatalogueError(f"{where}: dip_code {dup!r} occurs more than once")
    return table


def _fingerprint(table: pa.Table, meta: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str).encode())
    for f in CATALOGUE_SCHEMA:
        h.update(f.name.encode())
        h.update(json.dumps(table.column(f.name).to_pylist(), ensure_ascii=False).encode())
    return h.hexdigest()


def _resolve(path_or_name: str | Path) -> Path:
    path = Path(path_or_name)
    shipped = data_path("dip")
    if not path.exists() and len(path.parts) == 1 and (shipped / path.name).is_dir():
        path = shipped / path.name
    if path.is_dir():
        path = path / "catalogue.csv"
    if not path.exists():
        known = sorted(p.parent.name for p in shipped.glob("*/catalogue.csv"))
        raise CatalogueError(f"{path_or_name}: no such catalogue file or name (shipped: {', '.join(known)})")
    return path


def read_catalogue(path_or_name: str | Path, fmt: str | None = None) -> Catalogue:
    """Read a DIP catalogue (病种目录库) from a CSV (+ ``.toml``) or Parquet file, or by shipped name.

    Parameters
    ----------
    path_or_name : str or Path
        A ``.csv`` or ``.parquet`` file, a directory holding ``catalogue.csv``, or the name of a catalogue
        shipped under ``codebooks/dip/`` (e.g. ``"pingdingshan-2025"``).
    fmt : {"csv", "parquet"}, optional
        The file format; by default the file's suffix decides.

    Returns
    -------
    Catalogue

    Examples
    --------
    >>> cat = read_catalogue("pingdingshan-2025")
    >>> cat.meta["region_avg_cost"], len(cat)
    (5718.153489, 4536)
    """
    path = _resolve(path_or_name)
    if (fmt or path.suffix.lower().lstrip(".")) == "parquet":
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise CatalogueError(f"{path}: not a readable Parquet file: {exc}") from None
        raw = (table.schema.metadata or {}).get(_META_KEY)
        meta = json.loads(raw) if raw else {}
        return Catalogue(_conform(table.replace_schema_metadata(None), str(path)), meta)
    types = {f.name: f.type for f in CATALOGUE_SCHEMA}
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    toml_path = path.with_suffix(".toml")
    meta: dict[str, Any] = {}
    if toml_path.exists():
        try:
            meta = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{toml_path}: {exc}") from None
    return Catalogue(_conform(table, str(path)), meta)


def write_catalogue(
    catalogue: Catalogue, path: str | Path, fmt: str | None = None, *, if_exists: IfExists = "error"
) -> Path:
    """Write a catalogue as CSV with a ``.toml`` of the same stem beside it, or as Parquet (``fmt``, by default
    the suffix). ``if_exists="error"`` (default) refuses an existing file — both files of a CSV pair are checked
    before either is written — and ``"replace"`` replaces them.

    Files go through the one writer (grouper.io.writer: temp file + rename), so a crash never leaves half a
    catalogue.

    Returns
    -------
    Path
        The table file written.
    """
    path = Path(path)
    meta = dict(catalogue.meta)
    if (fmt or path.suffix.lower().lstrip(".")) == "parquet":
        table = catalogue.table.replace_schema_metadata(
            {_META_KEY: json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str).encode()}
        )
        return write_with(
            path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS), if_exists=if_exists
        )
    toml_path = check_target(path.with_suffix(".toml"), if_exists)
    write_with(path, lambda tmp: pacsv.write_csv(catalogue.table, tmp), if_exists=if_exists)
    write_text(_to_toml(meta), toml_path, if_exists="replace")  # checked above, with the table
    return path


def _toml_value(v: Any) -> str:
    if v is None:  # TOML has no null
        return '""'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v), ensure_ascii=False)


def _to_toml(meta: dict) -> str:
    """Flat TOML: scalars, arrays and inline tables (enough for catalogue metadata)."""
    return "".join(f"{json.dumps(str(k))} = {_toml_value(v)}\n" for k, v in meta.items())
