"""Per-group statistics of a history as exact reductions over its parts (归约): the trimming cuts, the kept
counts and sums, the CVs and the history's fingerprint of a catalogue or weights fit.

A history is a sequence of parts (slices of a table on this machine, files held by the workers of a Dask
cluster: :class:`Parts`). Each statistic is built from per-part results combined by exact integer addition, so it
does not depend on how the history is cut nor on the order the parts are combined in: one part or a thousand give
the same bits.

- **Sums.** Costs are summed in whole millionths of a yuan (:data:`UNIT`: a cost written with up to six
  decimals is exact; a plausible cost, at most 1e8 yuan, is under 2⁴⁷ units), sums and sums of squares as Python
  integers (from 17-bit limbs, each chunk's float64 sums below 2⁵³), ln cost in fixed point (2⁻²⁴). A mean or a
  CV is then one exact quotient rounded once.
- **Quantile cuts** (P2.5/P97.5, quartiles) are exact: per group, the cases per cost bin (1/32 of a binary order
  of magnitude: the top bits of the float64) locate the bins holding the ranks a cut needs (at most four a
  group); while such a bin holds more than 64 cases it is split in 128 by the next bits (one more pass); then
  the costs of the cases in those bins come back (or, split down to single values, none).
- **Fingerprint.** A 64-bit hash per row over the columns used, summed in four independent lanes modulo 2⁶⁴:
  the same rows give the same fingerprint however they are cut or ordered.

What the caller receives is per group (and per year): counts and sums; each group's histogram (at most 32 bins
an octave of its costs); at most 4 × 128 counts a group per split; at most 4 × 64 costs a group. None of it grows
with the number of cases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array

__all__ = [
    "UNIT",
    "Cases",
    "Cut",
    "KeptSums",
    "LocalParts",
    "Parts",
    "add",
    "combine_fingerprints",
    "cuts",
    "cv_of",
    "fingerprint_of",
    "fingerprint_part",
    "kept",
    "kept_sums",
    "sums",
    "units",
]

#: Rows per chunk of the exact float64 sums (values below 2³⁴: every partial sum stays below 2⁵³).
_CHUNK = 1 << 19
#: Bits of a float64 dropped to make a cost bin (exponent and 7 mantissa bits kept: 128 bins an octave).
_BIN_SHIFT = 45
#: Millionths of a yuan: the unit costs are summed in (the published vectors carry six decimals).
UNIT = 1_000_000
#: Fixed point of ln cost for ``log_sd`` trimming, shifted to be positive (|ln cost| < 745).
_LOG_ONE = 1 << 24
_LOG_SHIFT = 1 << 40
#: Rows per part of a table fitted on this machine (:meth:`LocalParts.of_table`).
_PART_ROWS = 1 << 20
# A case within this relative distance of a cut is kept (cuts are inclusive; docs/drg.md §7.1).
_REL_TOL = 1e-9
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Cases:
    """The cases of one part as a fit reduces them: one entry per (case, group family)."""

    cost: np.ndarray  #: float64 yuan, finite and > 0
    gid: np.ndarray  #: int64 group index
    yid: np.ndarray  #: int64 index of the case's year in the window
    los: np.ndarray | None = None  #: float64 days (NaN: none to use)


class Parts:
    """A history cut in parts, and where the per-part functions run.

    ``reduce(fn, combine, *args)`` returns ``combine([fn(part, *args) for part in parts])`` (combined in any
    grouping: ``combine`` is exact); :class:`LocalParts` runs here, ``grouper.distributed.ClusterParts`` on the
    workers holding the parts.
    """

    def reduce(self, fn: Callable, combine: Callable[[list], Any], *args) -> Any:
        raise NotImplementedError

    def map(self, fn: Callable, *args) -> Parts:
        """The parts ``fn(part, *args)``, held where the parts are."""
        raise NotImplementedError

    def release(self) -> None:
        """Let go of the parts (a cluster's memory)."""


class LocalParts(Parts):
    """Parts held by this process (slices of a table, or :class:`Cases`)."""

    def __init__(self, parts: Sequence) -> None:
        self.parts = list(parts)

    @classmethod
    def of_table(cls, table: pa.Table) -> LocalParts:
        """A table fitted on this machine, in slices of at most :data:`_PART_ROWS` rows (an empty table: one part)."""
        return cls([table.slice(at, _PART_ROWS) for at in range(0, max(table.num_rows, 1), _PART_ROWS)])

    def reduce(self, fn, combine, *args):
        return combine([fn(part, *args) for part in self.parts])

    def map(self, fn, *args) -> LocalParts:
        return LocalParts([fn(part, *args) for part in self.parts])


# ---------------------------------------------------------------------------------------------------------
# exact sums


def units(cost: np.ndarray) -> np.ndarray:
    """Costs in yuan → whole millionths of a yuan (int64; a plausible cost, at most 1e8 yuan, is under 2⁴⁷)."""
    return np.rint(cost * UNIT).astype(np.int64)


def sums(
    x: np.ndarray, gid: np.ndarray, n: int, squares: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per group, the exact Σx and Σx² (Python integers) of integers ``0 ≤ x < 2⁵¹``: from 17-bit limbs, each
    chunk's float64 sums of limbs and of their products staying below 2⁵³."""
    limbs = np.zeros((9, n), np.int64)
    for start in range(0, x.size, _CHUNK):
        xs, g = x[start : start + _CHUNK], gid[start : start + _CHUNK]
        a, b, c = xs >> 34, (xs >> 17) & 0x1FFFF, xs & 0x1FFFF
        parts = (a, b, c, a * a, a * b, a * c, b * b, b * c, c * c) if squares else (a, b, c)
        for k, v in enumerate(parts):
            limbs[k] += np.bincount(g, v, minlength=n).astype(np.int64)
    a, b, c, aa, ab, ac, bb, bc, cc = (limbs[k].astype(object) for k in range(9))
    s1 = (a << 34) + (b << 17) + c
    if not squares:
        return s1, None
    return s1, (aa << 68) + (ab << 52) + ((bb + 2 * ac) << 34) + (bc << 18) + cc


def add(results: list[dict]) -> dict:
    """Per-part dicts of arrays, ints, lists or tuples of them added key by key."""
    out = dict(results[0])
    for r in results[1:]:
        for k, v in r.items():
            if isinstance(v, tuple):
                out[k] = tuple(a + b for a, b in zip(out[k], v, strict=True))
            else:
                out[k] = out[k] + v
    return out


# ---------------------------------------------------------------------------------------------------------
# pass 1: cases per group, and what the trimming cuts are made of


def _limit_part(cases: Cases, n: int, method: str) -> dict:
    gid = cases.gid
    out: dict = {"n": np.bincount(gid, minlength=n).astype(np.int64)}
    if method == "log_sd":
        s1, s2 = sums(np.rint(np.log(cases.cost) * _LOG_ONE).astype(np.int64) + _LOG_SHIFT, gid, n)
        out |= {"l1": s1, "l2": s2}
    elif method in ("percentile", "iqr"):
        parents = np.zeros((n, _WIDTH), np.int64)  # level 1: the whole group (a positive float's bits >> 63)
        parents[:, 1:] = -1
        out |= {"hist": _level_part(cases, parents, 63, _SHIFTS[0])}
    return out


def _combine_limits(results: list[dict]) -> dict:
    hists = [r.pop("hist") for r in results if "hist" in r]
    out = add(results)
    if hists:
        out["hist"] = _combine_hists(hists)
    return out


# ---------------------------------------------------------------------------------------------------------
# exact quantile cuts: counts per cost bin, the bins holding the wanted ranks split further, then their costs
#
# A cost's bin at level ``shift`` is its float64 bits >> shift (for positive costs, increasing with the cost).
# Each wanted rank is followed down the levels of _SHIFTS inside its group's "parent" bins (at most _WIDTH a
# group); a parent is identified by its slot ``group × _WIDTH + k``.

#: Float64 bits dropped at each level: the first bins costs by exponent and 5 mantissa bits (32 bins an octave),
#: each next level splits the bins holding a wanted rank in 128; at 0 a bin is one value.
_SHIFTS = (47, 40, 33, 26, 19, 12, 5, 0)
#: Parent bins a group follows at most: the two ranks on either side of each of two quantiles.
_WIDTH = 4
#: A bin of at most this many cases has its costs fetched rather than split again.
_FETCH = 64


def _slots(cases: Cases, parents: np.ndarray, pshift: int) -> np.ndarray:
    """The parent slot of each case (−1: in none of its group's parent bins)."""
    bins = cases.cost.view(np.int64) >> pshift
    slot = np.full(bins.size, -1, np.int64)
    for k in range(_WIDTH):
        hit = parents[cases.gid, k] == bins
        slot[hit] = cases.gid[hit] * _WIDTH + k
    return slot


def _level_part(cases: Cases, parents: np.ndarray, pshift: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Cases per sub-bin (bits >> ``shift``) of the parent bins (bits >> ``pshift``): sorted keys
    ``slot << (pshift − shift) | sub-bin`` and their counts."""
    slot = _slots(cases, parents, pshift)
    ok = slot >= 0
    width = pshift - shift
    sub = (cases.cost[ok].view(np.int64) >> shift) & ((1 << width) - 1)
    keys, counts = np.unique((slot[ok] << width) | sub, return_counts=True)
    return keys, counts.astype(np.int64)


def _combine_hists(results: list) -> tuple[np.ndarray, np.ndarray]:
    keys, inv = np.unique(np.concatenate([k for k, _ in results]), return_inverse=True)
    return keys, np.bincount(inv, np.concatenate([c for _, c in results]), minlength=keys.size).astype(
        np.int64
    )


def _values_part(cases: Cases, parents: np.ndarray, pshift: int) -> tuple[np.ndarray, np.ndarray]:
    """The slot and cost of the cases in the parent bins."""
    slot = _slots(cases, parents, pshift)
    ok = slot >= 0
    return slot[ok], cases.cost[ok]


def _combine_values(results: list) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([k for k, _ in results]), np.concatenate([v for _, v in results])


def _level_pass(part, prepare, args, parents, pshift, shift):
    return _level_part(prepare(part, *args), parents, pshift, shift)


def _values_pass(part, prepare, args, parents, pshift):
    return _values_part(prepare(part, *args), parents, pshift)


def _parents(group: np.ndarray, bins: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The parent table (groups × _WIDTH bins, −1: none) of the wanted ranks in ``bins`` of their ``group``,
    and each rank's slot."""
    pairs, inv = np.unique(np.stack([group, bins], axis=1), axis=0, return_inverse=True)
    inv = inv.ravel()
    first = np.searchsorted(pairs[:, 0], pairs[:, 0])  # the first pair of the same group
    k = np.arange(len(pairs)) - first
    table = np.full((n_groups, _WIDTH), -1, np.int64)
    table[pairs[:, 0], k] = pairs[:, 1]
    return table, pairs[inv, 0] * _WIDTH + k[inv]


def _order_statistics(parts: Parts, prepare, args, hist, group: np.ndarray, rank: np.ndarray, n_groups: int):
    """The costs at ``rank`` (0-based, sorted ascending) of ``group``: from the level-1 ``hist``, each rank's
    bin split further while it holds more than _FETCH cases, then the costs of the bins reached."""
    slot = group * _WIDTH  # level 1: one parent per group (all its cases)
    pshift, bins = 63, np.zeros(group.size, np.int64)
    for level, shift in enumerate(_SHIFTS):
        if level:
            table, slot = _parents(group, bins, n_groups)
            hist = parts.reduce(_level_pass, _combine_hists, prepare, args, table, pshift, shift)
        keys, counts = hist
        width = pshift - shift
        cum = np.cumsum(counts)
        start = np.searchsorted(keys >> width, slot)  # the slot's first sub-bin
        before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
        at = np.searchsorted(cum, before + rank, side="right")
        rank = rank - (cum[at] - counts[at] - before)
        bins = (bins << width) | (keys[at] & ((1 << width) - 1))
        pshift = shift
        if shift == 0:  # a bin is one value
            return bins.view(np.float64)
        if counts[at].max() <= _FETCH:
            break
    table, slot = _parents(group, bins, n_groups)
    slots, values = parts.reduce(_values_pass, _combine_values, prepare, args, table, pshift)
    order = np.lexsort((values, slots))
    slots, values = slots[order], values[order]
    return values[np.searchsorted(slots, slot) + rank]


@dataclass(frozen=True)
class Cut:
    """Per group: its cases, and the inclusive range of kept costs (all kept when the group is not trimmed)."""

    n: np.ndarray  #: int64 cases per group
    lo: np.ndarray  #: float64 lower cut (−inf: none), on cost or, for ``log_sd``, on ln cost
    hi: np.ndarray  #: float64 upper cut (+inf: none)
    log: bool  #: cuts on ln cost

    def take(self, rows: slice) -> Cut:
        """The cuts of some groups."""
        return Cut(self.n[rows], self.lo[rows], self.hi[rows], self.log)


def _quantile_ranks(n: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group of ``n`` cases, NumPy's linear quantile ``q`` as (position, lower rank, upper rank)."""
    pos = q * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    return pos, lo, np.minimum(lo + 1, n - 1)


def cuts(parts: Parts, prepare: Callable, args: tuple, n_groups: int, spec) -> Cut:
    """The trimming cuts of every group of a history (docs/dip.md §4.4, docs/drg.md §7.1).

    Parameters
    ----------
    parts : Parts
    prepare : callable
        ``prepare(part, *args)`` → :class:`Cases` (module-level, so that workers can run it).
    n_groups : int
    spec : grouper._history.TrimSpec
    """
    first = parts.reduce(_limit_pass, _combine_limits, prepare, args, n_groups, spec.method)
    n = first["n"]
    lo, hi = np.full(n_groups, -np.inf), np.full(n_groups, np.inf)
    trimmed = (n >= max(spec.min_n, 1)) & (spec.method != "none")
    if spec.method == "log_sd":
        for g in np.flatnonzero(trimmed):
            k, s1, s2 = int(n[g]), int(first["l1"][g]), first["l2"][g]
            mean = float(Fraction(s1 - k * _LOG_SHIFT, k * _LOG_ONE))  # the variance is shift-free
            sd = float(Fraction(k * s2 - s1 * s1, k * max(k - 1, 1) * _LOG_ONE * _LOG_ONE)) ** 0.5
            lo[g], hi[g] = mean - spec.fence * sd, mean + spec.fence * sd
    elif spec.method in ("percentile", "iqr") and trimmed.any():
        qs = spec.limits if spec.method == "percentile" else (0.25, 0.75)
        groups = np.flatnonzero(trimmed)
        wanted = [_quantile_ranks(n[groups], q) for q in qs]
        rank = np.concatenate([r for _, a, b in wanted for r in (a, b)])
        got = _order_statistics(
            parts, prepare, args, first["hist"], np.tile(groups, 2 * len(qs)), rank, n_groups
        )
        got = np.split(got, 2 * len(qs))
        limits = []
        for i, (pos, low, _) in enumerate(wanted):
            a, b = got[2 * i], got[2 * i + 1]
            limits.append(a + (pos - low) * (b - a))
        if spec.method == "percentile":
            lo[groups], hi[groups] = limits
        else:
            q1, q3 = limits
            lo[groups], hi[groups] = q1 - spec.fence * (q3 - q1), q3 + spec.fence * (q3 - q1)
    finite = np.isfinite(lo)
    lo[finite] -= _REL_TOL * np.abs(lo[finite])
    finite = np.isfinite(hi)
    hi[finite] += _REL_TOL * np.abs(hi[finite])
    return Cut(n, lo, hi, spec.method == "log_sd")


def _limit_pass(part, prepare, args, n, method):
    return _limit_part(prepare(part, *args), n, method)


# ---------------------------------------------------------------------------------------------------------
# pass 3: counts and sums of the kept cases


def kept(cases: Cases, cut: Cut) -> np.ndarray:
    """Which cases survive their group's cut."""
    values = np.log(cases.cost) if cut.log else cases.cost
    return (values >= cut.lo[cases.gid]) & (values <= cut.hi[cases.gid])


def _sums_part(cases: Cases, cut: Cut, n: int, n_years: int) -> dict:
    keep = kept(cases, cut)
    gid, yid = cases.gid[keep], cases.yid[keep]
    cell = gid * n_years + yid
    x = units(cases.cost[keep])
    s1, _ = sums(x, cell, n * n_years, squares=False)
    _, s2 = sums(x, gid, n)
    out = {"kept": np.bincount(cell, minlength=n * n_years).astype(np.int64), "cost": s1, "cost2": s2}
    if cases.los is not None:
        los = cases.los[keep]
        ok = np.isfinite(los)
        # whole days (the canonical int32): exact float64 sums in any order
        out["los"] = np.bincount(cell[ok], los[ok], minlength=n * n_years).astype(np.float64)
        out["los_n"] = np.bincount(cell[ok], minlength=n * n_years).astype(np.int64)
    return out


def _sums_pass(part, prepare, args, cut, n, n_years):
    return _sums_part(prepare(part, *args), cut, n, n_years)


@dataclass(frozen=True)
class KeptSums:
    """Per (group, year) cell (arrays shaped groups × years): kept cases, their Σ cost (Python integers of
    :data:`UNIT`) and stays; per group the kept costs' Σ cost² (in :data:`UNIT`²)."""

    kept: np.ndarray
    cost: np.ndarray
    cost2: np.ndarray
    los: np.ndarray | None
    los_n: np.ndarray | None

    def take(self, rows: slice) -> KeptSums:
        """The sums of some groups."""
        los, los_n = (None, None) if self.los is None else (self.los[rows], self.los_n[rows])
        return KeptSums(self.kept[rows], self.cost[rows], self.cost2[rows], los, los_n)


def kept_sums(parts: Parts, prepare: Callable, args: tuple, cut: Cut, n_years: int) -> KeptSums:
    """The counts and sums of the cases each group keeps after its ``cut``: one pass over the parts."""
    n = cut.n.size
    r = parts.reduce(_sums_pass, add, prepare, args, cut, n, n_years)
    shape = (n, n_years)
    los = r.get("los")
    return KeptSums(
        r["kept"].reshape(shape),
        r["cost"].reshape(shape),
        r["cost2"],
        None if los is None else los.reshape(shape),
        None if los is None else r["los_n"].reshape(shape),
    )


def cv_of(s1: np.ndarray, s2: np.ndarray, k: np.ndarray, ddof: int) -> np.ndarray:
    """SD / mean per group from the exact Σx, Σx² and count of its kept costs (NaN when undefined):
    ``CV² = k·(k·Σx² − (Σx)²) / ((k − ddof)·(Σx)²)``, one exact quotient rounded once."""
    out = np.full(k.size, np.nan)
    for g in np.flatnonzero((k > ddof) & (s1 != 0)):
        kk, a = int(k[g]), int(s1[g])
        out[g] = float(Fraction(kk * (kk * s2[g] - a * a), (kk - ddof) * a * a)) ** 0.5
    return out


# ---------------------------------------------------------------------------------------------------------
# fingerprint


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 → uint64, wrapping)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _value_hashes(col: pa.ChunkedArray | None, rows: int, j: int) -> np.ndarray:
    """A uint64 per value of one column, the same for the same value whatever its Arrow type (text, dates,
    numbers as float64); a null, or a column the part lacks, hashes to the column's own constant."""
    null = _mix(np.array([j + 1], np.uint64))[0]
    if col is None:
        return np.full(rows, null, np.uint64)
    col = one_array(col)
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        col, t = pc.binary_join(col.cast(pa.list_(pa.string())), "|"), pa.string()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        from grouper.batch import _hashes  # (numba: not at import)

        enc = pc.dictionary_encode(col)
        digest, _ = _hashes(enc.dictionary)  # the duplicate tracker's string hash, one per distinct value
        table = np.append(digest, null)
        idx = enc.indices.fill_null(len(digest)).to_numpy(zero_copy_only=False).astype(np.int64)
        return table[idx]
    if pa.types.is_date(t):
        col = col.cast(pa.date32()).cast(pa.int32())
    elif pa.types.is_timestamp(t):
        col = col.cast(pa.int64())
    num = col.cast(pa.float64()).to_numpy(zero_copy_only=False) + 0.0  # −0.0 → 0.0
    out = _mix(num.view(np.uint64) ^ np.uint64(j * 0x9E3779B97F4A7C15 & _MASK64))
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, out, null)


def fingerprint_part(table: pa.Table, columns: Sequence[str]) -> dict:
    """One part's share of :func:`fingerprint_of`: its rows, the ``columns`` it has, and four lane sums of its
    row hashes."""
    rows = table.num_rows
    h = np.full(rows, 0x6A09E667F3BCC908, np.uint64)
    for j, name in enumerate(columns):
        col = table.column(name) if name in table.column_names else None
        h = _mix(h ^ _value_hashes(col, rows, j))
    lanes = np.array([int(_mix(h + np.uint64(k)).sum(dtype=np.uint64)) for k in range(4)], dtype=object)
    return {"rows": rows, "lanes": lanes, "columns": {c for c in columns if c in table.column_names}}


def combine_fingerprints(results: list[dict]) -> dict:
    return {
        "rows": sum(r["rows"] for r in results),
        "lanes": np.array([sum(int(r["lanes"][k]) for r in results) & _MASK64 for k in range(4)], object),
        "columns": set().union(*(r["columns"] for r in results)),
    }


def fingerprint_of(combined: dict, columns: Sequence[str], years) -> dict:
    """The fingerprint of a history (``{"years", "rows", "sha256", "columns"}``) from its parts' combined
    :func:`fingerprint_part`: the SHA-256 of the columns, the rows and the lane sums."""
    cols = [c for c in columns if c in combined["columns"]]
    text = json.dumps(
        {"columns": cols, "rows": combined["rows"], "lanes": [f"{int(x):016x}" for x in combined["lanes"]]}
    )
    seen = sorted(int(y) for y in years if y >= 0)
    return {
        "years": seen,
        "rows": int(combined["rows"]),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "columns": cols,
    }
