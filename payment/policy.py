"""Payment policy (支付政策): one region × year of parameters, read from TOML and strictly validated.

Values are checked by the field kinds of :mod:`grouper.settings`, the same checks the estimators' settings use.

Every number is a small table ``{value, unit, source, clause?, note?}`` whose ``source`` names an entry of
``[sources]`` (or ``"assumption"`` with a ``note``); rows of rate and price tables carry one ``source`` each.
The loader rejects unknown keys, wrong types, unknown or mismatched units, impossible values and undeclared
sources, naming the file and the dotted key. The key list mirrors docs/formulas.md §13.
"""

from __future__ import annotations

import codecs
import copy
import datetime as _dt
import hashlib
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from grouper.errors import PolicyError
from grouper.resources import data_path
from grouper.settings import Choice, Flag, Num
from payment.bands import Bands
from payment.points import BOUNDARIES, FORMULAS

__all__ = ["LEVELS", "POOLS", "ByKey", "Policy", "PolicyError", "Section"]

#: Closed list of units.
UNITS = ("yuan", "yuan/point", "yuan/day", "points", "points/day", "ratio", "share", "days", "count")
#: Hospital levels (医院等级) that values by level are keyed by.
LEVELS = (1, 2, 3)
#: Budget pools: one for all insured, or one per 险种 (docs/formulas.md §2.4).
POOLS = ("all", "employee", "resident")
_OPS = ("<", "<=", ">", ">=")


class _ReadOnly(Mapping):
    """A read-only mapping of policy values (a section, or values by level or pool)."""

    def __init__(self, values: Mapping[Any, Any]):
        object.__setattr__(self, "_v", dict(values))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a policy is read-only; use Policy.replace")

    def __getitem__(self, key: Any) -> Any:
        return self._v[key]

    def __iter__(self):
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._v!r})"

    def __reduce__(self):
        return type(self), (self._v,)  # pickled by value (a cluster's workers settle with the same policy)


