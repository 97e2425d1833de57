"""Parameters of a synthetic region (合成区域): one TOML file under ``codebooks/synth/``.

The shipped ``region-default.toml`` is both the default and the schema: a user file must have the same keys
with values of the same type (a number where a number is expected, a list where a list is expected), so a typo
is an error naming the key instead of a silently ignored setting.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from grouper.errors import SettingsError
from grouper.resources import data_path

__all__ = ["DEFECT_KINDS", "Region", "RegionError", "load_region"]

#: Closed set of defect kinds (``synthetic_defect`` values).
DEFECT_KINDS = ("invalid_code", "missing_pdx", "sex_conflict", "los_negative", "duplicate_case_id")
#: Tables whose keys are free (any chapter letter), checked only for the type of their values.
_FREE_KEYS = {"department.chapter"}
#: Lists of shares that must sum to 1.
_SUM_TO_ONE = (
    "hospitals.level_share",
    "hospitals.type_share.1",
    "hospitals.type_share.2",
    "hospitals.type_share.3",
    "insurance.share",
    "outcome.mode_share",
    "defects.kind_share",
    "fees.conservative",
    "fees.procedure",
    "fees.bed_day",
)
#: Single shares that must lie in [0, 1].
_PROBABILITIES = (
    "secondary_dx.mcc_share",
    "secondary_dx.cc_share",
    "secondary_dx.same_table_share",
    "outcome.death_rate",
    "outcome.death_low_risk",
    "outcome.low_risk_quantile",
    "outcome.death_cap",
    "outcome.icu_share",
    "outcome.vent_share",
    "readmission.share",
    "readmission.same_hospital",
    "insurance.in_scope",
    "per_case.take",
    "bed_day.specialist_share",
    "defects.share",
    "age.child_share",
    "age.female_share",
)


class RegionError(SettingsError):
    """A region file that does not follow the format; the message names the file and the key."""


@dataclass(frozen=True)
class Region:
    """A loaded, validated region: ``params`` is the TOML content (read-only), ``path`` where it came from."""

    params: MappingProxyType
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, dotted: str) -> Any:
        """Value at a dotted key, e.g. ``region.get("cost.los_sigma")``."""
        value: Any = self.params
        for part in dotted.split("."):
            value = value[part]
        return value


def load_region(path: str | Path | None = None) -> Region:
    """Read and validate a region file (default: the shipped ``region-default.toml``).

    Parameters
    ----------
    path : str or Path, optional
        A TOML file, or the stem of a file in ``codebooks/synth/`` (e.g. ``"region-default"``).

    Returns
    -------
    Region

    Raises
    ------
    RegionError
        Unreadable file, missing or unknown key, wrong type, or an impossible value.
    """
    file = _resolve(path)
    default = _resolve(None)
    template = _read(default)
    params = _read(file) if file != default else template
    _check_shape(template, params, "", file)
    _check_values(params, file)
    return Region(MappingProxyType(params), file)


def _resolve(path: str | Path | None) -> Path:
    shipped = data_path("synth")
    if path is None:
        return (shipped / "region-default.toml").resolve()
    file = Path(path)
    if not file.exists() and (shipped / f"{file.name}.toml").exists():
        file = shipped / f"{file.name}.toml"
    if not file.exists():
        raise RegionError(f"{path}: no such region file")
    return file.resolve()


def _read(file: Path) -> dict:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RegionError(f"{file}: not valid TOML: {exc}") from None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "table"}.get(type(value), type(value).__name__)


def _check_shape(template: Any, value: Any, key: str, file: Path) -> None:
    where = key or "<top>"
    if _kind(template) != _kind(value):
        raise RegionError(f"{file}: {where}: expected a {_kind(template)}, got {_kind(value)}")
    if isinstance(template, dict):
        if key in _FREE_KEYS:
            sample = next(iter(template.values()))
            for k, v in value.items():
                _check_shape(sample, v, f"{key}.{k}", file)
            return
        for k in value:
            if k not in template:
                known = ", ".join(template)
                raise RegionError(f"{file}: unknown key {key + '.' if key else ''}{k} (known: {known})")
        for k in template:
            if k not in value:
                raise RegionError(f"{file}: missing key {key + '.' if key else ''}{k}")
        for k, v in value.items():
            _check_shape(template[k], v, f"{key}.{k}" if key else k, file)
    elif isinstance(template, list) and template:
        for i, v in enumerate(value):
            _check_shape(template[0], v, f"{key}[{i}]", file)


def _check_values(params: dict, file: Path) -> None:
    region = Region(MappingProxyType(params), file)
    for key in _SUM_TO_ONE:
        shares = region.get(key)
        if any(s < 0 for s in shares) or not math.isclose(sum(shares), 1.0, abs_tol=1e-9):
            raise RegionError(f"{file}: {key}: shares must be ≥ 0 and sum to 1, got {shares}")
    for key in _PROBABILITIES:
        if not 0 <= region.get(key) <= 1:
            raise RegionError(f"{file}: {key}: must lie in [0, 1], got {region.get(key)}")
    pairs = (
        ("hospitals.level_share", 3),
        ("hospitals.size_median", 3),
        ("levels.cost_factor", 3),
        ("levels.procedure_tilt", 3),
        ("levels.severity_tilt", 3),
        ("insurance.deductible", 3),
        ("insurance.share", len(region.get("insurance.types"))),
        ("insurance.ratio", len(region.get("insurance.types"))),
        ("outcome.mode_share", len(region.get("outcome.modes"))),
        ("defects.kind_share", len(region.get("defects.kinds"))),
        ("fees.conservative", 14),
        ("fees.procedure", 14),
        ("fees.bed_day", 14),
    )
    for key, n in pairs:
        if len(region.get(key)) != n:
            raise RegionError(f"{file}: {key}: expected {n} values, got {len(region.get(key))}")
    unknown = set(region.get("defects.kinds")) - set(DEFECT_KINDS)
    if unknown:
        raise RegionError(f"{file}: defects.kinds: unknown kind(s) {sorted(unknown)}; known: {DEFECT_KINDS}")
    if region.get("secondary_dx.mcc_share") + region.get("secondary_dx.cc_share") > 1:
        raise RegionError(f"{file}: secondary_dx: mcc_share + cc_share must not exceed 1")
    if sum(c["share"] for c in region.get("bed_day.categories")) >= 1:
        raise RegionError(f"{file}: bed_day.categories: shares must sum to less than 1")
    if not region.get("block_size") >= 1024:
        raise RegionError(f"{file}: block_size: must be at least 1024")
    if not region.get("regions"):
        raise RegionError(f"{file}: regions: at least one region is needed")
