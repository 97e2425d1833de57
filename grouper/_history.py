"""Statistics over past years of grouped cases (历史数据测算), shared by ``DipCatalog`` and ``DrgWeights``.

One implementation of: the data year of a case, the cases per year and those left out (the year window and
``n_excluded_``), year weights (1:2:7, renormalised over the years present), per-group trimming (percentile, IQR fences, ±k SD of log cost), year-weighted group means and the coefficient of
variation from exact sums, and the fingerprint of a history table; the reductions over a history's parts that
make them are :mod:`grouper._reduction`.
docs/dip.md §4.3–§4.5, docs/drg.md §7.1.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper import _reduction as red
from grouper.errors import InputError, SettingsError
from grouper.io.writer import PARQUET_OPTIONS, IfExists, check_target, write_text, write_with
from grouper.plausibility import check_table
from grouper.settings import Choice, Num, Seq

__all__ = [
    "TRIM_METHODS",
    "TRIM_SETTINGS",
    "YEAR_SETTINGS",
    "GroupStats",
    "TrimSpec",
    "add_year_counts",
    "costs_of",
    "data_years",
    "describe_excluded",
    "fingerprint",
    "fit_summary",
    "group_stats",
    "los_of",
    "params_from_meta",
    "params_to_meta",
    "read_fitted",
    "restore_summary",
    "stats_of",
    "trim_keep",
    "trim_of",
    "trim_warnings",
    "typed_history",
    "write_fitted",
    "year_counts",
    "year_weights",
    "years_used",
]

#: Closed set of trimming methods.
TRIM_METHODS = ("percentile", "iqr", "log_sd", "none")
#: Default fence multiplier per method: Tukey 1.5 × IQR; 3 SD of log cost (docs/drg.md §7.1).
_DEFAULT_K = {"iqr": 1.5, "log_sd": 3.0}


@dataclass(frozen=True)
class TrimSpec:
    """How outliers are trimmed within each group (裁剪).

    Parameters
    ----------
    method : {"percentile", "iqr", "log_sd", "none"}
        ``percentile``: keep ``P(lo) ≤ C ≤ P(hi)`` (linear interpolation, NumPy's default);
        ``iqr``: keep ``Q1 − k·IQR ≤ C ≤ Q3 + k·IQR``; ``log_sd``: keep ``|ln C − mean| ≤ k·SD`` (SD with n − 1).
    limits : (float, float)
        Lower and upper quantile for ``percentile`` (default 0.025, 0.975).
    k : float or None
        Fence multiplier for ``iqr`` (default 1.5) and ``log_sd`` (default 3.0).
    min_n : int
        Groups with fewer cases are not trimmed (default 25, docs/dip.md §4.4).
    """

    method: str = "percentile"
    limits: tuple[float, float] = (0.025, 0.975)
    k: float | None = None
    min_n: int = 25

    def __post_init__(self) -> None:
        if self.method not in TRIM_METHODS:
            raise SettingsError(
                f"trim: unknown method {self.method!r} (known: {', '.join(TRIM_METHODS)})", key="trim"
            )
        lo, hi = (float(x) for x in self.limits)
        if not 0.0 <= lo < hi <= 1.0:
            raise SettingsError(f"trim_limits: need 0 ≤ lo < hi ≤ 1, got {self.limits!r}", key="trim_limits")
        if self.k is not None and not self.k > 0:
            raise SettingsError(f"trim_k: must be positive, got {self.k!r}", key="trim_k")
        if int(self.min_n) != self.min_n or self.min_n < 0:
            raise SettingsError(
                f"trim_min_n: must be a non-negative integer, got {self.min_n!r}", key="trim_min_n"
            )

    @property
    def fence(self) -> float:
        """The fence multiplier in use (``k`` or the method's default)."""
        return float(self.k) if self.k is not None else _DEFAULT_K.get(self.method, 0.0)


def trim_of(est) -> TrimSpec:
    """The trimming settings of a fit object (``trim``, ``trim_limits``, ``trim_k``, ``trim_min_n``)."""
    return TrimSpec(est.trim, tuple(est.trim_limits), est.trim_k, est.trim_min_n)


#: Field kinds of the trimming and CV settings DipCatalog and DrgWeights share (grouper.settings).
TRIM_SETTINGS = {
    "trim": Choice(TRIM_METHODS, noun="method"),
    "trim_limits": Seq(Num(share=True), length=2),
    "trim_k": Num(lo=0, lo_open=True, optional=True),
    "trim_min_n": Num(lo=0, integer=True),
    "max_trim_rate": Num(share=True),
    "cv_ddof": Choice((1, 0)),
}
#: Field kinds of the year settings (时间权重).
YEAR_SETTINGS = {
    "years": Seq(Num(integer=True), min_length=1, optional=True),
    "year_weights": Seq(Num(lo=0), min_length=1),
    "year_weighting": Choice(("means", "cases")),
}


@dataclass(frozen=True)
class GroupStats:
    """Per-group results of :func:`group_stats`; every array has one entry per group."""

    n: np.ndarray  #: cases in the group (int64)
    n_kept: np.ndarray  #: cases left after trimming (int64)
    mean: np.ndarray  #: year-weighted mean of the kept cases (float64; NaN when none)
    cv: np.ndarray  #: SD / mean over the kept cases of all years (float64; NaN when undefined)
    overall_mean: float  #: year-weighted mean over all kept cases of all groups
    los: np.ndarray | None = None  #: year-weighted mean stay of the kept cases (float64; NaN when none)


def data_years(table: pa.Table) -> np.ndarray:
    """The data year of each case: column ``year`` if present (text read as whole numbers), else the year of
    ``discharge_date``; −1 if null.

    Returns
    -------
    ndarray of int32

    Raises
    ------
    InputError
        A year written but not a year (``abc``, negative), named by its row (from 1) as the table's row
        (:func:`grouper.io.discharges.check_years`; :func:`grouper.io.read_cases` names it in its file).
    """
    source, read = _year_source(table)
    col = read.column(source)
    col = col.cast(pa.int32()) if source == "year" else pc.year(col).cast(pa.int32())
    return col.fill_null(-1).to_numpy().astype(np.int32, copy=False)


def _year_source(table: pa.Table) -> tuple[str, pa.Table]:
    """The column the data years of a history come from (``year``, else ``discharge_date``) and that column
    read as the readers read it (:func:`_typed`), checked: a year or a date written but not one is an
    :class:`InputError` naming its row (from 1)."""
    from grouper.io.discharges import check_dates, check_years

    if "year" in table.column_names:
        written, read = _typed(table, "year")
        check_years("history", written, read, 1)
        return "year", read
    if "discharge_date" in table.column_names:
        written, read = _typed(table, "discharge_date")
        dates = {"discharge_date": "discharge_date"}
        check_dates("history", written, read, dates, 0, lambda: 1, lambda *_: 0)  # the whole table's count
        return "discharge_date", read
    raise InputError("history: needs a `year` or a `discharge_date` column", column="year")


def _typed(table: pa.Table, column: str) -> tuple[pa.Table, pa.Table]:
    """``column`` of a history as written, and as the readers read it (text dates and numbers parsed,
    :func:`grouper.io.discharges.typed_columns`): a table given to a fit holds what a file would."""
    from grouper.io.discharges import typed_columns

    written = table.select([column])
    return written, typed_columns(written)


def typed_history(history: pa.Table, required: tuple[str, ...]) -> pa.Table:
    """A history table given to a fit, checked and read as a file would be (:func:`grouper.io.read_cases`): the
    ``required`` columns and ``total_cost`` present, hard plausible ranges, years and dates named by their row
    (from 1), text years, dates, costs and stays parsed.

    Raises
    ------
    InputError
        A ``required`` column (or ``total_cost``) is missing; a value outside its hard plausible range
        (``codebooks/qc/plausibility.csv``: a cost of 1e15, ``inf`` or negative; a stay over ten years), or a
        year or date that is none, named by its row in ``history`` (from 1) and its column, as
        :func:`grouper.io.read_cases` names it in its file.
    """
    for col in dict.fromkeys(("total_cost", *required)):
        if col not in history.column_names:
            raise InputError(f"history: missing column {col!r}", column=col)
    check_table(history, where="history", first_row=1)
    source, read = _year_source(history)
    for col in ("year", "discharge_date", "total_cost", "los_days"):
        if col in history.column_names:
            typed = read if col == source else _typed(history, col)[1]
            history = history.set_column(history.column_names.index(col), col, typed.column(col))
    return history


def trim_warnings(est) -> list[str]:
    """The warnings of a fit over years: cases of the window left out for want of a usable cost, and trimming
    above its ``max_trim_rate``."""
    out = []
    no_cost = est.n_excluded_.get("cost_invalid", 0)
    if no_cost:
        out.append(
            f"{no_cost:,} cases of the years used have no usable total_cost (empty, NaN, not a number or 0): "
            "left out of the fit (n_excluded.cost_invalid)"
        )
    rate = est.n_trimmed_ / max(est.n_cases_, 1)
    if rate > est.max_trim_rate:
        out.append(f"trimmed {rate:.1%} of cases, more than max_trim_rate {est.max_trim_rate:.1%}")
    return out


def year_counts(years: np.ndarray, cost_ok: np.ndarray, dropped: np.ndarray) -> dict[int, np.ndarray]:
    """A fit's first pass over one part of a history, per data year (:func:`data_years`): its cases, those
    without a usable cost, and those with one that the fit leaves out for its own reason (``dropped``), as int64
    ``[cases, no cost, dropped]``; the parts' counts are added by :func:`add_year_counts`."""
    found = {}
    for y in np.unique(years):
        at = years == y
        found[int(y)] = np.array([at.sum(), (at & ~cost_ok).sum(), (at & cost_ok & dropped).sum()], np.int64)
    return found


def add_year_counts(results: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """The :func:`year_counts` of the parts of a history, added year by year."""
    years: dict = {}
    for r in results:
        for y, v in r.items():
            years[y] = years[y] + v if y in years else v
    return years


def years_used(est, counts: dict[int, np.ndarray], dropped: str) -> tuple[np.ndarray, tuple, np.ndarray, int]:
    """The year window of a fit from its history's :func:`year_counts`, and the cases it uses; sets
    ``est.n_excluded_``: the cases of other years (``year_outside``), those of the window without a usable cost
    (``cost_invalid``) and those it leaves out for its own reason (``dropped``).

    Returns
    -------
    (ndarray of int64, tuple of int, ndarray of float64, int)
        The data years seen (sorted), the window and its normalised weights (:func:`year_weights` of the fit's
        ``years`` and ``year_weights``), and the cases used.

    Raises
    ------
    InputError
        No case is used.
    """
    seen = np.array(sorted(counts), dtype=np.int64)
    window, w = year_weights(seen, est.years, est.year_weights)
    inside = [v for y, v in counts.items() if y in window]
    rows, no_cost, left_out = np.sum(inside, axis=0) if inside else (0, 0, 0)
    est.n_excluded_ = {
        "year_outside": int(sum(v[0] for y, v in counts.items() if y not in window)),
        "cost_invalid": int(no_cost),
        dropped: int(left_out),
    }
    used = int(rows - no_cost - left_out)
    if not used:
        raise InputError(f"history: no usable case ({describe_excluded(est.n_excluded_)})")
    return seen, window, w, used


def costs_of(history: pa.Table) -> np.ndarray:
    """The total cost of each case as float64 yuan, NaN where empty or written but not a number (text read as
    the readers read amounts, :func:`grouper.io.discharges.typed_columns`)."""
    return (
        _typed(history, "total_cost")[1].column("total_cost").cast(pa.float64()).fill_null(np.nan).to_numpy()
    )


def los_of(history: pa.Table) -> np.ndarray:
    """The length of stay of each case as float64 for the groups' mean stay, NaN where there is none to use:
    empty, or negative or written but not a number (the readers' -1, docs/records.md §4 ``LOS_INVALID``)."""
    if "los_days" not in history.column_names:
        return np.full(history.num_rows, np.nan)
    los = _typed(history, "los_days")[1].column("los_days").cast(pa.float64()).fill_null(np.nan).to_numpy()
    return np.where(los < 0, np.nan, los)


def fit_summary(est, normalised) -> dict:
    """What a fit over years records beside its table, in file order: the year window and its normalised
    weights, cases used, trimmed and left out, the history's fingerprint and the settings."""
    return {
        "years": list(est.years_),
        "year_weights_normalised": list(normalised),
        "n_cases": est.n_cases_,
        "n_trimmed": est.n_trimmed_,
        "n_excluded": dict(est.n_excluded_),
        "history": est.history_,
        "params": params_to_meta(est.get_params()),
    }


def restore_summary(est, meta: dict) -> tuple[float, ...]:
    """Set what :func:`fit_summary` recorded back on a fit object (no warnings); returns the normalised weights."""
    est.years_ = tuple(int(y) for y in meta["years"])
    est.n_cases_, est.n_trimmed_ = int(meta["n_cases"]), int(meta["n_trimmed"])
    est.n_excluded_ = dict(meta["n_excluded"])
    est.history_ = dict(meta["history"])
    est.warnings_ = []
    return tuple(float(x) for x in meta["year_weights_normalised"])


def describe_excluded(excluded: dict[str, int]) -> str:
    """``{"cost_invalid": 2}`` → ``"cost invalid 2"`` (for messages)."""
    return ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in excluded.items() if v) or "empty"


def year_weights(
    years: np.ndarray, window: tuple[int, ...] | None, weights
) -> tuple[tuple[int, ...], np.ndarray]:
    """The year window and its normalised weights (时间权重, 1:2:7), oldest year first.

    Parameters
    ----------
    years : ndarray of int
        Data years of the cases (−1 = unknown, ignored).
    window : tuple of int or None
        The years to use; ``None`` takes the ``len(weights)`` calendar years ending with the latest year seen.
    weights : sequence of float
        One weight per year of the window, oldest first; any positive scale (1:2:7 ≡ 0.1/0.2/0.7).

    Returns
    -------
    (tuple of int, ndarray of float64)
        The window and its weights summing to 1. Renormalisation over the years a group actually has is done
        per group in :func:`group_stats` (docs/dip.md §4.3).

    Examples
    --------
    >>> year_weights(np.array([2022, 2024]), None, (1, 2, 7))
    ((2022, 2023, 2024), array([0.1, 0.2, 0.7]))
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise SettingsError(
            f"year_weights: need non-negative numbers with a positive sum, got {weights!r}",
            key="year_weights",
        )
    if window is None:
        seen = years[years >= 0]
        if seen.size == 0:
            raise InputError("history: no case has a data year", column="year")
        last = int(seen.max())
        window = tuple(range(last - w.size + 1, last + 1))
    window = tuple(int(y) for y in window)
    if len(window) != w.size or len(set(window)) != len(window):
        raise SettingsError(
            f"years: need {w.size} distinct years (one per weight), got {window!r}", key="years"
        )
    order = np.argsort(window)
    return tuple(window[i] for i in order), w[order] / w.sum()


def trim_keep(cost: np.ndarray, gid: np.ndarray, n_groups: int, spec: TrimSpec) -> np.ndarray:
    """Which cases survive trimming within their group (the cuts of :func:`grouper._reduction.cuts` over one part).

    Parameters
    ----------
    cost : ndarray of float64, yuan
        Total cost per case (finite, > 0).
    gid : ndarray of int64
        Group index per case, 0 … n_groups − 1.
    n_groups : int
    spec : TrimSpec

    Returns
    -------
    ndarray of bool
        True for a kept case. Limits are inclusive; groups with fewer than ``spec.min_n`` cases keep every case.

    Examples
    --------
    docs/drg.md §7.1 (TEST VECTOR DRG-RW): 1,000 … 39,000 and 200,000 → P2.5 = 1,975, P97.5 = 43,025,
    so 1,000 and 200,000 are trimmed.

    >>> c = np.append(np.arange(1, 40) * 1000.0, 200000.0)
    >>> keep = trim_keep(c, np.zeros(40, dtype=np.int64), 1, TrimSpec())
    >>> int(keep.sum()), float(c[keep].mean())
    (38, 20500.0)
    """
    cases = red.Cases(cost, gid.astype(np.int64, copy=False), np.zeros(gid.size, np.int64))
    if cost.size == 0:
        return np.ones(0, dtype=bool)
    return red.kept(cases, red.cuts(red.LocalParts([cases]), _itself, (), n_groups, spec))


def _itself(part):
    return part


def _weighted(sums: np.ndarray, cnts: np.ndarray, w: np.ndarray, mode: str) -> np.ndarray:
    """Year-weighted means from (groups × years) sums and counts; years without cases drop out of the weights."""
    has = cnts > 0
    if mode == "cases":
        num = (sums * w).sum(axis=1)
        den = (cnts * w).sum(axis=1)
    else:
        yearly = np.divide(sums, cnts, out=np.zeros_like(sums), where=has)
        num = (yearly * w).sum(axis=1)
        den = (has * w).sum(axis=1)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0)


def _yuan(units: np.ndarray) -> np.ndarray:
    """Exact sums in :data:`grouper._reduction.UNIT` → float64 yuan (rounded once)."""
    return np.array([float(Fraction(int(x), red.UNIT)) for x in units.ravel()]).reshape(units.shape)


def stats_of(cut: red.Cut, sums: red.KeptSums, w: np.ndarray, mode: str, ddof: int) -> GroupStats:
    """The statistics of each group from its cut and the exact sums of the cases it keeps: year-weighted mean
    cost (docs/dip.md §4.3: ``mode="means"``: ``m = Σ w_y m_y / Σ_{y with cases} w_y``; ``"cases"``:
    ``m = Σ w_y n_y m_y / Σ w_y n_y``), CV (SD with n − ``ddof``), year-weighted mean stay."""
    kept = sums.kept.astype(np.float64)
    n_kept = sums.kept.sum(axis=1)
    overall = _weighted(
        _yuan(sums.cost.sum(axis=0, keepdims=True)), kept.sum(axis=0, keepdims=True), w, mode
    )[0]
    los = None if sums.los is None else _weighted(sums.los, sums.los_n.astype(np.float64), w, mode)
    return GroupStats(
        n=cut.n,
        n_kept=n_kept,
        mean=_weighted(_yuan(sums.cost), kept, w, mode),
        cv=red.cv_of(sums.cost.sum(axis=1), sums.cost2, n_kept, ddof),
        overall_mean=float(overall),
        los=los,
    )


def group_stats(
    cases: red.Parts, n_groups: int, w: np.ndarray, *, trim: TrimSpec, mode: str = "means", ddof: int = 1
) -> GroupStats:
    """Trim each group, then year-weight its mean and compute its CV (变异系数): the cuts and the kept sums of
    the cases in ``cases`` (:class:`grouper._reduction.Cases` a part), then :func:`stats_of`.

    Parameters
    ----------
    cases : grouper._reduction.Parts
        Parts that are :class:`grouper._reduction.Cases` (group index, index of the year in the window, cost in
        yuan and, optionally, stay per case).
    n_groups : int
    w : ndarray of float64            year weights, summing to 1
    trim : TrimSpec
    mode : {"means", "cases"}         weights on yearly means (default) or on cases (docs/dip.md §4.3)
    ddof : {1, 0}                     SD divisor n − ddof for the CV (default sample SD, docs/dip.md §4.5)
    """
    cut = red.cuts(cases, _itself, (), n_groups, trim)
    return stats_of(cut, red.kept_sums(cases, _itself, (), cut, w.size), w, mode, ddof)


def fingerprint(table: pa.Table, columns: list[str], years: np.ndarray) -> dict:
    """Fingerprint of a history table (:func:`grouper._reduction.fingerprint_of`): data years, rows, and a
    SHA-256 over the row hashes of the columns used, the same for the same rows however they are cut or ordered
    (read from one file or from parts, on one machine or on a cluster).

    Returns
    -------
    dict
        ``{"years": [...], "rows": int, "sha256": str, "columns": [...]}``.
    """
    return red.fingerprint_of(red.fingerprint_part(table, columns), columns, np.unique(years))


def write_fitted(
    table: pa.Table, meta: dict, path, key: str, fmt: str, *, if_exists: IfExists = "error"
) -> Path:
    """Write a fitted table: ``fmt`` ``parquet`` with ``meta`` as JSON under ``key`` in the schema metadata, or
    ``csv`` with ``<stem>.params.toml`` beside it, through the one writer (atomic). No pickle.

    ``if_exists="error"`` (default) refuses an existing file — both files of a CSV pair are checked before
    either is written — and ``"replace"`` replaces them."""
    # the catalogue module owns the flat TOML writer; imported here to keep grouper.dip (which imports this
    # module) out of this module's import time
    from grouper.dip.catalogue import _to_toml

    path = Path(path)
    if fmt == "parquet":
        text = json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata({key.encode(): text})
        return write_with(
            path, lambda tmp: pq.write_table(table, tmp, **PARQUET_OPTIONS), if_exists=if_exists
        )
    params = check_target(path.with_name(f"{path.stem}.params.toml"), if_exists)
    write_with(path, lambda tmp: pacsv.write_csv(table, tmp), if_exists=if_exists)
    write_text(_to_toml(meta), params, if_exists="replace")  # checked above, with the table
    return path


#: What a fitted table is called in an error, by its metadata key.
_FITTED = {"drgdip.aux": "an auxiliary typing table", "drgdip.weights": "a DRG weights table"}


def read_fitted(path, key: str, schema: pa.Schema, fmt: str) -> tuple[pa.Table, dict]:
    """Read what :func:`write_fitted` wrote in ``fmt``: the table (cast to ``schema``) and its metadata.

    Raises
    ------
    InputError
        The file is missing, unreadable, or not a table of this kind written by drgdip.
    """
    path = Path(path)
    what = _FITTED.get(key, "a table fitted by drgdip")
    if not path.is_file():
        raise InputError(f"{path}: no such file", path=path)
    try:
        if fmt == "parquet":
            table = pq.read_table(path, page_checksum_verification=True)
            meta = json.loads((table.schema.metadata or {}).get(key.encode(), b"{}"))
        else:
            types = {f.name: f.type for f in schema}
            table = pacsv.read_csv(
                path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
            )
            params = path.with_name(f"{path.stem}.params.toml")
            meta = tomllib.loads(params.read_text(encoding="utf-8")) if params.exists() else {}
        if "params" not in meta:
            raise InputError(f"{path}: not {what}: no recorded settings (not written by drgdip)", path=path)
        return table.select(schema.names).cast(schema), meta
    except (OSError, pa.ArrowException, KeyError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        detail = re.sub(r"\s+", " ", str(exc))[:200]
        raise InputError(f"{path}: not {what}: {detail}", path=path) from None


def params_from_meta(meta: dict, optional: tuple[str, ...]) -> dict:
    """Constructor settings from saved metadata: lists back to tuples, ``""`` back to None for ``optional``."""
    out = {}
    for k, v in meta["params"].items():
        out[k] = None if v == "" and k in optional else (tuple(v) if isinstance(v, list) else v)
    return out


def params_to_meta(params: dict) -> dict:
    """Settings as plain TOML/JSON values: tuples to lists, None to ``""``, paths to strings."""

    def plain(v):
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return "" if v is None else v

    return {k: plain(v) for k, v in params.items()}
