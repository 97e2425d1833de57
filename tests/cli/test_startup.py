"""Start-up (issue 14): ``--help`` and ``--version`` load neither the engine nor its heavy libraries."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("numpy", "pandas", "numba", "pyarrow", "openpyxl", "matplotlib", "grouper.io.discharges")


def _modules_after(args: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``drgdip ARGS`` (exit code checked)."""
    code = (
        "import sys\n"
        "from payment.cli import main\n"
        f"sys.argv = ['drgdip', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "print('\\n'.join(sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), check=True
    )
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"]]
    + [[c, "--help"] for c in ("group", "settle", "audit", "catalog", "weights", "synth", "demo", "policy")],
)
def test_help_and_version_import_no_heavy_library(args):
    loaded = _modules_after(args)
    assert not [m for m in HEAVY if m in loaded]


def test_settle_help_states_the_engine_batch_size():
    from typer.testing import CliRunner

    from payment.cli import app
    from payment.settle import BATCH_SIZE

    result = CliRunner().invoke(app, ["settle", "--help"], env={"COLUMNS": "200"})
    assert f"default {BATCH_SIZE}" in result.output


def test_package_names_resolve_lazily():
    import grouper
    import grouper.io
    import payment
    import payment.audit.core  # imports the submodule payment.audit: the name stays the function
    import payment.pipeline  # imports payment.settle

    assert callable(payment.audit) and callable(payment.settle)
    assert sorted(grouper.__all__) == sorted(set(grouper.__all__)) and grouper.__version__
    for package in (grouper, grouper.io, payment):
        for name in package.__all__:
            assert getattr(package, name) is not None
    with pytest.raises(AttributeError):
        grouper.no_such_name  # noqa: B018


def test_a_cold_kernel_cache_is_detected(tmp_path):
    from grouper.jit import KERNELS, needs_compiling

    code = "from grouper.jit import KERNELS, needs_compiling; print(needs_compiling(KERNELS['drg']))"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache: a first run
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "True"
    import grouper.batch

    grouper.batch._fnv1a(np.zeros(1, np.int64), np.zeros(0, np.uint8))  # compiled (or loaded) in this process
    assert not needs_compiling(("grouper.batch:_fnv1a",))
    assert set(KERNELS) == {"drg", "dip"}


def test_group_says_it_compiles_on_a_first_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from payment.cli import app

    monkeypatch.setattr("grouper.jit.needs_compiling", lambda kernels: True)
    source = tmp_path / "in.csv"
    source.write_text("case_id,sex,age_years,los_days,principal_dx\n1,1,40,3,J18.900\n", encoding="utf-8")
    args = ["group", str(source), "-o", str(tmp_path / "out.parquet")]
    assert "compiling kernels (first run only)…" in CliRunner().invoke(app, args).output
    quiet = CliRunner().invoke(app, [*args, "-q", "--force"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_a_grouping_run_skips_numbas_blas_probe(tmp_path):
    """``grouper.jit.start_numba``: numba's start does not import scipy.linalg, and a jitted np.dot still works."""
    pytest.importorskip("scipy")
    source = tmp_path / "in.csv"
    source.write_text("case_id,sex,age_years,los_days,principal_dx\n1,1,40,3,J18.900\n", encoding="utf-8")
    loaded = _modules_after(["group", str(source), "-o", str(tmp_path / "out.parquet"), "-q"])
    assert "numba.np.arraymath" in loaded and "scipy.linalg" not in loaded
    code = (
        "import numba, numpy as np\n"
        "from grouper.jit import start_numba\n"
        "start_numba()\n"
        "print(numba.njit(lambda a: np.dot(a, a))(np.ones(3)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "3.0"


def test_the_exit_leaves_the_objects_to_the_process():
    """After the command, every object is frozen out of the garbage collector: the interpreter's exit does not
    walk them all again (about 0.3-0.4 s CPU after a grouping)."""
    code = (
        "import atexit, gc, sys\n"
        "from payment.cli import main\n"
        "atexit.register(lambda: print(gc.get_freeze_count(), file=sys.stderr))\n"
        "sys.argv = ['drgdip', '--version']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    assert int(done.stderr.split()[-1]) > 1000
