"""Public names imported on first access (PEP 562), so the command line starts without loading the engine."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any],
    homes: Mapping[str, str],
    computed: Mapping[str, Callable[[], Any]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose public names live in ``homes`` (name → module).

    ``computed`` gives names whose value a function returns (e.g. ``__version__``). A value is kept in the
    package's namespace after its first access.
    """
    computed = computed or {}

    def __getattr__(name: str) -> Any:
        if name in computed:
            value = computed[name]()
        elif name in homes:
            value = getattr(importlib.import_module(homes[name]), name)
        else:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace["__all__"]})

    return __getattr__, __dir__
