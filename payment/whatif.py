"""What-if settings (情景测算): ``key=value`` changes to a policy, validated as the file is (``drgdip settle --set``).

A value is read as a TOML value (``2.5``, ``"fixed"``, ``[0.2, 0.3, 0.5]``, ``{1 = 0.8, 2 = 0.9, 3 = 1.0}``); a
bare word that is not TOML is a string (``point_value.regime=fixed``). A key the file already values keeps its
unit and source; a key it does not write is added with its unit and ``source = "assumption"``, so the settlement's
``assumptions`` name every key a scenario set.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from grouper.errors import PolicyError
from payment.policy import POOLS, Policy, _ByKey, _Monthly
from payment.policy_schema import spec_keys

__all__ = ["parse_setting", "with_settings"]

#: The note a key added by a what-if carries (listed among the settlement's assumptions).
NOTE = "what-if setting (drgdip settle --set)"


def parse_setting(text: str) -> tuple[str, Any]:
    """``"deviation.high.ratio=2.5"`` → ``("deviation.high.ratio", 2.5)``."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise PolicyError(f"--set {text!r}: expected KEY=VALUE (deviation.high.ratio=2.5)")
    try:
        return key, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key, value


def _kind(key: str) -> Any:
    parts = key.split(".")
    generic = ".".join("<pool>" if p in POOLS else p for p in parts)
    return dict(spec_keys()).get(generic)


def with_settings(policy: Policy, settings: Iterable[str]) -> Policy:
    """The policy with each ``key=value`` applied, re-validated (:meth:`Policy.replace`); a problem names the key."""
    changes: dict[str, Any] = {}
    for text in settings:
        key, value = parse_setting(text)
        kind = _kind(key)
        if kind is None:
            raise PolicyError(f"--set {key}: not a policy key (docs/policy.md lists them)")
        node: Any = policy.raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        field = (
            kind.field if isinstance(kind, _ByKey) else "values" if isinstance(kind, _Monthly) else "value"
        )
        if isinstance(node, Mapping) and field in node:
            changes[key] = {**node, field: value} if field != "value" else value
        elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            changes[key] = [{"source": "assumption", "note": NOTE} | r for r in value]
        else:
            unit = {"unit": kind.unit} if getattr(kind, "unit", None) is not None else {}
            changes[key] = {field: value, **unit, "source": "assumption", "note": NOTE}
    try:
        return policy.replace(changes) if changes else policy
    except PolicyError as exc:
        raise PolicyError(f"--set: {exc}") from None
