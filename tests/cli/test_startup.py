"""Start-up (issue 14): ``--help`` and ``--version`` load neither the engine nor its heavy libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize(
    ("kind", "settings"),
    [("drg", {"scheme": "chs-drg-2.0"}), ("dip", {"scheme": "dip", "catalogue": "pingdingshan-2025"})],
)
def test_every_kernel_the_first_run_message_waits_for_runs_in_every_grouping(kind, settings):
    """``needs_compiling`` looks for the cache files of :data:`grouper.jit.KERNELS`: a kernel there that a grouping
    does not call never gets one, and every later run would announce a compile (DIP's segment reductions did)."""
    code = (
        "import importlib, numpy as np, pyarrow as pa\n"
        "from grouper.jit import KERNELS\n"
        "from grouper.pipeline import grouping\n"
        f"g = grouping(**{settings!r})\n"
        "t = pa.table({'case_id': ['1', '2'], 'sex': [1, 2], 'age_years': [40, 3], 'los_days': [3, 5],\n"
        "              'principal_dx': ['J18.900', 'K35.800'], 'principal_proc': [None, '47.0901']})\n"
        "g.run(t if g.prepare is None else g.prepare(t), np.zeros(2, bool))\n"
        f"kernels = [ref.partition(':') for ref in KERNELS[{kind!r}]]\n"
        "print(' '.join(n for m, _, n in kernels if not getattr(importlib.import_module(m), n).signatures))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


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


def _tiny_inputs(tmp_path: Path) -> list[Path]:
    """A 3-case discharge file as CSV and as Parquet."""
    table = pa.table(
        {
            "case_id": ["1", "2", "3"],
            "sex": ["1", "2", "1"],
            "age_years": ["40", "61", "7"],
            "los_days": ["3", "12", "5"],
            "principal_dx": ["J18.900", "K22.301", "I21.000"],
            "other_dx": ["K11.901", "", "I10.x00|E11.900"],
        }
    )
    pacsv.write_csv(table, tmp_path / "in.csv")
    pq.write_table(table, tmp_path / "in.parquet")
    return [tmp_path / "in.csv", tmp_path / "in.parquet"]


def test_a_drg_grouping_loads_only_what_it_uses(tmp_path):
    """``drgdip group`` of a CSV or Parquet file under CHS-DRG: no pandas (grouper._arrow), no pydantic (typer's
    option readers: payment.cli._coerce), no Excel reader, no DIP module, no BLAS (scipy); with its kernels in numba's cache (a second run), numba loads them without preparing
    to compile (neither its array implementations nor cffi's parser); the output is the same."""
    outputs = []
    for source in _tiny_inputs(tmp_path):
        out = tmp_path / f"{source.suffix[1:]}.parquet"
        _modules_after(["group", str(source), "-o", str(out), "-q"])  # (a first run compiles the kernels)
        outputs.append(pq.read_table(out))
        loaded = _modules_after(["group", str(source), "-o", str(out), "-q", "--force"])
        assert pq.read_table(out).equals(outputs[-1])
        unwanted = (
            "pandas",
            "pydantic",
            "openpyxl",
            "grouper.dip",
            "scipy.linalg",
            "numba.np.arraymath",
            "cffi",
        )
        assert [m for m in unwanted if m in loaded] == []
        assert "grouper.drg._kernel" in loaded
    assert outputs[0].equals(outputs[1])


def test_a_grouping_that_uses_pandas_imports_it_and_writes_the_same(tmp_path):
    """Where a grouping process uses pandas after all (group names looked up for ``--names``; a codebook compiled
    into an empty cache), Python's ``import pandas`` imports it: the output is the one the command gives inside
    a process that had pandas from the start (typer's runner)."""
    from typer.testing import CliRunner

    from payment.cli import app

    source = _tiny_inputs(tmp_path)[1]
    args = ["group", str(source), "--names", "--lang", "zh", "-q"]
    inside = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "inside.parquet")])
    assert inside.exit_code == 0, inside.output
    env = {**os.environ, "DRGDIP_CACHE": str(tmp_path / "empty-cache")}
    code = (
        "import sys\n"
        "from payment.cli import main\n"
        f"sys.argv = ['drgdip', *{[*args, '-o', str(tmp_path / 'own.parquet')]!r}]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('pandas' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stderr.split()[-1] == "True"
    assert pq.read_table(tmp_path / "own.parquet").equals(pq.read_table(tmp_path / "inside.parquet"))


def test_deferred_pandas_is_imported_by_python_code_and_read_by_pyarrow_then():
    """``grouper._arrow.defer_pandas``: a look-up of pandas from compiled code fails, ``import pandas`` in Python
    works, and pyarrow then converts pandas objects as in a process that imported pandas first."""
    probe = (
        "import pandas as pd, pyarrow as pa\n"
        "frame = pd.DataFrame({'c': pd.Categorical(['x', 'y', 'x']), 's': pd.array(['a', None, 'b'], 'string'),\n"
        "    't': pd.to_datetime(['2020-01-01', None, '2020-01-02']).tz_localize('Asia/Shanghai')})\n"
        "table = pa.Table.from_pandas(frame)\n"
        "print(table.schema, table.to_pylist(), pa.array(frame['c']).type, pa.array(pd.Series(['a', None])))\n"
    )
    deferred = (
        "import ctypes, sys\n"
        "import numpy as np, pyarrow as pa\n"
        "from grouper._arrow import defer_pandas\n"
        "defer_pandas()\n"
        "pa.array(np.arange(3)).to_numpy(zero_copy_only=False)\n"
        "assert 'pandas' not in sys.modules\n"
        "ctypes.pythonapi.PyImport_ImportModule.restype = ctypes.py_object\n"
        "try:\n"
        "    ctypes.pythonapi.PyImport_ImportModule(b'pandas')\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "assert 'pandas' not in sys.modules\n"
    )
    outputs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for code in (probe, deferred + probe)
    ]
    assert outputs[0] == outputs[1] and "dictionary<values=" in outputs[0]


