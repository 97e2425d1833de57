"""Start-up (issue 14): ``--help`` and ``--version`` load neither the engine nor its heavy libraries."""

from __future__ import annotations

import os
import subprocess
import sys

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
    + [[c, "--help"] for c in ("group", "settle", "audit", "catalog", "weights", "synth", "demo")],
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
