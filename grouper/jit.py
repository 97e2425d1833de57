"""Whether a command's numba kernels (编译内核) still have to be compiled: on the first run after an install, or
after numba's cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources) was emptied.

The command line uses it to say "compiling kernels (first run only)…" before the long silent first call.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["KERNELS", "needs_compiling"]

#: The kernels Python calls (``module:name``) per scheme; their helpers are compiled into them.
KERNELS = {
    "drg": ("grouper.batch:_fnv1a", "grouper.drg._kernel:_group_range"),
    "dip": (
        "grouper.batch:_fnv1a",
        "grouper.dip._kernel:_core_rows",
        "grouper.dip._kernel:segment_max",
        "grouper.dip._kernel:segment_min",
    ),
}


def needs_compiling(kernels: tuple[str, ...]) -> bool:
    """Whether any of ``kernels`` has neither a version compiled in this process nor an entry in numba's cache.

    A cache entry made stale by a changed source is not detected (numba recompiles it silently).
    """
    for ref in kernels:
        module, _, name = ref.partition(":")
        kernel = getattr(importlib.import_module(module), name)
        if kernel.signatures:
            continue
        index = getattr(getattr(getattr(kernel, "_cache", None), "_cache_file", None), "_index_path", None)
        if index is None or not os.path.exists(index):
            return True
    return False