def test_a_settlement_without_history_loads_no_pandas_and_writes_the_same(tmp_path):
    """``drgdip settle`` in its own process (no ``--history``): pandas deferred, not loaded; the settlement files
    are the ones the command writes inside a process that had pandas (typer's runner)."""
    from typer.testing import CliRunner

    from payment.cli import app
    from tests.payment import payment_synth as synth

    cases, hospitals = synth.region(40, 2, seed=3, codes=True)
    grouping = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]
    plain = pa.table(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
        names=cases.column_names,
    )
    pq.write_table(plain.drop_columns(grouping[1:]), tmp_path / "discharges.parquet")
    pq.write_table(plain.select(grouping), tmp_path / "grouped.parquet")
    pacsv.write_csv(hospitals, tmp_path / "hospitals.csv")
    args = [
        "settle",
        "--cases",
        str(tmp_path / "grouped.parquet"),
        "--discharges",
        str(tmp_path / "discharges.parquet"),
    ]
    args += [
        "--hospitals",
        str(tmp_path / "hospitals.csv"),
        "--policy",
        str(ROOT / "codebooks/policies/demo-2025.toml"),
    ]
    inside = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "inside"), "-q"])
    assert inside.exit_code == 0, inside.output
    loaded = _modules_after([*args, "--out", str(tmp_path / "own"), "-q"])
    assert "pandas" not in loaded and "payment.kernels" in loaded
    files = sorted(p.name for p in (tmp_path / "inside").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "own").iterdir()) and "cases.parquet" in files
    for name in files:
        assert (tmp_path / "own" / name).read_bytes() == (tmp_path / "inside" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--workers", "abc"], "Invalid value for '--workers': Input should be a valid integer"),
        (
            ["--header-row", "0"],
            "Invalid value for '--header-row': Input should be greater than or equal to 1",
        ),
        (["--names", "--header-row", "2"], None),
    ],
)
def test_options_are_read_by_typers_readers_when_given(tmp_path, option, said):
    """payment.cli._coerce: an option given a value that is not text or a path is read by typer's own reader (its
    message on a wrong value); text and paths arrive as typer gives them (str, Path, a list of Paths)."""
    from typer.testing import CliRunner

    from payment.cli import app

    seen = {}
    source = _tiny_inputs(tmp_path)[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            "grouper.pipeline.group_to_file",
            lambda inputs, out, **kw: seen.update(inputs=inputs, out=out, **kw),
        )
        result = CliRunner().invoke(
            app, ["group", str(source), "-o", str(tmp_path / "o.csv"), "--keep", "a", *option]
        )
    if said:
        assert result.exit_code == 2 and said in " ".join(result.output.replace("│", " ").split())
    else:
        assert seen["inputs"] == [source] and seen["out"] == tmp_path / "o.csv" and seen["keep"] == ["a"]
        assert seen["layout"].header_row == 2 and seen["names"] is True


_KERNELS = """
import numpy as np
from numba import njit


@njit(cache=True)
def total(a):
    out = np.empty(1)
    out[0] = 0.0
    for x in a:
        out[0] += x * x
    return out


@njit(cache=True)
def array_sum(a):
    return np.sum(a)
"""


def test_kernels_compile_and_load_from_the_cache_without_scipy(tmp_path):
    """``grouper.jit.start_numba``: a kernel not in numba's cache is compiled without numba's BLAS probe (no
    scipy.linalg; numba's array implementations are imported); once cached it loads without them; a cached kernel
    that uses them loads them without scipy.linalg too; the answers are the same both times, and a jitted
    ``np.dot`` compiled after still works."""
    pytest.importorskip("scipy")
    (tmp_path / "tiny_kernels.py").write_text(_KERNELS, encoding="utf-8")
    code = (
        "import sys, numba, numpy as np\n"
        "from grouper.jit import start_numba\n"
        "start_numba()\n"
        "import tiny_kernels\n"
        "print(tiny_kernels.total(np.arange(4.0))[0], 'numba.np.arraymath' in sys.modules)\n"
        "print(tiny_kernels.array_sum(np.arange(4.0)), 'scipy.linalg' in sys.modules)\n"
        "print(numba.njit(lambda a: np.dot(a, a))(np.ones(3)))\n"
    )
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout
        for _ in range(2)
    ]
    assert runs[0].split() == ["14.0", "True", "6.0", "False", "3.0"]  # compiled
    assert runs[1].split() == ["14.0", "False", "6.0", "False", "3.0"]  # loaded from the cache


def test_a_numba_without_the_loading_it_expects_starts_as_before():
    """``start_numba`` with a numba whose cache lacks what it replaces: numba's own loading is left as it is
    (with the BLAS probe skipped, as before), and kernels still run."""
    pytest.importorskip("scipy")
    code = (
        "import sys, numpy as np\n"
        "from numba.core import caching\n"
        "import grouper.jit\n"
        "grouper.jit._NUMBA_LOADING = ('_a_method_numba_does_not_have',)\n"
        "grouper.jit.start_numba()\n"
        "import grouper.batch\n"
        "print(grouper.batch._fnv1a(np.array([0, 1]), np.array([97], np.uint8))[0] > 0,\n"
        "      'numba.np.arraymath' in sys.modules, 'scipy.linalg' in sys.modules,\n"
        "      getattr(caching.Cache.load_overload, 'loads_without_refresh', False))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True", "False", "False"]


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
