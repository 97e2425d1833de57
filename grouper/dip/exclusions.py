"""DIP exclusion lists (排除表): principal diagnoses that cannot be grouped, procedures that cannot be main.

The DIP specification requires two lists (docs/dip.md §3.2), kept as one region table
(``codebooks/dip/exclusions.csv``; columns ``kind, code, match, rule, pdx_scope, source, note``):

``kind``
    ``dx``: 《不能作为主诊断的 ICD-10 排除表》; ``proc``: 《不宜纳入分组规则的 ICD-9-CM-3 排除表》.
``code``
    a code (医保版 2.0, normalised like the cases' codes, compared case-insensitively) or a part of one.
``match``
    ``exact`` (the whole code), ``prefix`` (亚目 / 类目 / chapter: the code starts with it) or ``suffix``
    (the code ends with it: ``*`` = an asterisk (星号) manifestation code, docs/records.md §5 Q04).
``rule``
    ``dx``: ``not_principal`` (不能作为主诊断: the case gets ``PDX_INVALID`` and no group).
    ``proc`` (处理规则): ``conservative`` (按保守治疗入组: the code's treatment tier becomes
    ``conservative``, as with a tier-table override); ``not_main`` (不可作为主要手术操作: the next listed
    procedure that may be main becomes the main one; none → conservative); ``main_in_scope``
    (限范围可作主要手术操作: main only when the principal diagnosis starts with one of ``pdx_scope``, else
    skipped like ``not_main``).
``pdx_scope``
    限定主诊断范围: ``|``-joined principal-diagnosis prefixes; for ``main_in_scope`` only, and required there.
``source``, ``note``
    the document that backs the row (required); free text.

A code matched by several rows of its kind takes the most specific one: exact, then the longest prefix, then
the longest suffix. A region's table is added to the shipped rows; its row replaces a shipped row with the same
``kind, match, code``.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codes import normalise_codes
from grouper.dip.catalogue import CatalogueError
from grouper.resources import data_path

__all__ = ["EXCLUSION_COLUMNS", "EXCLUSION_RULES", "MATCHES", "Exclusions", "read_exclusions"]

#: Columns of an exclusion table; the first four are required.
EXCLUSION_COLUMNS = ("kind", "code", "match", "rule", "pdx_scope", "source", "note")
#: Allowed rules of each kind.
EXCLUSION_RULES = {"dx": ("not_principal",), "proc": ("conservative", "not_main", "main_in_scope")}
#: Match kinds, most specific first.
MATCHES = ("exact", "prefix", "suffix")

_KEY = ("kind", "match", "code")


@dataclass(frozen=True, eq=False)
class Exclusions:
    """The validated exclusion rows (codes normalised and upper-cased), with vectorized look-ups.

    Attributes
    ----------
    rows : tuple of dict          ``kind, code, match, rule, pdx_scope`` (a tuple of prefixes)
    scopes : tuple of tuple       the distinct ``pdx_scope`` prefix lists of ``main_in_scope`` rows
    fingerprint : str             SHA-256 of the rows (``source`` and ``note`` excluded)
    """

    rows: tuple[dict, ...]
    scopes: tuple[tuple[str, ...], ...] = field(init=False)
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        scopes = tuple(dict.fromkeys(r["pdx_scope"] for r in self.rows if r["rule"] == "main_in_scope"))
        object.__setattr__(self, "scopes", scopes)
        text = "\n".join(
            ",".join((r["kind"], r["code"], r["match"], r["rule"], "|".join(r["pdx_scope"])))
            for r in self.rows
        )
        object.__setattr__(self, "fingerprint", hashlib.sha256(text.encode()).hexdigest())

    def invalid_principal(self, codes: pa.Array) -> np.ndarray:
        """True where a principal diagnosis code is on the ``dx`` list (不能作为主诊断)."""
        return self._row_of("dx", codes) < len(self.rows)

    def procedure_rules(self, codes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Rules of procedure codes: ``(conservative, main_scope)``.

        ``conservative`` is True for 按保守治疗入组; ``main_scope`` is 0 (may be main), 1 (never main) or
        ``2 + j`` (main only when the principal diagnosis is in :attr:`scopes` ``[j]``).
        """
        row = self._row_of("proc", codes)
        rule = np.array([r["rule"] for r in self.rows] + [""], object)[row]
        scope = np.array(
            [self.scopes.index(r["pdx_scope"]) if r["rule"] == "main_in_scope" else 0 for r in self.rows]
            + [0],
            np.int64,
        )[row]
        main_scope = np.where(rule == "not_main", 1, np.where(rule == "main_in_scope", 2 + scope, 0))
        return rule == "conservative", main_scope.astype(np.int64)

    def in_scope(self, dx_codes: pa.Array) -> np.ndarray:
        """Boolean matrix ``[code, j]``: the principal starts with a prefix of :attr:`scopes` ``[j]``.

        At least one column, so that it can be indexed when there is no scope.
        """
        out = np.zeros((len(dx_codes), max(len(self.scopes), 1)), bool)
        pairs = [(p, j) for j, scope in enumerate(self.scopes) for p in scope]
        codes = pc.utf8_upper(dx_codes)
        for length in sorted({len(p) for p, _ in pairs}):  # a loop over prefix lengths, not records
            keys = sorted({p for p, _ in pairs if len(p) == length})
            of_key = np.zeros((len(keys), out.shape[1]), bool)
            for p, j in pairs:
                if len(p) == length:
                    of_key[keys.index(p), j] = True
            hit = _index(pc.utf8_slice_codeunits(codes, 0, length), keys)
            out[hit >= 0] |= of_key[hit[hit >= 0]]
        return out

    def _row_of(self, kind: str, codes: pa.Array) -> np.ndarray:
        """Row of the most specific row of ``kind`` matching each code; ``len(rows)`` for none."""
        codes = pc.utf8_upper(codes)
        out = np.full(len(codes), len(self.rows), np.int64)
        groups: dict[tuple[int, int], dict[str, int]] = {}
        for i, r in enumerate(self.rows):
            if r["kind"] == kind:
                order = MATCHES.index(r["match"])
                groups.setdefault((order, -len(r["code"]) if order else 0), {})[r["code"]] = i
        for (order, neg_length), rows in sorted(groups.items()):  # a loop over match groups, not records
            if order == 0:
                part = codes
            elif MATCHES[order] == "prefix":
                part = pc.utf8_slice_codeunits(codes, 0, -neg_length)
            else:
                part = pc.utf8_slice_codeunits(codes, neg_length)
            hit = _index(part, list(rows))
            found = (hit >= 0) & (out == len(self.rows))
            out[found] = np.array(list(rows.values()), np.int64)[hit[found]]
        return out


