"""Whether a command's numba kernels (编译内核) still have to be compiled: on the first run after an install, or
after numba's cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources) was emptied.

The command line uses it to say "compiling kernels (first run only)…" before the long silent first call, and
:func:`start_numba` to start numba without loading scipy.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["KERNELS", "needs_compiling", "start_numba"]

#: The kernels Python calls (``module:name``) per scheme; their helpers are compiled into them.
KERNELS = {
    "drg": ("grouper.strings:_fnv1a", "grouper.strings:_find", "grouper.drg._kernel:_group_range"),
    "dip": (
        "grouper.strings:_fnv1a",
        "grouper.strings:_find",
        "grouper.dip._kernel:procedure_lists",
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


def start_numba() -> None:
    """Load numba's array implementations without their BLAS probe.

    On its first compile or cache load numba imports them, and with them ``scipy.linalg`` when scipy is installed,
    only to choose how a jitted ``np.correlate`` multiplies: about 0.2 s of each command's start, for kernels that
    use no BLAS (a jitted ``np.dot`` still finds scipy when it is compiled). A process that has loaded scipy or
    these implementations already is left as it is.
    """
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        return
    sys.modules["scipy.linalg"] = None  # "import scipy.linalg.cython_blas" raises ImportError: "no BLAS"
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules["scipy.linalg"]
