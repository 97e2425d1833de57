"""The policy's keys for people and editors (政策模板): a commented template and a JSON Schema.

Both are generated from the declarations :class:`payment.policy.Policy` validates with (``_SPEC``), so they cannot
drift from the loader; each key's Chinese and English wording and the formula it feeds are data
(``codebooks/policies/keys.csv``: key, zh, en, feeds, and the template value for a DIP and a DRG policy, ``-``
where the scheme takes no such key). ``<pool>`` in a key stands for ``all``, ``employee`` or ``resident``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from grouper.errors import PolicyError
from grouper.resources import data_path
from payment.bands import Bands
from payment.policy import (
    _R,
    _REQUIRED,
    _SPEC,
    _YEARS,
    POOLS,
    ByKey,
    _Banded,
    _Bool,
    _ByKey,
    _Choice,
    _List,
    _Monthly,
    _Num,
    _Rows,
)

__all__ = ["TEMPLATE_SOURCE", "key_reference", "keys", "schema", "schema_text", "spec_keys", "template"]

#: The ``[sources]`` entry every template value cites until the region's document replaces it.
TEMPLATE_SOURCE = "template"
_SCHEMES = ("dip", "drg")


@cache
def keys() -> Mapping[str, Mapping[str, str]]:
    """The key descriptions (``codebooks/policies/keys.csv``) by dotted key."""
    path = data_path("policies", "keys.csv")
    with path.open(encoding="utf-8", newline="") as f:
        return {row["key"]: row for row in csv.DictReader(f)}


def spec_keys(spec: Mapping[str, Any] = _SPEC, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf key the loader declares, in file order, as (dotted key with ``<pool>``, field kind)."""
    for name, kind in spec.items():
        if name in POOLS:
            if name != POOLS[0]:
                continue
            name = "<pool>"
        if isinstance(kind, dict):
            yield from spec_keys(kind, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", kind


def _unit(kind: Any) -> str | None:
    return getattr(kind, "unit", None)


def _toml(value: Any) -> str:
    """A default value as TOML."""
    if isinstance(value, Bands):
        return "[]"
    if isinstance(value, ByKey):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return repr(value)


def _describe(key: str, kind: Any) -> str:
    d = keys()[key]
    parts = [f"{d['zh']} — {d['en']}."]
    if (unit := _unit(kind)) is not None:
        parts.append(f"unit 单位: {unit}.")
    if isinstance(kind, _Choice):
        parts.append(f"one of 可选: {', '.join(kind.choices)}.")
    parts.append(f"feeds 用于: {d['feeds']}.")
    return " ".join(parts)


def _entry(name: str, kind: Any, value: str) -> str:
    """One key written as the loader wants it: a valued table, a by-key table, or rows written as they are."""
    if isinstance(kind, _Rows | _Banded):
        return f"{name} = {value}"
    unit = f', unit = "{kind.unit}"' if _unit(kind) is not None else ""
    field = kind.field if isinstance(kind, _ByKey) else ("values" if isinstance(kind, _Monthly) else "value")
    return f'{name} = {{ {field} = {value}{unit}, source = "{TEMPLATE_SOURCE}" }}'


def template(scheme: str, region: str, year: int) -> str:
    """A complete policy for ``scheme`` (dip or drg) that :meth:`Policy.load` accepts: every key the scheme takes,
    with its meaning in Chinese and English, its unit and the formula it feeds; values the loader needs are
    filled with placeholders citing the ``template`` source, the others are commented out at their default."""
    if scheme not in _SCHEMES:
        raise PolicyError(f"scheme: {scheme!r} is not one of {', '.join(_SCHEMES)}")
    lines = [
        f"# Payment policy (支付政策) of {region} {year}, {scheme.upper()} — written by `drgdip policy init`.",
        '# Replace every value citing source = "template" with the region\'s document (declare it under [sources]',
        "# and cite it, with the clause), then run `drgdip policy check FILE`. Formulas: docs/formulas.md;",
        "# every key: docs/policy.md. A commented key is at its engine default (listed among the assumptions).",
        "",
        "[policy]",
        f"region    = {json.dumps(region, ensure_ascii=False)}",
        f"year      = {int(year)}",
        f'scheme    = "{scheme}"',
        f"effective = {{ start = {int(year):04d}-01-01, end = {int(year):04d}-12-31 }}",
    ]
    if scheme == "dip":
        lines.append('# catalogue = "<region>-<year>"   # DIP 病种目录 built by `drgdip catalog`')
    lines += [
        "",
        "[sources]",
        f'{TEMPLATE_SOURCE} = {{ title = "drgdip policy template placeholder — not a document (模板占位值)" }}',
        '# doc-1 = { title = "…办法", doc = "…〔2025〕…号", url = "https://…" }',
    ]
    section = None
    for key, kind in spec_keys():
        example = keys()[key][scheme]
        if example == "-":
            continue
        table, name = key.replace("<pool>", POOLS[0]).rsplit(".", 1)
        if table != section:
            lines += ["", f"[{table}]"]
            section = table
        lines.append(f"# {_describe(key, kind)}")
        if example:
            lines.append(_entry(name, kind, example))
        elif isinstance(kind, _Monthly):
            lines.append("# " + _entry(name, kind, f"{{ {int(year):04d}-01 = … }}"))
        elif kind.default is not None and not isinstance(kind, _Rows):
            lines.append("# " + _entry(name, kind, _toml(kind.default)))
        else:
            lines.append("# " + _entry(name, kind, "…"))
    return "\n".join(lines) + "\n"


# --- JSON Schema ----------------------------------------------------------------------------------------------

_PLAIN = {
    "num": {"type": "number", "minimum": 0},
    "int": {"type": "integer", "minimum": 0},
    "share": {"type": "number", "minimum": 0, "maximum": 1},
}
_CITE = {
    "source": {"type": "string", "description": 'an entry of [sources], or "assumption" with a note'},
    "clause": {"type": "string"},
    "note": {"type": "string"},
}


def _valued(value: dict[str, Any], kind: Any, field: str = "value") -> dict[str, Any]:
    props = {field: value, **_CITE}
    if (unit := _unit(kind)) is not None:
        props["unit"] = {"const": unit}
    return {
        "type": "object",
        "properties": props,
        "required": [field, "source"] + (["unit"] if unit is not None else []),
        "additionalProperties": False,
    }


def _number(kind: _Num) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "integer" if kind.integer else "number"}
    lo, hi = (0, 1) if kind.unit == "share" else (kind.lo, kind.hi)
    if lo is not None:
        out["exclusiveMinimum" if kind.lo_open else "minimum"] = lo
    if hi is not None:
        out["maximum"] = hi
    return out


