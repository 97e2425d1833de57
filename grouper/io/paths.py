"""What a path is (a file, a folder, nothing), with the environment's refusals (a name too long, a loop of
links, no permission) as one error of the family naming the path, never a bare ``OSError``."""

from __future__ import annotations

import errno
import os
import stat
from typing import Literal

from grouper.errors import InputError, OutputError

__all__ = ["kind_of", "path_error", "shortened"]

_LONGEST = 120  # characters of a path shown whole in a message; longer ones keep their start and end
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def shortened(path: str | os.PathLike) -> str:
    """``path`` as text, its middle replaced by ``…`` when longer than 120 characters."""
    text = os.fspath(path)
    return text if len(text) <= _LONGEST else f"{text[:50]}…{text[-(_LONGEST - 51) :]}"


def path_error(
    path: str | os.PathLike, exc: OSError, error: type[InputError] | type[OutputError] = InputError
) -> InputError | OutputError:
    """``exc`` (an ``OSError`` about ``path``) as an error of the family: the path (shortened) and the reason."""
    what = "cannot read it" if error is InputError else "cannot write here"
    return error(f"{shortened(path)}: {what} ({exc.strerror or exc})", path=path)


def kind_of(
    path: str | os.PathLike, error: type[InputError] | type[OutputError] = InputError
) -> Literal["file", "folder", "other", "missing"]:
    """What ``path`` is, following links (``"missing"`` also when a parent is a file).

    Raises
    ------
    InputError or OutputError (``error``)
        The path cannot be looked at: a name too long, a loop of links, no permission…
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno in _ABSENT:
            return "missing"
        raise path_error(path, exc, error) from None
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