class Section(_ReadOnly):
    """A read-only section of a validated policy; keys are also attributes (``policy.deviation.high.ratio``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self._v[name]
        except KeyError:
            raise AttributeError(name) from None


# --- field kinds --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Num:
    unit: str
    lo: float | None = None
    hi: float | None = None
    default: Any = None
    required: bool = False
    integer: bool = False
    lo_open: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        v = ctx.valued(raw, key, unit=self.unit)
        if _not_finite(v):
            raise ctx.err(key, f"expected a finite number, got {v!r}")
        kind = Num(self.lo, self.hi, self.integer, self.lo_open, share=self.unit == "share")
        if (problem := kind.problem(v)) is not None:
            raise ctx.err(key, problem)
        return v


@dataclass(frozen=True)
class _Choice:
    choices: tuple[str, ...]
    default: Any = None
    required: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        v = ctx.valued(raw, key, unit=None)
        if (problem := Choice(self.choices).problem(v)) is not None:
            raise ctx.err(key, problem)
        return v


@dataclass(frozen=True)
class _Bool:
    default: Any = None
    required: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        v = ctx.valued(raw, key, unit=None)
        if (problem := Flag().problem(v)) is not None:
            raise ctx.err(key, problem)
        return v


@dataclass(frozen=True)
class _List:
    item: type
    default: Any = ()
    required: bool = False
    unit: str | None = None

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        v = ctx.valued(raw, key, unit=self.unit)
        if not isinstance(v, list) or not all(
            isinstance(x, self.item) and not isinstance(x, bool) for x in v
        ):
            raise ctx.err(key, f"expected a list of {self.item.__name__}")
        if self.item is float and any(not math.isfinite(x) or x <= 0 for x in v):
            raise ctx.err(key, f"expected positive finite numbers, got {v!r}")
        return tuple(v)


@dataclass(frozen=True)
class _Rows:
    """An array of tables; each row has plain values of the given kinds and a ``source``."""

    columns: Mapping[str, Any]
    default: Any = ()
    required: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            raise ctx.err(key, "expected an array of tables ([[…]])")
        rows = []
        for i, row in enumerate(raw):
            where = f"{key}[{i}]"
            ctx.source(row.get("source"), where, row.get("note"))
            unknown = set(row) - set(self.columns) - {"source", "clause", "note"}
            if unknown:
                raise ctx.err(
                    f"{where}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(self.columns)})"
                )
            out = {}
            for col, kind in self.columns.items():
                if col not in row:
                    if kind[1] is _REQUIRED:
                        raise ctx.err(f"{where}.{col}", "missing")
                    out[col] = kind[1]
                    continue
                out[col] = _plain(row[col], kind[0], f"{where}.{col}", ctx)
            rows.append(Section(out))
        return tuple(rows)


@dataclass(frozen=True)
class _Monthly:
    """A dated series by month: ``{unit, source, values = {2025-01 = 10.50, 2025-07 = 10.72}}``."""

    unit: str
    default: Any = ()
    required: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Any:
        if not isinstance(raw, dict) or "values" not in raw:
            raise ctx.err(key, "expected a table {values = {YYYY-MM = …}, unit = …, source = …}")
        v = ctx.valued({("value" if k == "values" else k): x for k, x in raw.items()}, key, unit=self.unit)
        if not isinstance(v, dict) or not v:
            raise ctx.err(key, "values must be a table of YYYY-MM = number")
        out = []
        for month, x in v.items():
            try:
                d = _dt.date.fromisoformat(f"{month}-01")
            except ValueError:
                raise ctx.err(f"{key}.values.{month}", "expected a YYYY-MM key") from None
            if isinstance(x, bool) or not isinstance(x, int | float) or not 0 < x < math.inf:
                raise ctx.err(f"{key}.values.{month}", f"expected a positive finite number, got {x!r}")
            out.append((d, x))
        return tuple(sorted(out))


@dataclass(frozen=True)
class _ByKey:
    """A value per hospital level or per budget pool: ``{by_level = {1 = …, 2 = …, 3 = …}, unit, source}``."""

    field: str  # "by_level" or "by_pool"
    keys: tuple
    unit: str
    default: Any = None
    required: bool = False

    def check(self, raw: Any, key: str, ctx: _Ctx) -> ByKey:
        if not isinstance(raw, dict) or self.field not in raw:
            raise ctx.err(key, f"expected a table {{{self.field} = {{…}}, unit = …, source = …}}")
        v = ctx.valued({("value" if k == self.field else k): x for k, x in raw.items()}, key, unit=self.unit)
        if not isinstance(v, dict) or not v:
            raise ctx.err(key, f"{self.field} must be a table of key = number")
        out = {}
        for name, x in v.items():
            k = int(name) if isinstance(self.keys[0], int) and name.isdigit() else name
            if k not in self.keys:
                raise ctx.err(
                    f"{key}.{self.field}.{name}", f"unknown key (known: {', '.join(map(str, self.keys))})"
                )
            if isinstance(x, bool) or not isinstance(x, int | float) or not 0 < x < math.inf:
                raise ctx.err(f"{key}.{self.field}.{name}", f"expected a positive finite number, got {x!r}")
            out[k] = x
        return ByKey(out)


class ByKey(_ReadOnly):
    """Values by hospital level (``1``–``3``) or by budget pool, read-only; :meth:`at` looks up a whole array."""

    def at(self, keys: np.ndarray, missing: float = np.nan) -> np.ndarray:
        """The value for each key of an integer array (a hospital level per case); ``missing`` elsewhere.

        Examples
        --------
        >>> ByKey({1: 0.8, 2: 0.9, 3: 1.0}).at(np.array([3, 1, 0], np.int8))
        array([1. , 0.8, nan])
        """
        keys = np.asarray(keys)
        hi = max(self._v, default=0)
        table = np.full(hi + 2, missing, dtype=np.float64)
        for k, x in self._v.items():
            table[k] = x
        return table[np.where((keys >= 0) & (keys <= hi), keys, hi + 1)]


_REQUIRED = object()
#: Sub-tables whose absence means "not used" (None), even though none of their keys is required.
_OPTIONAL_SECTIONS = ("drg",)


def _not_finite(v: Any) -> bool:
    return isinstance(v, float) and not math.isfinite(v)


def _plain(v: Any, kind: Any, key: str, ctx: _Ctx) -> Any:
    if kind == "num":
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
            raise ctx.err(key, f"expected a non-negative finite number, got {v!r}")
    elif kind == "share":
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ctx.err(key, f"a share must lie in 0–1, got {v!r}")
    elif kind == "int":
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ctx.err(key, f"expected a non-negative integer, got {v!r}")
    elif kind == "str":
        if not isinstance(v, str) or not v:
            raise ctx.err(key, f"expected a non-empty string, got {v!r}")
    elif kind == "by_level":
        if not isinstance(v, dict) or not v:
            raise ctx.err(key, "expected a table {1 = …, 2 = …, 3 = …} by hospital level")
        out = {}
        for lv, x in v.items():
            if not lv.isdigit() or int(lv) not in LEVELS:
                raise ctx.err(f"{key}.{lv}", f"unknown hospital level (known: {', '.join(map(str, LEVELS))})")
            out[int(lv)] = _plain(x, "num", f"{key}.{lv}", ctx)
        v = ByKey(out)
    elif kind == "strs":
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ctx.err(key, "expected a list of strings")
        v = tuple(v)
    elif isinstance(kind, tuple) and v not in kind:
        raise ctx.err(key, f"{v!r} is not one of {', '.join(kind)}")
    return v


def _R(kind: Any, default: Any = _REQUIRED) -> tuple:
    return (kind, default)


# --- the specification (docs/formulas.md §13) ---------------------------------------------------------------------

_POOL_BUDGET = {
    "inpatient_fund": _Num("yuan", lo=0),  # 住院统筹基金预算
    "reserve_share": _Num("share", default=0.0),  # 区域调节金
    "out_of_area": _Num("yuan", lo=0, default=0.0),  # 异地就医
    "bed_day": _Num("yuan", lo=0, default=0.0),
    "per_case": _Num("yuan", lo=0, default=0.0),
    "fee_for_service": _Num("yuan", lo=0, default=0.0),
    "other": _Num("yuan", lo=0, default=0.0),
    "last_year_share": _Num("share"),  # 按比例分配
    "last_year_total": _Num("yuan", lo=0),  # 按增长率
    "growth": _Num("ratio", lo=-1),
    "last_year_fund_spent": _Num("yuan", lo=0),  # for the growth indicator
}
_POOL_POINT_VALUE = {
    "budget": _Num("yuan/point", lo=0, lo_open=True),  # 年初/预算点值
    "fixed": _Num("yuan/point", lo=0, lo_open=True),  # fixed regime, elastic base
    "monthly": _Monthly("yuan/point"),  # 该月点值 for monthly pre-settlement; other months fall back
}


_NO_BANDS = Bands((), (), ())


@dataclass(frozen=True)
class _Banded:
    """Banded rate rows ``{from, to, <value>, source}`` over ``[from, to)`` (:mod:`payment.bands`)."""

    value: str
    default: Any = _NO_BANDS
    required: bool = False
    kind: str = "num"  #: of the value column: "num" (≥ 0) or "share" (0–1)

    def check(self, raw: Any, key: str, ctx: _Ctx) -> Bands:
        rows = _Rows({"from": _R("num"), "to": _R("num", None), self.value: _R(self.kind)}).check(
            raw, key, ctx
        )
        for i, b in enumerate(rows):
            if b["to"] is not None and b["to"] <= b["from"]:
                raise ctx.err(f"{key}[{i}].to", "must be greater than from")
        bands = Bands.from_rows(rows, self.value)
        if (i := bands.overlap()) is not None:
            raise ctx.err(key, f"bands overlap at from = {float(bands.lo[i])} (each is [from, to))")
        return bands


_ALL_FORMULAS = tuple(
    dict.fromkeys(f for bands in FORMULAS.values() for kinds in bands.values() for f in kinds)
)


def _band(boundaries: tuple[str, ...]) -> dict[str, Any]:
    """A deviation band: formula kind (checked against the scheme's set), boundary kind, ratio of C to A."""
    return {
        "formula": _Choice(_ALL_FORMULAS, required=True),
        "boundary": _Choice(boundaries, required=True),
        "ratio": _Num("ratio", lo=0),
    }


_SPEC: dict[str, Any] = {
    "scores": {"score_scale": _Num("points", lo=1, integer=True, required=True)},
    "budget": {
        "design": _Choice(("carve_out", "unified"), default="carve_out"),
        "method": _Choice(("items", "share", "growth"), default="items"),
        **{p: dict(_POOL_BUDGET) for p in POOLS},
    },
    "point_value": {
        "regime": _Choice(("fixed", "floating", "elastic"), required=True),
        "form": _Choice(("ratio", "subtraction"), default="ratio"),
        "fund_ratio_scope": _Choice(("region", "hospital"), default="region"),
        "decimals": _Num("count", lo=0, hi=12, integer=True),
        "elastic_split": _Num("share", default=0.8),
        "elastic_cap": _Bool(default=True),
        "budget_method": _Choice(
            ("given", "history", "history_trimmed", "efficient_1d", "efficient_2d"), default="given"
        ),
        "year_weights": _List(float, default=(0.1, 0.2, 0.7), unit="share"),
        "budget_trim_lower": _Num("share"),  # 分位数法: P2.5 …
        "budget_trim_upper": _Num("share"),  # … P97.5 of C/P (docs/formulas.md §2.6)
        **{p: dict(_POOL_POINT_VALUE) for p in POOLS},
    },
    "deviation": {  # 费用偏差病例: formula and boundary kinds from payment.points (docs/formulas.md §3)
        "low": _band(BOUNDARIES["low"]),
        "normal": {"formula": _Choice(_ALL_FORMULAS, default="standard")},
        "high": _band(BOUNDARIES["high"]),
        "extreme": _band(BOUNDARIES["extreme"]),
        "k": _Choice(("hospital", "by_pool"), default="hospital"),
        "k_by_pool": _ByKey("by_pool", POOLS, "ratio"),
        "kbbz_factor": _Num("ratio", lo=0, default=1.0),
        "aux_on_deviation": _Bool(default=None),  # default by formula kinds: _aux_on_deviation_default
        "avg_cost_factor": _ByKey("by_level", LEVELS, "ratio", default=ByKey(dict.fromkeys(LEVELS, 1.0))),
        "drg": {
            "city_avg_cost": _Num("yuan", lo=0, lo_open=True),
            "high_bands": _Banded("ratio"),  # high-ratio limit K by RW
        },
    },
    "hospital_coef": {
        "method": _Choice(("table", "history", "column"), required=True),
        "table": _ByKey("by_level", LEVELS, "ratio"),  # 医疗机构等级系数
    },
    "primary_care": {"groups": _List(str), "factor": _Num("ratio", lo=0, lo_open=True, default=1.0)},
    "tcm": {
        "groups": _List(str),
        "factor": _Num("ratio", lo=0, lo_open=True, default=1.0),
        "deviation": _Bool(default=False),
    },
    "special_case": {
        "cap_rate": _Num("share"),  # default by scheme: _CAP_RATE
        "eligible_ratio": _Num("ratio", lo=0, default=2.0),
        "eligible_op": _Choice((">", ">="), default=">"),
        "eligible_basis": _Choice(("group_standard", "case_standard"), default="group_standard"),
        "payment": _Choice(("cost_points", "fee_for_service"), default="cost_points"),
    },
    "routing": {
        "exclude_dx": _List(str),
        "exclude_departments": _List(str),
        "ungrouped": _Choice(("fee_for_service", "scheme"), default="fee_for_service"),
        "invalid": _Choice(("fee_for_service", "excluded"), default="fee_for_service"),
        "trust_fee_for_service_hint": _Bool(default=False),
    },
    "bed_day": {
        "readmit_merge_days": _Num("days", lo=0, integer=True, default=0),
        "max_days": _Num("days", lo=1, integer=True),
        "annual_cap": _Num("yuan", lo=0, lo_open=True),
        "bands": _Banded("factor"),  # over elapsed days: day d is [d − 1, d)
        "categories": _Rows(
            {
                "name": _R("str"),
                "dx": _R("strs", ()),
                "departments": _R("strs", ()),
                "rate": _R("by_level"),  # yuan/day by hospital level
            }
        ),
    },
    "per_case": {
        "entries": _Rows(
            {
                "code": _R("str"),
                "name": _R("str", ""),
                "dx": _R("strs"),
                "procs": _R("strs"),
                "price": _R("by_level"),  # yuan by hospital level; a level without a price is not covered
                "fund_ratio": _R("share"),
                "exit_cost_over_price_x": _R("num", None),
                "exit_los_over": _R("int", None),
                "exit_to": _R(("scheme", "fee_for_service"), "scheme"),
            }
        )
    },
    "dip": {  # DIP grouping choices and catalogue-build settings: DipCatalog.from_policy (docs/dip.md §3–§4)
        "grouping": {  # 分组规则
            "tie_break": _List(str),  # criteria of codebooks/dip/grouping.toml, in order
            "related_match": _Choice(("subset", "partial")),
            "tier_from": _Choice(("main", "highest")),
            "main_fallback": _Bool(),
            "interventional_as": _Choice(("surgery", "therapeutic")),  # 介入 → 手术 or 治疗性操作
        },
        "catalogue": {  # 目录库测算
            "year_weights": _List(float, default=(), unit="share"),
            "year_weighting": _Choice(("means", "cases")),
            "core_threshold": _Num("count", lo=1, integer=True),  # 临界值, cases
            "core_coverage": _Num("share"),  # or the share of cases core groups cover
            "comprehensive_threshold": _Num("count", lo=1, integer=True),
            "related_max": _Num("count", lo=0, integer=True),
            "related_min_uplift": _Num("share"),
            "trim": _Choice(("percentile", "iqr", "log_sd", "none")),
            "trim_lower": _Num("share"),
            "trim_upper": _Num("share"),
            "trim_k": _Num("ratio", lo=0, lo_open=True),
            "trim_min_n": _Num("count", lo=0, integer=True),
            "max_trim_rate": _Num("share"),
            "cv_ddof": _Num("count", lo=0, hi=1, integer=True),
            "discuss_cv": _Num("ratio", lo=0),
            "score_method": _Choice(("average_cost", "standard_amount")),
            "point_amount": _Num("yuan/point", lo=0, lo_open=True),
        },
    },
    "settlement": {
        "prepay_ratio": _Num("share", required=True),
        "quality_reserve": _Num("share", default=0.0),
        "band_mode": _Choice(("progressive", "whole"), default="progressive"),
        "surplus_bands": _Banded("retain", kind="share"),
        "overspend_bands": _Banded("fund_share", kind="share"),
        "spend_growth_cap": _Num("ratio", lo=0),
        "method_share_target": _Num("share"),
        "clearing_share_limit": _Num("ratio", lo=0, default=0.1),
        "hospital_share_limit": _Num("share", default=0.9),
    },
}
#: Defaults the engine applies when a policy is silent, with where each comes from, and when it matters (a
#: predicate on the validated values). Policy.assumptions() lists every default that was applied and matters, so
#: a region's outputs name each number no document of theirs backs. Defaults that only switch something off
#: (zero amounts, empty lists) are not listed.
_DEFAULT_SOURCES: dict[str, tuple[str, Any]] = {
    "budget.design": ("docs/formulas.md §12: carve-outs paid outside the points pool", None),
    "budget.method": ("docs/formulas.md §1: the budget given item by item", None),
    "point_value.form": ("docs/formulas.md §2.2: ratio form", None),
    "point_value.fund_ratio_scope": ("docs/formulas.md §7.3: one fund ratio for the region", None),
    "point_value.elastic_split": (
        "docs/formulas.md §2.5: base:increment 8:2",
        lambda v, scheme: v["point_value"].regime == "elastic",
    ),
    "point_value.elastic_cap": (
        "docs/formulas.md §2.5: the increment value capped at the fixed value",
        lambda v, scheme: v["point_value"].regime == "elastic",
    ),
    "point_value.year_weights": (
        "docs/formulas.md §2.1: years weighted 1:2:7",
        lambda v, scheme: v["point_value"].budget_method != "given",
    ),
    "deviation.kbbz_factor": (
        "docs/formulas.md §3.5: 空白病种 paid S × C/A without a discount",
        lambda v, scheme: scheme == "dip",
    ),
    "deviation.avg_cost_factor": (
        "docs/formulas.md §3.2: A not adjusted by hospital level",
        lambda v, scheme: scheme == "dip",
    ),
    "primary_care.factor": (
        "docs/formulas.md §3.6: 基层病种 earn their score",
        lambda v, scheme: bool(v["primary_care"].groups),
    ),
    "tcm.factor": ("中医优势病种 earn their score", lambda v, scheme: bool(v["tcm"].groups)),
    "tcm.deviation": ("中医优势病种 paid S·k·a whatever their cost", lambda v, scheme: bool(v["tcm"].groups)),
    "special_case.cap_rate": ("docs/formulas.md §9: DIP ≤ 5 ‰, DRG ≤ 5 % of the scheme's cases", None),
    "special_case.eligible_ratio": ("docs/formulas.md §9: 超过平均支付标准 2 倍以上", None),
    "special_case.eligible_op": ("docs/formulas.md §9: strictly above (以上 read as >)", None),
    "special_case.eligible_basis": (
        "docs/formulas.md §9: against the group's 平均支付标准 = 分值 × 点值 (S × V_budget; no k, no a)",
        None,
    ),
    "special_case.payment": (
        "docs/formulas.md §9: approved → an adjusted standard in the year's clearing, points = C / V_budget",
        None,
    ),
    "deviation.aux_on_deviation": (
        "docs/formulas.md §3.3/§3.6: a multiplies low/high/extreme points as the profile's table shows "
        "(not under the 2020 national kinds low cost + high minus_one)",
        lambda v, scheme: scheme == "dip",
    ),
    "routing.invalid": (
        "docs/records.md Q10 and §4: a case discharged before its admission (DATE_CONFLICT), without a readable "
        "total cost (COST_INVALID) or without a usable length of stay (LOS_INVALID) is an invalid record, paid by item",
        None,
    ),
    "routing.ungrouped": ("docs/formulas.md §12: ungroupable cases paid by item", None),
    "settlement.band_mode": (
        "docs/formulas.md §8: progressive",
        lambda v, scheme: bool(v["settlement"].surplus_bands or v["settlement"].overspend_bands),
    ),
    "bed_day.bands": ("every bed day at the full rate", lambda v, scheme: bool(v["bed_day"].categories)),
    "settlement.clearing_share_limit": (
        "docs/formulas.md §7.6: clearing funds about 3–5 % of the year's payments; warned beyond twice that: a budget "
        "point value more than 10 % from the settlement value",
        None,
    ),
    "settlement.hospital_share_limit": (
        "a warning guard, no document: one hospital taking ≥ 90 % of a pool shared by several",
        None,
    ),
}


def _aux_on_deviation_default(dev: Mapping[str, Any]) -> bool:
    """docs/formulas.md §3.3: the 2020 national and 广州 profiles (low ``cost``, high ``minus_one``) pay deviation
    cases S · C/A and S · (C/A − 1) without a; every other profile's table carries a."""
    low, high = dev["low"], dev["high"]
    return not (low is not None and high is not None and (low.formula, high.formula) == ("cost", "minus_one"))


#: 特例单议 cap by scheme when the policy does not set it (docs/formulas.md §9).
_CAP_RATE = {"dip": 0.005, "drg": 0.05}

_HEADER = {"region": str, "year": int, "scheme": str, "catalogue": str, "effective": dict, "description": str}
_SOURCE_KEYS = ("title", "doc", "url", "clause", "note")
#: Amounts an items budget carves out of a pool's fund (docs/formulas.md §1).
_CARVE_OUTS = ("out_of_area", "bed_day", "per_case", "fee_for_service", "other")
#: Policy years accepted (``policy.year``): a typo such as −5 or 20255 is an error, not a period nobody settles.
#: Declared here beside the other keys' bounds (``_SPEC``); the JSON Schema carries it (payment/policy_schema.py).
_YEARS = (1990, 2100)


class _Ctx:
    def __init__(self, where: str, sources: Mapping[str, Any], collect: bool = False):
        self.where, self.sources = where, sources
        self.cited: dict[str, str] = {}
        self.defaulted: list[str] = []
        #: With ``collect``, the problems found so far (``policy check``: every error at once), else None.
        self.errors: list[PolicyError] | None = [] if collect else None

    def guard(self, fn: Any, *args: Any, fallback: Any = None) -> Any:
        """``fn(*args)``; when collecting, a problem is recorded and ``fallback`` returned. A check that trips on
        a value already reported as wrong (``None`` arithmetic…) is skipped: its cause is listed."""
        try:
            return fn(*args)
        except PolicyError as exc:
            if self.errors is None:
                raise
            self.errors.append(exc)
        except (TypeError, AttributeError, KeyError, IndexError):
            if not self.errors:
                raise
        return fallback

    def err(self, key: str, msg: str) -> PolicyError:
        return PolicyError(f"{self.where}: {key}: {msg}", path=self.where, key=key)

    def source(self, src: Any, key: str, note: Any) -> None:
        if src is None:
            raise self.err(key, 'no source (name one from [sources], or source = "assumption" with a note)')
        if src == "assumption":
            if not isinstance(note, str) or not note:
                raise self.err(key, "an assumption needs a note saying why")
        elif src not in self.sources:
            raise self.err(key, f"source {src!r} is not declared in [sources]")
        self.cited[key] = src

    def valued(self, raw: Any, key: str, unit: str | None) -> Any:
        if not isinstance(raw, dict) or "value" not in raw:
            raise self.err(key, "expected a table {value = …, source = …}")
        unknown = set(raw) - {"value", "unit", "source", "clause", "note"}
        if "values" in unknown:
            unknown.discard("values")
        if unknown:
            raise self.err(
                f"{key}.{sorted(unknown)[0]}", "unknown key (known: value, unit, source, clause, note)"
            )
        self.source(raw.get("source"), key, raw.get("note"))
        if unit is not None:
            got = raw.get("unit")
            if got not in UNITS:
                raise self.err(key, f"unknown unit {got!r} (known: {', '.join(UNITS)})")
            if got != unit:
                raise self.err(key, f"unit must be {unit!r}, got {got!r}")
        elif "unit" in raw:
            raise self.err(key, "takes no unit")
        return raw["value"]


def _validate(spec: Mapping[str, Any], raw: Mapping[str, Any], prefix: str, ctx: _Ctx) -> dict[str, Any]:
    for u in [k for k in raw if k not in spec]:
        ctx.guard(_raise, ctx.err(f"{prefix}{u}", f"unknown key (known: {', '.join(spec)})"))
    out: dict[str, Any] = {}
    for name, kind in spec.items():
        key = f"{prefix}{name}"
        if isinstance(kind, dict):
            sub = raw.get(name, {})
            if not isinstance(sub, dict):
                ctx.guard(_raise, ctx.err(key, "expected a table"))
                sub = {}
            absent_is_none = name in POOLS or name in _OPTIONAL_SECTIONS or _has_required(kind)
            if name not in raw and not prefix and _has_required(kind):
                ctx.guard(_raise, ctx.err(key, f"missing: the [{key}] section"))
            out[name] = (
                None if name not in raw and absent_is_none else Section(_validate(kind, sub, f"{key}.", ctx))
            )
            continue
        if name not in raw:
            if kind.required:
                ctx.guard(_raise, ctx.err(key, "missing"))
            out[name] = kind.default
            ctx.defaulted.append(key)
            continue
        out[name] = ctx.guard(kind.check, raw[name], key, ctx, fallback=kind.default)
    return out


def _raise(exc: Exception) -> None:
    raise exc


#: What a file starting with a byte-order mark (BOM) other than UTF-8's is, UTF-32's first: its little-endian
#: BOM starts with UTF-16's. Windows Notepad calls UTF-16 "Unicode".
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 text"),
    (codecs.BOM_UTF32_BE, "UTF-32 text"),
    (codecs.BOM_UTF16_LE, 'UTF-16 text (Notepad\'s "Unicode")'),
    (codecs.BOM_UTF16_BE, 'UTF-16 text (Notepad\'s "Unicode")'),
)


