"""Option values read as typer reads them, pydantic imported only for a value that needs it: about 0.1 s of a
command's start.

typer reads each option's value through a pydantic adapter, which it builds, importing pydantic, for every option
of the command run, given or not. :class:`Command` gives each option a reader that leaves an option not given to
typer's handling (no adapter), reads text as given and a path as typer does (typer's own checks of a path), and
builds typer's own reader for any other value (a number, a choice…) when one comes. With a typer whose parameters
are built otherwise, the command is typer's own.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, get_args, get_origin

import typer.core

__all__ = ["Command", "Group"]


def _readers(params) -> None:
    """Give each typer option not read yet a :func:`_reader_class` reader."""
    try:
        reader = _reader_class()
    except (ImportError, AttributeError):  # another typer: its own readers
        return
    for param in params:
        if getattr(param, "_runtime_param", False) is None and param.type_descriptor.file_annotation is None:
            descriptor = param.type_descriptor
            param._runtime_param = reader(
                annotation=descriptor.annotation, parameter_info=descriptor.parameter_info
            )


class _Reading:
    """Options read by :func:`_readers` (mixed in before typer's command or group class)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _readers(params)
        return params


class Command(_Reading, typer.core.TyperCommand):
    """A typer command whose options' readers are built when a value needs them."""


class Group(_Reading, typer.core.TyperGroup):
    """The typer app's group (its own options: ``--version``, ``--help``), read as :class:`Command` reads."""


@functools.cache
def _reader_class() -> type:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_path

    class Reader(RuntimeParam):
        """Text as given, a path as typer checks it; typer's own reader for any other value."""

        def _coerce_value(self, value: Any, param, ctx) -> Any:  # (a value given: typer handles None)
            info, annotation = self.parameter_info, self.annotation
            listed = get_origin(annotation) is list and len(get_args(annotation)) == 1
            item = get_args(annotation)[0] if listed else annotation
            values = list(value) if listed and isinstance(value, list | tuple) else [value]
            plain = info.parser is None and (item is str or (item is Path and info.path_type in (None, Path)))
            if (
                plain
                and (listed or not isinstance(value, list | tuple))
                and all(isinstance(v, str) for v in values)
            ):
                if item is Path:
                    values = [
                        coerce_cli_path(Path(v), info, path_type=Path, param=param, ctx=ctx) for v in values
                    ]
                return values if listed else values[0]
            param._runtime_param = build_runtime_param(param.type_descriptor)
            return param._runtime_param.coerce(value, param=param, ctx=ctx)

    return Reader
