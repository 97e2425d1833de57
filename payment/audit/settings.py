"""Audit settings (自查阈值): the thresholds of the supervision flags and risk classes, as sourced data.

``codebooks/qc/audit-defaults.toml`` holds every number as ``{value, unit, source, note}``; a region
passes its own file of the same shape. Unknown sections or keys, wrong types and undeclared sources are refused,
naming the file and the dotted key.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grouper.errors import PolicyError
from grouper.resources import data_path

__all__ = ["AuditSettings"]

#: section → key → (kind, unit): the closed list of settings.
_SCHEMA: dict[str, dict[str, tuple[str, str | None]]] = {
    "readmission": {"short_days": ("int", "days"), "long_days": ("int", "days")},
    "low_standard": {
        "max_los": ("int", "days"),
        "max_cost_share": ("float", "share"),
        "exclude_modes": ("ints", None),
    },
    "long_stay": {
        "los_ratio": ("float", "ratio"),
        "max_los": ("int", "days"),
        "exclude_payment_methods": ("strs", None),
    },
    "risk": {"min_cases": ("int", "count"), "zero_deaths": ("choice", None), "sd": ("choice", None)},
    "upcoding": {"cost_share": ("float", "ratio"), "max_tries": ("int", "count")},
    "pdx_choice": {"max_tries": ("int", "count"), "max_alternatives": ("int", "count")},
    "weights": {"from_run": ("bool", None)},
}
_CHOICES = {
    "risk.zero_deaths": ("low", "unclassed"),
    "risk.sd": ("population", "sample"),
}


@dataclass(frozen=True)
class AuditSettings:
    """Validated audit thresholds; ``settings["long_stay.los_ratio"]`` gives a plain value.

    Examples
    --------
    >>> s = AuditSettings.load()
    >>> s["readmission.short_days"], s["long_stay.max_los"]
    (15, 60)
    """

    values: dict[str, Any]
    sources: dict[str, str]
    path: str
    sha256: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> AuditSettings:
        """Read and check a settings file (default ``codebooks/qc/audit-defaults.toml``)."""
        path = Path(path) if path is not None else data_path("qc", "audit-defaults.toml")
        try:
            raw = path.read_bytes()
            doc = tomllib.loads(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read the audit settings: {exc}", path=path) from None
        declared = doc.pop("sources", {})
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for section, keys in doc.items():
            if section not in _SCHEMA:
                raise _err(path, section, f"unknown section (known: {', '.join(_SCHEMA)})")
            for key, entry in keys.items():
                dotted = f"{section}.{key}"
                if key not in _SCHEMA[section]:
                    raise _err(path, dotted, f"unknown key (known: {', '.join(_SCHEMA[section])})")
                values[dotted], sources[dotted] = _entry(path, dotted, entry, _SCHEMA[section][key], declared)
        missing = [f"{s}.{k}" for s, ks in _SCHEMA.items() for k in ks if f"{s}.{k}" not in values]
        if missing:
            raise _err(path, missing[0], "missing")
        return cls(values, sources, str(path), hashlib.sha256(raw).hexdigest())

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def assumptions(self) -> list[str]:
        """The dotted keys whose value no document backs (reports list them)."""
        return sorted(k for k, s in self.sources.items() if s == "assumption")


def _err(path: Path, key: str, what: str) -> PolicyError:
    return PolicyError(f"{path}: {key}: {what}", path=path, key=key)


def _entry(path: Path, key: str, entry: Any, spec: tuple[str, str | None], declared: dict) -> tuple[Any, str]:
    kind, unit = spec
    if not isinstance(entry, dict) or "value" not in entry:
        raise _err(path, key, "expected a table {value, unit, source}")
    extra = set(entry) - {"value", "unit", "source", "clause", "note"}
    if extra:
        raise _err(
            path, key, f"unknown field {sorted(extra)[0]!r} (known: value, unit, source, clause, note)"
        )
    source = entry.get("source")
    if source is None:
        raise _err(path, key, "no source (name one of [sources] or 'assumption' with a note)")
    if source == "assumption" and not entry.get("note"):
        raise _err(path, key, "an assumption needs a note")
    if source != "assumption" and source not in declared:
        raise _err(path, key, f"source {source!r} is not declared under [sources]")
    if entry.get("unit") != unit:
        raise _err(path, key, f"unit must be {unit!r}, got {entry.get('unit')!r}")
    value = entry["value"]
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "float": isinstance(value, int | float) and not isinstance(value, bool) and value >= 0,
        "ints": isinstance(value, list) and all(isinstance(v, int) for v in value),
        "strs": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "bool": isinstance(value, bool),
        "choice": value in _CHOICES.get(key, ()),
    }[kind]
    if not ok:
        want = {
            "choice": f"one of {_CHOICES.get(key)}",
            "ints": "a list of integers",
            "strs": "a list of texts",
        }.get(kind, f"a {kind} ≥ 0")
        raise _err(path, key, f"{value!r} is not {want}")
    if unit == "share" and not 0 <= value <= 1:
        raise _err(path, key, f"{value!r} is a share: 0–1")
    return (float(value) if kind == "float" else value), source
