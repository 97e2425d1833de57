"""Whether a command's numba kernels (编译内核) still have to be compiled: on the first run after an install, or
after numba's cache (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the sources) was emptied.

The command line uses it to say "compiling kernels (first run only)…" before the long silent first call, and
:func:`start_numba` to load cached kernels without preparing numba to compile, and to compile without loading
scipy.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator

__all__ = ["KERNELS", "needs_compiling", "start_numba"]

#: The kernels Python calls (``module:name``) in every grouping of a scheme; their helpers are compiled into them.
#: (DIP's segment reductions, ``segment_max`` and ``segment_min``, run only under some catalogues' rules and compile
#: in a fraction of a second when first needed: listed here, every run under a catalogue that never calls them
#: announced a first-run compile.)
KERNELS = {
    "drg": (
        "grouper.strings:_fnv1a",
        "grouper.strings:_find",
        "grouper.drg._kernel:_group_range",
        "grouper.drg._kernel:case_numbers",
        "grouper.drg._kernel:label_positions",
        "grouper.drg._kernel:los_invalid",
    ),
    "dip": (
        "grouper.strings:_fnv1a",
        "grouper.strings:_find",
        "grouper.dip._kernel:procedure_lists",
        "grouper.dip._kernel:_core_rows",
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


#: What :func:`start_numba`'s loading calls of numba's cache (numba 0.68 has them; another numba loads as it does).
_NUMBA_LOADING = ("_load_overload", "_guard_against_spurious_io_errors")


def start_numba() -> None:
    """Start numba for a command that runs kernels: a cached kernel loads without preparing numba to compile, and
    a kernel compiled on a first run does without numba's BLAS probe.

    - Before loading a kernel from its cache, numba refreshes its typing and target contexts: it imports and
      registers every implementation it can compile (cffi's parser and numba's array, typed-container, random and
      datetime implementations), about 0.1-0.15 s CPU of each command's start, while a cached kernel is machine code
      that needs none of them. After this call a kernel loads with numba's runtime started only; a kernel that is
      not in the cache is compiled as before (numba's compiler refreshes the contexts itself).
    - Numba's array implementations, imported before a compile, import ``scipy.linalg`` when scipy is installed,
      only to choose how a jitted ``np.correlate`` multiplies: about 0.2 s, for kernels that use no BLAS. They are
      imported first with ``scipy.linalg`` hidden (a jitted ``np.dot`` still finds scipy when it is compiled).
    """
    from numba.core import caching

    if getattr(caching.Cache.load_overload, "loads_without_refresh", False):
        return
    try:
        from numba.core.runtime import rtsys
    except ImportError:
        rtsys = None
    if rtsys is None or not all(hasattr(caching.Cache, name) for name in _NUMBA_LOADING):
        with _blas_hidden():  # another numba: it loads as it does, without the BLAS probe
            import numba.np.arraymath  # noqa: F401
        return

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)  # what a loaded kernel calls (allocation, reference counts)
        with _blas_hidden(), self._guard_against_spurious_io_errors():
            # (imports the modules a kernel's helpers live in, e.g. numba's array implementations)
            data = self._load_overload(sig, target_context)
            if data is None:  # numba compiles the kernel next, with its array implementations
                import numba.np.arraymath  # noqa: F401
        return data

    load_overload.loads_without_refresh = True
    caching.Cache.load_overload = load_overload


@contextlib.contextmanager
def _blas_hidden() -> Iterator[None]:
    """Numba's array implementations imported in this block do without BLAS: ``import scipy.linalg.cython_blas``
    raises ImportError (a process that has loaded either already is left as it is)."""
    if "scipy.linalg" in sys.modules or "numba.np.arraymath" in sys.modules:
        yield
        return
    sys.modules["scipy.linalg"] = None
    try:
        yield
    finally:
        if sys.modules.get("scipy.linalg", False) is None:
            del sys.modules["scipy.linalg"]