def _index(values: pa.Array, keys: list[str]) -> np.ndarray:
    pos = pc.index_in(values, value_set=pa.array(keys, pa.string())).fill_null(-1)
    return pos.to_numpy(zero_copy_only=False).astype(np.int64)


def _read(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            header = tuple(reader.fieldnames or ())
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    missing = [c for c in EXCLUSION_COLUMNS[:4] if c not in header]
    unknown = [c for c in header if c not in EXCLUSION_COLUMNS]
    if missing or unknown:
        what = f"missing column {missing[0]}" if missing else f"unknown column {unknown[0]!r}"
        raise CatalogueError(f"{path}: {what} (columns: {', '.join(EXCLUSION_COLUMNS)})")
    rows, seen = [], set()
    for n, r in enumerate(raw, start=1):
        r = {c: (r.get(c) or "").strip() for c in EXCLUSION_COLUMNS}
        where = f"{path}: row {n}"
        if r["kind"] not in EXCLUSION_RULES:
            raise CatalogueError(f"{where}: kind {r['kind']!r} is not one of {', '.join(EXCLUSION_RULES)}")
        if r["match"] not in MATCHES:
            raise CatalogueError(f"{where}: match {r['match']!r} is not one of {', '.join(MATCHES)}")
        if r["rule"] not in EXCLUSION_RULES[r["kind"]]:
            allowed = ", ".join(EXCLUSION_RULES[r["kind"]])
            raise CatalogueError(f"{where}: rule {r['rule']!r} of kind {r['kind']} is not one of {allowed}")
        code = normalise_codes(pa.array([r["code"]], pa.string()), r["kind"])[0].as_py()
        if code is None:
            raise CatalogueError(f"{where}: empty code")
        scope = tuple(filter(None, (p.strip() for p in r["pdx_scope"].split("|"))))
        if (r["rule"] == "main_in_scope") != bool(scope):
            raise CatalogueError(f"{where}: pdx_scope is required for main_in_scope and only for it")
        if not r["source"]:
            raise CatalogueError(f"{where}: no source (every row needs the document that backs it)")
        key = (r["kind"], r["match"], code.upper())
        if key in seen:
            raise CatalogueError(f"{where}: {r['kind']} {r['match']} {r['code']!r} occurs more than once")
        seen.add(key)
        scope_codes = normalise_codes(pa.array(scope, pa.string()), "dx").to_pylist()
        rows.append(
            {
                "kind": r["kind"],
                "code": code.upper(),
                "match": r["match"],
                "rule": r["rule"],
                "pdx_scope": tuple(p.upper() for p in scope_codes),
            }
        )
    return rows


def read_exclusions(path: str | Path | None = None) -> Exclusions:
    """Read the exclusion lists (排除表): the shipped table, plus a region's own table when given.

    Parameters
    ----------
    path : path, optional
        A region's table (columns :data:`EXCLUSION_COLUMNS`); its rows are added to the shipped ones and
        replace a shipped row with the same ``kind, match, code``.

    Returns
    -------
    Exclusions

    Raises
    ------
    CatalogueError
        An unknown column, kind, match or rule, a missing source or scope, or a duplicate row, naming the file
        and the row.

    Examples
    --------
    >>> ex = read_exclusions()
    >>> ex.invalid_principal(pa.array(["M49.0*", "A18.000x047", "K35.800x001"])).tolist()
    [True, False, False]
    """
    rows = _read(data_path("dip", "exclusions.csv"))
    if path is not None:
        own = _read(Path(path))
        keys = {tuple(r[k] for k in _KEY) for r in own}
        rows = [r for r in rows if tuple(r[k] for k in _KEY) not in keys] + own
    return Exclusions(tuple(rows))
