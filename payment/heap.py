"""The C heap of a process that groups or settles in batches: freed blocks kept for the next batch (堆内存复用).

glibc hands a freed block larger than its mmap threshold (128 KiB at first) back to the system, and gives the free
top of its heap back too (above 128 KiB). The next batch's arrays (4 MiB a column of 524,288 cases) then land on
fresh pages, each zeroed by the kernel when first touched: on 10M cases about 0.5 s of system CPU, a tenth of what the
settlement's CLI uses (and as much of a grouping's, batches of 262,144 cases). :func:`keep_freed_memory` raises both limits, so that a batch reuses what the one before it
freed. Memory stays bounded by what one batch's work holds at once (its high-water mark is kept rather than handed
back: peak RSS about 90 MiB higher on 10M cases, the same on 1M and on 10M).

Arrow's buffers then come from jemalloc (else from the same C heap): Arrow's default pool, mimalloc, hands freed pages
back within milliseconds, and on 10M grouped cases about 0.6 s of system CPU (of 7.5 s) went to zeroing pages that
the batch before had used; jemalloc keeps them for a second, and its peak RSS is the lowest of the three.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["keep_freed_memory"]

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: Blocks up to this size come from the heap, not from a mapping of their own.
_MAPPED_FROM = 64 << 20
#: Free memory at the top of the heap kept up to this size.
_KEPT = 512 << 20
#: What the heap grows by beyond a request (fewer, larger requests to the system).
_PAD = 16 << 20


def keep_freed_memory() -> bool:
    """Keep the blocks a batch frees for the next one (glibc's ``mallopt``), Arrow's buffers too (from jemalloc
    from now on): for a process of its own, as the CLI runs (it changes how the whole process
    allocates). Returns whether the C library took the setting (only glibc does; elsewhere nothing changes)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # (musl, macOS, Windows: another allocator)
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = all(
        mallopt(k, v)
        for k, v in ((_M_MMAP_THRESHOLD, _MAPPED_FROM), (_M_TRIM_THRESHOLD, _KEPT), (_M_TOP_PAD, _PAD))
    )
    if kept:
        _arrow_keeps_freed_memory()
    return kept


def _arrow_keeps_freed_memory() -> None:
    """Arrow's buffers from jemalloc from now on, else from the C heap (Arrow's system pool)."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        pool = pa.system_memory_pool()
    pa.set_memory_pool(pool)
