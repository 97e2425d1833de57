"""QC code lists (质控字典): sex- and age-specific diagnoses, sex-specific procedures, gray codes (医保灰码),
diagnoses that cannot be the principal (不能作为主诊断) and a region's 低标入院 diagnoses.

Each list is a CSV of ``codebooks/qc/`` with a ``code`` and a ``match`` column (``exact``, ``prefix`` or ``suffix``)
plus the list's own columns (``sex``, ``min_age_years``/``max_age_years``) and a ``source``. A region overrides a
list by a file of the same name in its own folder (``QcLists.load(region_dir)``): that file replaces the default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from grouper.codes import normalise_codes
from grouper.errors import CodebookError
from grouper.resources import data_path

__all__ = ["CodeList", "QcLists"]

_MATCHES = ("exact", "prefix", "suffix")
#: list name → (code kind, extra columns)
_LISTS = {
    "sex_dx": ("dx", ("sex",)),
    "sex_proc": ("proc", ("sex",)),
    "age_dx": ("dx", ("min_age_years", "max_age_years")),
    "gray_dx": ("dx", ()),
    "gray_proc": ("proc", ()),
    "not_principal_dx": ("dx", ()),
    "low_standard_dx": ("dx", ()),
}


@dataclass(frozen=True)
class CodeList:
    """One code list: ``find(codes)`` gives the first matching row per code (-1 none), exact rows first."""

    name: str
    table: pa.Table
    sha256: str

    def find(self, codes: pa.Array) -> np.ndarray:
        """Row of the list each code matches (-1 none or null); prefix rows: the longest prefix wins."""
        if isinstance(codes, pa.ChunkedArray):
            codes = codes.combine_chunks()
        enc = pc.dictionary_encode(codes.cast(pa.string()))
        distinct = enc.dictionary
        found = np.full(len(distinct), -1, np.int64)
        match = self.table.column("match").to_numpy(zero_copy_only=False)
        code = self.table.column("code").to_numpy(zero_copy_only=False).astype(str)
        rows = np.flatnonzero(match == "exact")
        if len(rows):
            at = (
                pc.index_in(distinct, value_set=pa.array(code[rows]))
                .fill_null(-1)
                .to_numpy(zero_copy_only=False)
            )
            found = np.where(at >= 0, rows[np.maximum(at, 0)], found)
        pre = np.flatnonzero(match == "prefix")
        for length in sorted({len(code[r]) for r in pre}, reverse=True):
            these = pre[np.char.str_len(code[pre]) == length]
            head = pc.utf8_slice_codeunits(distinct, 0, length)
            at = (
                pc.index_in(head, value_set=pa.array(code[these]))
                .fill_null(-1)
                .to_numpy(zero_copy_only=False)
            )
            found = np.where((found < 0) & (at >= 0), these[np.maximum(at, 0)], found)
        for r in np.flatnonzero(match == "suffix"):
            hit = pc.ends_with(distinct, code[r]).fill_null(False).to_numpy(zero_copy_only=False)
            found = np.where((found < 0) & hit, r, found)
        idx = enc.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
        return np.append(found, -1)[idx]

    def column(self, name: str, rows: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """The list's ``name`` column at ``rows`` (``fill`` where a row is -1)."""
        values = self.table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        return np.where(rows >= 0, np.append(values, fill)[rows], fill)


@dataclass(frozen=True)
class QcLists:
    """Every QC list, the default ones overridden by a region's folder.

    Examples
    --------
    >>> lists = QcLists.load()
    >>> lists["sex_dx"].find(pa.array(["C61.x00", "I10.x00"])).tolist()[1]
    -1
    """

    lists: dict[str, CodeList]

    @classmethod
    def load(cls, region: str | Path | None = None) -> QcLists:
        """The shipped lists of ``codebooks/qc/``; files of ``region`` (a folder) replace those of the same name."""
        out = {}
        for name, (kind, extra) in _LISTS.items():
            path = data_path("qc", f"{name}.csv")
            if region is not None and (Path(region) / f"{name}.csv").is_file():
                path = Path(region) / f"{name}.csv"
            out[name] = _read(path, name, kind, extra)
        return cls(out)

    def __getitem__(self, name: str) -> CodeList:
        return self.lists[name]

    @property
    def sha256(self) -> str:
        return hashlib.sha256("".join(v.sha256 for v in self.lists.values()).encode()).hexdigest()


def _read(path: Path, name: str, kind: str, extra: tuple[str, ...]) -> CodeList:
    try:
        raw = path.read_bytes()
        cols = ("code", "match", *extra)
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in ("code", "match")}),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise CodebookError(f"{path}: cannot read the QC list {name}: {exc}", path=path) from None
    missing = [c for c in (*cols, "source") if c not in table.column_names]
    if missing:
        raise CodebookError(f"{path}: missing column {missing[0]}", path=path, column=missing[0])
    match = table.column("match").to_pylist()
    for i, m in enumerate(match):
        if m not in _MATCHES:
            raise CodebookError(
                f"{path}: row {i + 2}, column match: {m!r} is not one of {', '.join(_MATCHES)}",
                path=path,
                row=i + 2,
                column="match",
            )
    code = table.column("code").combine_chunks() if table.num_rows else pa.array([], pa.string())
    exact = pc.equal(table.column("match"), "exact") if table.num_rows else pa.array([], pa.bool_())
    clean = pc.if_else(exact, normalise_codes(code, kind), code) if table.num_rows else code
    table = table.select(list(cols)).set_column(0, "code", pc.fill_null(clean, ""))
    for c in extra:
        table = table.set_column(table.schema.get_field_index(c), c, pc.cast(table.column(c), pa.float64()))
    return CodeList(name, table, hashlib.sha256(raw).hexdigest())