def _policy_file(path_or_name: str | Path) -> Path:
    """A policy file as given, or, for a bare name that is no file here (``demo-2025``), the policy shipped under
    ``codebooks/policies/`` with that name."""
    path = Path(path_or_name)
    shipped = data_path("policies", f"{path.name}.toml")
    if not path.exists() and len(path.parts) == 1 and not path.suffix and shipped.is_file():
        return shipped
    return path


def _shipped_names() -> str:
    return ", ".join(sorted(p.stem for p in data_path("policies").glob("*.toml")))


def _read(path: Path) -> dict[str, Any]:
    """The TOML of a policy file. A UTF-8 byte-order mark (BOM) at its start, as Windows Notepad writes one, is
    not part of the text and is skipped (TOML has no other reading of it); any other encoding is refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        shipped = f" (a file, or a shipped policy: {_shipped_names()})" if len(path.parts) == 1 else ""
        raise PolicyError(f"{path}: cannot read: {exc.strerror}{shipped}", path=path) from None
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return tomllib.loads(data[bom:].decode("utf-8"))
    except UnicodeDecodeError as exc:
        marked = next((f"{name}, not UTF-8" for mark, name in _BOMS if data.startswith(mark)), None)
        what = marked or f"not UTF-8 text (byte {exc.start + bom}; a GBK file is not read)"
        raise PolicyError(f"{path}: {what}; save the file as UTF-8", path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}", path=path) from None
    except RecursionError:
        raise PolicyError(f"{path}: not a policy: arrays or tables nested too deep", path=path) from None


def _show(value: Any) -> str:
    """A default value as a policy would write it."""
    if isinstance(value, Bands):
        return "[]"
    if isinstance(value, ByKey):
        return "{" + ", ".join(f"{k} = {v}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _has_required(spec: Mapping[str, Any]) -> bool:
    return any(not isinstance(k, dict) and k.required for k in spec.values())


def _check_header(raw: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ctx.err("policy", "missing [policy] table")
    for k, v in raw.items():
        if k not in _HEADER:
            raise ctx.err(f"policy.{k}", f"unknown key (known: {', '.join(_HEADER)})")
        if not isinstance(v, _HEADER[k]) or isinstance(v, bool):
            raise ctx.err(f"policy.{k}", f"expected {_HEADER[k].__name__}")
    for k in ("region", "year", "scheme", "effective"):
        if k not in raw:
            raise ctx.err(f"policy.{k}", "missing")
    if raw["scheme"] not in ("dip", "drg"):
        raise ctx.err("policy.scheme", f"{raw['scheme']!r} is not one of dip, drg")
    if not _YEARS[0] <= raw["year"] <= _YEARS[1]:
        raise ctx.err("policy.year", f"must lie in {_YEARS[0]}–{_YEARS[1]}, got {raw['year']}")
    eff = raw["effective"]
    if set(eff) != {"start", "end"} or not all(_is_day(eff[x]) for x in ("start", "end")):
        raise ctx.err(
            "policy.effective", "expected { start = YYYY-MM-DD, end = YYYY-MM-DD } (dates, no time)"
        )
    if eff["end"] < eff["start"]:
        raise ctx.err("policy.effective", "end is before start")
    if not eff["start"].year == eff["end"].year == raw["year"]:
        raise ctx.err(
            "policy.effective", f"{eff['start']} – {eff['end']} is not inside the policy year {raw['year']}"
        )
    return dict(raw)


def _is_day(v: Any) -> bool:
    """A TOML local date (``2025-01-01``); a datetime or a time is not one."""
    return isinstance(v, _dt.date) and not isinstance(v, _dt.datetime)


def _check_sources(raw: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ctx.err("sources", "expected a table of sources")
    for k, v in raw.items():
        if not isinstance(v, dict) or "title" not in v:
            raise ctx.err(f"sources.{k}", "expected { title = …, doc = …, url = … }")
        unknown = set(v) - set(_SOURCE_KEYS)
        if unknown:
            raise ctx.err(
                f"sources.{k}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(_SOURCE_KEYS)})"
            )
    return raw


def _check_deviation(dev: Section | None, scheme: str, pools: list[str], ctx: _Ctx) -> None:
    """Each band's formula kind in the scheme's closed set; the bands the scheme needs; k by pool if declared."""
    if dev is None or (dev.low is None and dev.high is None):
        raise ctx.err(
            "deviation", "missing: the [deviation] section (the deviation rule's low and high bands)"
        )
    kinds = FORMULAS[scheme]
    for band in ("low", "high"):
        if dev[band] is None:
            raise ctx.err(f"deviation.{band}", "missing")
    for band in ("low", "normal", "high", "extreme"):
        if dev[band] is None:
            continue
        if band not in kinds:
            raise ctx.err(f"deviation.{band}", f"a {scheme} policy has no {band} band")
        if dev[band].formula not in kinds[band]:
            raise ctx.err(
                f"deviation.{band}.formula",
                f"{dev[band].formula!r} is not a {scheme} {band} formula (known: {', '.join(kinds[band])})",
            )
    need_ratio = ("low", "high", "extreme") if scheme == "dip" else ("low",)
    for band in need_ratio:
        if dev[band] is not None and dev[band].ratio is None:
            raise ctx.err(f"deviation.{band}.ratio", "missing")
    if scheme == "drg":
        if dev.high.ratio is not None:
            raise ctx.err(
                "deviation.high.ratio", "a DRG policy takes the high ratio from deviation.drg.high_bands"
            )
        if dev.drg is None or dev.drg.city_avg_cost is None or not dev.drg.high_bands:
            raise ctx.err("deviation.drg", "a DRG policy needs city_avg_cost and high_bands")
        b = dev.drg.high_bands
        if b.lo[0] != 0 or b.hi[-1] is not None or any(t != f for t, f in zip(b.hi, b.lo[1:], strict=False)):
            raise ctx.err("deviation.drg.high_bands", "must cover every RW from 0 up, without gaps")
    elif dev.drg is not None:
        raise ctx.err("deviation.drg", "only a DRG policy takes this section")
    if dev.k == "by_pool":
        missing = [p for p in pools if p not in (dev.k_by_pool or {})]
        if missing:
            raise ctx.err("deviation.k_by_pool", f"missing pool {missing[0]} (needed by k = 'by_pool')")
    elif dev.k_by_pool:
        raise ctx.err("deviation.k_by_pool", "given but k is not 'by_pool'")


def _cross_checks(v: dict[str, Any], header: dict[str, Any], ctx: _Ctx) -> None:
    """Checks across keys, each run on its own so that ``policy check`` reports every one that fails."""
    pools = ctx.guard(_check_pools, v, header, ctx, fallback=[])
    if pools:
        ctx.guard(_check_point_values, v, header, ctx)
    ctx.guard(_check_deviation, v["deviation"], header.get("scheme"), pools, ctx)
    ctx.guard(_check_dip, v, header, ctx)
    ctx.guard(_check_coef, v, ctx)
    ctx.guard(_check_settlement, v, ctx)
    if pools:
        for p in pools:
            ctx.guard(_check_budget_items, v["budget"], p, ctx)
    ctx.guard(_check_deviation_order, v["deviation"], ctx)
    ctx.guard(_check_per_case, v["per_case"], ctx)


def _check_pools(v: dict[str, Any], header: dict[str, Any], ctx: _Ctx) -> list[str]:
    """The budget pools in use, each with the keys its budget method and point value regime need."""
    budget, pv = v["budget"], v["point_value"]
    pools = [p for p in POOLS if budget is not None and budget[p] is not None]
    if budget is None or not pools:
        raise ctx.err("budget", "needs [budget.all] or [budget.employee] + [budget.resident]")
    if "all" in pools and len(pools) > 1:
        raise ctx.err(
            "budget.all", "use either one pool (all) or one per 险种 (employee, resident), not both"
        )
    if "all" not in pools and set(pools) != {"employee", "resident"}:
        raise ctx.err(f"budget.{pools[0]}", "per-险种 pools need both employee and resident")
    need = {"items": "inpatient_fund", "share": "last_year_share", "growth": "last_year_total"}[budget.method]
    for p in pools:
        if budget[p][need] is None or (budget.method == "share" and budget[p]["inpatient_fund"] is None):
            raise ctx.err(f"budget.{p}.{need}", f"missing (needed by method = {budget.method!r})")
        if budget.method == "growth" and budget[p]["growth"] is None:
            raise ctx.err(f"budget.{p}.growth", "missing (needed by method = 'growth')")
        pvp = pv[p]
        if pvp is None:
            raise ctx.err(f"point_value.{p}", "missing (one table per budget pool)")
        if pv.regime in ("fixed", "elastic") and pvp.fixed is None:
            raise ctx.err(f"point_value.{p}.fixed", f"missing (needed by regime = {pv.regime!r})")
        if pv.budget_method == "given" and pvp.budget is None:
            raise ctx.err(f"point_value.{p}.budget", "missing (needed by budget_method = 'given')")
    return pools


def _check_budget_items(budget: Section, pool: str, ctx: _Ctx) -> None:
    """Items budget: the reserve and the carve-outs leave a positive distributable budget D of the fund."""
    b = budget[pool]
    if budget.method != "items" or b.inpatient_fund is None:
        return
    if b.reserve_share >= 1:
        raise ctx.err(
            f"budget.{pool}.reserve_share",
            f"must be below 1 (the whole fund in reserve), got {b.reserve_share}",
        )
    items = [k for k in _CARVE_OUTS if budget.design == "carve_out" or k not in ("bed_day", "per_case")]
    carved, left = sum(b[k] for k in items), b.inpatient_fund * (1 - b.reserve_share)
    if carved >= left:
        raise ctx.err(
            f"budget.{pool}",
            f"carve-outs ({' + '.join(items)} = {carved:,.2f} yuan) leave nothing of the fund after the "
            f"reserve ({left:,.2f} yuan)",
        )


def _check_deviation_order(dev: Section | None, ctx: _Ctx) -> None:
    """The boundaries rise: low ratio < high ratio (every DRG high band's) < extreme ratio."""
    if dev is None or dev.low is None or dev.high is None or dev.low.ratio is None:
        return
    highs = [dev.high.ratio] if dev.high.ratio is not None else []
    if dev.drg is not None and dev.drg.high_bands:
        highs += [float(x) for x in dev.drg.high_bands.value]
    for h in highs:
        if not dev.low.ratio < h:
            key = "deviation.high.ratio" if dev.high.ratio is not None else "deviation.drg.high_bands"
            raise ctx.err(key, f"must be above the low ratio {dev.low.ratio}, got {h}")
    if (
        dev.extreme is not None
        and dev.extreme.ratio is not None
        and highs
        and not dev.extreme.ratio > max(highs)
    ):
        raise ctx.err(
            "deviation.extreme.ratio", f"must be above the high ratio {max(highs)}, got {dev.extreme.ratio}"
        )


def _check_per_case(pc: Section, ctx: _Ctx) -> None:
    """Each per-case (单病种) code once."""
    seen: set[str] = set()
    for i, e in enumerate(pc.entries):
        if e.code in seen:
            raise ctx.err(f"per_case.entries[{i}].code", f"{e.code!r} is listed twice")
        seen.add(e.code)


def _check_point_values(v: dict[str, Any], header: dict[str, Any], ctx: _Ctx) -> None:
    """Monthly values inside the effective period; trim shares and year weights that make sense."""
    budget, pv = v["budget"], v["point_value"]
    pools = [p for p in POOLS if budget[p] is not None]
    eff = header["effective"]
    for p in pools:
        for d, _ in pv[p].monthly:
            if not eff["start"].replace(day=1) <= d <= eff["end"]:
                raise ctx.err(
                    f"point_value.{p}.monthly.values.{d:%Y-%m}", "outside the policy's effective period"
                )
    if pv.budget_method == "history_trimmed":
        for k in ("budget_trim_lower", "budget_trim_upper"):
            if pv[k] is None:
                raise ctx.err(f"point_value.{k}", "missing (needed by budget_method = 'history_trimmed')")
        if pv.budget_trim_lower >= pv.budget_trim_upper:
            raise ctx.err("point_value.budget_trim_upper", "must be greater than budget_trim_lower")
    if len(pv.year_weights) != 3 or abs(sum(pv.year_weights) - 1) > 1e-9:
        raise ctx.err("point_value.year_weights", "expected three positive weights summing to 1")


def _check_dip(v: dict[str, Any], header: dict[str, Any], ctx: _Ctx) -> None:
    cat = v["dip"].catalogue
    if cat.core_threshold is not None and cat.core_coverage is not None:
        raise ctx.err("dip.catalogue.core_coverage", "give core_threshold or core_coverage, not both")
    if (cat.trim_lower is None) != (cat.trim_upper is None):
        raise ctx.err("dip.catalogue.trim_upper", "trim_lower and trim_upper go together")
    if cat.score_method == "standard_amount" and cat.point_amount is None:
        raise ctx.err("dip.catalogue.point_amount", "missing (needed by score_method = 'standard_amount')")
    if (v["dip"].grouping.tie_break or cat.year_weights or cat.core_threshold) and header["scheme"] != "dip":
        raise ctx.err("dip", "only a DIP policy takes this section")


def _check_coef(v: dict[str, Any], ctx: _Ctx) -> None:
    hc = v["hospital_coef"]
    if hc is None:
        raise ctx.err("hospital_coef", "missing")
    if hc.method == "table":
        missing = [lv for lv in LEVELS if lv not in (hc.table or {})]
        if missing:
            raise ctx.err("hospital_coef.table", f"level {missing[0]} missing (needed by method = 'table')")


def _check_settlement(v: dict[str, Any], ctx: _Ctx) -> None:
    st = v["settlement"]
    if st is None:
        raise ctx.err("settlement", "missing")
    if st.prepay_ratio + st.quality_reserve > 1 + 1e-12:
        raise ctx.err("settlement.quality_reserve", "prepay_ratio + quality_reserve exceed 1")


def _unpickle_policy(fields: dict) -> Policy:
    return Policy(**{k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in fields.items()})


@dataclass(frozen=True, eq=False)
class Policy:
    """A region's payment policy (支付政策) for one year: validated, frozen and hashed.

    Attributes
    ----------
    header : Section
        ``region``, ``year``, ``scheme`` (``dip``/``drg``), ``catalogue``, ``effective``.
    scores, budget, point_value, deviation, hospital_coef, primary_care, tcm, special_case, routing, bed_day,
    per_case, dip, settlement : Section or None
        Plain values (numbers, strings, tuples of rows); absent optional sections are ``None``.
    sha256 : str
        Hash of the canonical content (values and sources); any change gives a new hash.

    Examples
    --------
    >>> p = Policy.load("codebooks/policies/demo-2025.toml")     # doctest: +SKIP
    >>> p.deviation.high.ratio, p.replace({"deviation.high.ratio": 2.5}).deviation.high.ratio   # doctest: +SKIP
    (2.0, 2.5)
    """

    raw: Mapping[str, Any]
    path: str
    values: Mapping[str, Any]
    header: Section
    sha256: str
    cited: Mapping[str, str]
    defaults: Mapping[str, str]

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read and validate a policy TOML file, or a policy shipped under ``codebooks/policies/`` by its name
        (``demo-2025``); a problem raises :class:`PolicyError` naming the key."""
        path = _policy_file(path)
        return cls.from_dict(_read(path), str(path))

    @staticmethod
    def problems(path: str | Path) -> list[PolicyError]:
        """Every problem of a policy file at once (``drgdip policy check``), in file order; empty when it loads.

        Each key's own checks all run; a check across keys is skipped when it trips on a value already reported.
        """
        path = _policy_file(path)
        try:
            raw = _read(path)
        except PolicyError as exc:
            return [exc]
        ctx = _Ctx(
            str(path), raw.get("sources") if isinstance(raw.get("sources"), dict) else {}, collect=True
        )
        try:
            Policy._build(raw, str(path), ctx)
        except PolicyError as exc:
            ctx.errors.append(exc)
        except (TypeError, AttributeError, KeyError, IndexError):
            if not ctx.errors:
                raise
        first: dict[str, PolicyError] = {}  # one problem per key: a wrong value is not also "missing"
        for e in ctx.errors:
            first.setdefault(str(e).removeprefix(f"{path}: ").split(": ", 1)[0], e)
        return list(first.values())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "<policy>") -> Policy:
        """Validate an already-parsed TOML document."""
        sources = raw.get("sources", {})
        return cls._build(raw, where, _Ctx(where, sources if isinstance(sources, dict) else {}))

    @classmethod
    def _build(cls, raw: Mapping[str, Any], where: str, ctx: _Ctx) -> Policy | None:
        for k in raw:
            if k not in ("policy", "sources", *_SPEC):
                ctx.guard(_raise, ctx.err(k, f"unknown key (known: policy, sources, {', '.join(_SPEC)})"))
        header = ctx.guard(_check_header, raw.get("policy"), ctx, fallback={})
        ctx.guard(_check_sources, raw.get("sources", {}), ctx)
        values = _validate(_SPEC, {k: v for k, v in raw.items() if k in _SPEC}, "", ctx)
        _cross_checks(values, header, ctx)
        if ctx.errors:
            return None
        if values["deviation"].aux_on_deviation is None:
            dev = dict(values["deviation"])
            values["deviation"] = Section(dev | {"aux_on_deviation": _aux_on_deviation_default(dev)})
        if values["special_case"].cap_rate is None:
            sc = dict(values["special_case"]) | {"cap_rate": _CAP_RATE[header["scheme"]]}
            values["special_case"] = Section(sc)
        defaults = {}
        for key in ctx.defaulted:
            why, matters = _DEFAULT_SOURCES.get(key, (None, None))
            if why is not None and (matters is None or matters(values, header["scheme"])):
                section, name = key.split(".", 1)
                defaults[key] = f"{_show(values[section][name])} (engine default: {why})"
        canon = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str).encode()
        return cls(
            raw=MappingProxyType(dict(raw)),
            path=where,
            values=MappingProxyType(values),
            header=Section(header),
            sha256=hashlib.sha256(canon).hexdigest(),
            cited=MappingProxyType(ctx.cited),
            defaults=MappingProxyType(defaults),
        )

    def __getattr__(self, name: str) -> Any:
        if name in _SPEC:
            return self.values[name]
        raise AttributeError(name)

    def __reduce__(self):
        """Pickled by value, the read-only mappings as dicts (a Dask cluster's workers get the same policy)."""
        fields = {
            f: getattr(self, f) for f in ("raw", "path", "values", "header", "sha256", "cited", "defaults")
        }
        return _unpickle_policy, (
            {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in fields.items()},
        )

    @property
    def scheme(self) -> str:
        """``dip`` or ``drg``."""
        return self.header["scheme"]

    @property
    def pools(self) -> tuple[str, ...]:
        """Budget pools in use: ``("all",)`` or ``("employee", "resident")``."""
        return tuple(p for p in POOLS if self.budget[p] is not None)

    def source_of(self, key: str) -> str:
        """The citation behind a dotted key: title (doc) [clause], or ``assumption: note``."""
        src = self.cited.get(key)
        if src is None:
            raise KeyError(f"{key}: no such valued key in {self.path}")
        node: Any = self.raw
        for part in key.split("."):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        if src == "assumption":
            return f"assumption: {node.get('note', '')}"
        s = self.raw["sources"][src]
        text = s["title"] + (f" ({s['doc']})" if "doc" in s else "")
        clause = node.get("clause") if isinstance(node, dict) else None
        return text + (f" {clause}" if clause else "")

    def assumptions(self) -> list[str]:
        """Dotted keys whose value no document backs (``source = "assumption"``), then each engine default
        applied where the policy is silent and it matters, as ``key = value (engine default: source)``."""
        written = sorted(k for k, s in self.cited.items() if s == "assumption")
        return written + [f"{k} = {v}" for k, v in sorted(self.defaults.items())]

    def replace(self, changes: Mapping[str, Any]) -> Policy:
        """A new Policy with dotted keys' ``value`` replaced (None removes the key); re-validated, new hash."""
        raw = copy.deepcopy(dict(self.raw))
        for key, value in changes.items():
            *parents, last = key.split(".")
            node = raw
            for part in parents:
                node = node.setdefault(part, {})
            if value is None:
                node.pop(last, None)
            elif isinstance(node.get(last), dict) and "value" in node[last]:
                node[last]["value"] = value
            else:
                node[last] = value
        return Policy.from_dict(raw, f"{self.path} (replaced {', '.join(changes)})")
