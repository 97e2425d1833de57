"""payment.heap: a process that groups or settles in batches keeps the memory its batches free (glibc), and nothing
changes elsewhere."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

from payment import heap


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_glibc_takes_the_setting_in_a_process_of_its_own():
    code = "from payment.heap import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_the_cli_process_takes_arrow_off_mimalloc_and_keeps_a_users_choice():
    """Arrow's default pool (mimalloc) hands freed pages back at once: the CLI's process allocates from jemalloc (or
    the C heap) before pyarrow loads, and numpy's BLAS starts no threads; a user's ARROW_DEFAULT_MEMORY_POOL stays."""
    code = (
        "from payment.cli import own_process\n"
        "own_process()\n"
        "import pyarrow as pa\n"
        "import os\n"
        "print(pa.default_memory_pool().backend_name, os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    run = functools.partial(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    env.pop("OPENBLAS_NUM_THREADS", None)
    assert run(env=env).stdout.split() in (
        ["jemalloc", "1"],
        ["system", "1"],
    )  # (and numpy's BLAS on one thread)
    assert run(env={**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}).stdout.split()[0] == "mimalloc"


def test_arrow_without_its_build_headers_allocates_from_the_c_heap(monkeypatch):
    monkeypatch.setattr(heap.importlib.util, "find_spec", lambda name: None)
    assert heap.arrow_allocator() == "system"


def test_another_c_library_is_left_as_it_is(monkeypatch):
    def no_glibc(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(heap.os, "confstr", no_glibc)
    assert heap.keep_freed_memory() is False


def test_a_batch_command_of_its_own_process_keeps_freed_memory_and_freezes_its_imports():
    """``_app.batch_process`` (drgdip group and settle): only in the CLI's own process, both steps."""
    code = (
        "import gc\n"
        "import payment.heap\n"
        "from payment.cli import _app\n"
        "called = []\n"
        "payment.heap.keep_freed_memory = lambda: called.append(1)\n"
        "_app.batch_process()\n"
        "print(gc.get_freeze_count(), len(called))\n"
        "_app.OWN_PROCESS = True\n"
        "_app.batch_process()\n"
        "print(gc.get_freeze_count() > 0, len(called))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["0 0", "True 1"]