def _row_column(kind: Any) -> dict[str, Any]:
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind == "str":
        return {"type": "string", "minLength": 1}
    if kind == "strs":
        return {"type": "array", "items": {"type": "string"}}
    if kind == "by_level":
        return {
            "type": "object",
            "propertyNames": {"enum": ["1", "2", "3"]},
            "additionalProperties": _PLAIN["num"],
        }
    return {"enum": list(kind)}


def _rows(columns: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {c: _row_column(k[0]) for c, k in columns.items()} | _CITE,
            "required": [c for c, k in columns.items() if k[1] is _REQUIRED] + ["source"],
            "additionalProperties": False,
        },
    }


def _kind_schema(kind: Any) -> dict[str, Any]:
    if isinstance(kind, _Num):
        return _valued(_number(kind), kind)
    if isinstance(kind, _Choice):
        return _valued({"enum": list(kind.choices)}, kind)
    if isinstance(kind, _Bool):
        return _valued({"type": "boolean"}, kind)
    if isinstance(kind, _List):
        item = {"type": "number"} if kind.item is float else {"type": "string"}
        return _valued({"type": "array", "items": item}, kind)
    if isinstance(kind, _Monthly):
        months = {
            "type": "object",
            "patternProperties": {r"^\d{4}-\d{2}$": {"type": "number", "exclusiveMinimum": 0}},
        }
        return _valued(months | {"additionalProperties": False}, kind, "values")
    if isinstance(kind, _ByKey):
        names = [str(k) for k in kind.keys]
        by = {"type": "object", "propertyNames": {"enum": names}, "additionalProperties": {"type": "number"}}
        return _valued(by, kind, kind.field)
    if isinstance(kind, _Banded):
        return _rows({"from": _R("num"), "to": _R("num", None), kind.value: _R(kind.kind)})
    if isinstance(kind, _Rows):
        return _rows(kind.columns)
    raise TypeError(f"no schema for {kind!r}")  # a new field kind needs its schema here


def _section(spec: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, kind in spec.items():
        key = f"{prefix}{'<pool>' if name in POOLS else name}"
        if isinstance(kind, dict):
            props[name] = _section(kind, f"{key}.")
            continue
        d = keys()[key]
        props[name] = _kind_schema(kind) | {"description": f"{d['zh']} — {d['en']}. Feeds: {d['feeds']}"}
    return {"type": "object", "properties": props, "additionalProperties": False}


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a policy file as TOML editors read it (Even Better TOML, Taplo)."""
    out = _section(_SPEC, "")
    out["properties"] = {
        "policy": {
            "type": "object",
            "properties": {
                "region": {"type": "string"},
                "year": {"type": "integer", "minimum": _YEARS[0], "maximum": _YEARS[1]},
                "scheme": {"enum": list(_SCHEMES)},
                "catalogue": {"type": "string"},
                "effective": {"type": "object", "required": ["start", "end"]},
                "description": {"type": "string"},
            },
            "required": ["region", "year", "scheme", "effective"],
            "additionalProperties": False,
        },
        "sources": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in ("title", "doc", "url", "clause", "note")},
                "required": ["title"],
                "additionalProperties": False,
            },
        },
        **out["properties"],
    }
    out["required"] = ["policy", "sources"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://drgdip/policy.schema.json",
        "title": "drgdip payment policy (支付政策)",
        **out,
    }


def schema_text() -> str:
    """The schema as shipped (``codebooks/policies/policy.schema.json``): sorted keys, two-space indent."""
    return json.dumps(schema(), ensure_ascii=False, indent=2) + "\n"


def key_reference() -> str:
    """The policy key reference of ``docs/policy.md`` (a Markdown table, one row per key, from the declarations)."""
    rows = ["| key | 含义 | meaning | unit / values | default | feeds |", "|---|---|---|---|---|---|"]
    for key, kind in spec_keys():
        d = keys()[key]
        values = ", ".join(kind.choices) if isinstance(kind, _Choice) else (_unit(kind) or "")
        required = getattr(kind, "required", False)
        default = "required" if required else ("" if kind.default is None else f"`{_toml(kind.default)}`")
        schemes = "" if "-" not in (d["dip"], d["drg"]) else (" (DIP)" if d["drg"] == "-" else " (DRG)")
        cells = [f"`{key}`{schemes}", d["zh"], d["en"], values, default, d["feeds"]]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
