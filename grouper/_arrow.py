"""pyarrow without pandas, for a command that uses none (``drgdip group``): about 0.2 s of its start.

pyarrow imports pandas, when it is installed, from its compiled code: when it first converts Python or numpy
values, to ask whether they are pandas objects, and when it first infers a type or converts an array to numpy,
to learn pandas' missing-value objects (``NaT``, ``NA``). A grouping has no pandas object. :func:`defer_pandas`
lets those look-ups find no pandas; an ``import pandas`` written in Python (``Codebook.names``, a codebook
compile) still imports it, and pyarrow's own checks read it from then on. pyarrow's compiled code does not look
again: in that process it does not take pandas' ``NaT``/``NA`` objects inside Python lists for missing values,
which is why only a command that converts no pandas objects defers pandas.
"""

from __future__ import annotations

import dis
import importlib
import importlib.abc
import importlib.util
import os
import sys

__all__ = ["defer_pandas"]

_IMPORT_NAME = dis.opmap["IMPORT_NAME"]
_IMPORTLIB = os.path.dirname(importlib.__file__)


def defer_pandas() -> None:
    """pyarrow's look-ups of pandas find none until Python code imports pandas (a process that has imported
    pandas already is left as it is)."""
    if "pandas" in sys.modules or any(isinstance(f, _PandasForPythonImports) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _PandasForPythonImports())


class _PandasForPythonImports(importlib.abc.MetaPathFinder):
    """``import pandas`` in Python code imports pandas (and this finder leaves); a look-up from compiled code
    (pyarrow's) fails."""

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        if not _from_python(sys._getframe(1)):
            raise ModuleNotFoundError("pandas is not looked up for pyarrow here (grouper._arrow)", name=name)
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            raise ModuleNotFoundError("No module named 'pandas'", name=name)
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            run(module)
            try:
                import pyarrow.lib

                pyarrow.lib._pandas_api.pd  # noqa: B018 (pyarrow's Python-level checks read pandas now)
            except ImportError:  # a pandas this pyarrow does not support: pyarrow says so where it is used
                pass

        spec.loader.exec_module = exec_module
        return spec


def _from_python(frame) -> bool:
    """Whether the import under way was asked for by Python code: an ``import`` statement, or importlib's
    functions; not by compiled code called from Python (whose frame is at a call)."""
    while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith(_IMPORTLIB):
        return True
    return frame.f_code.co_code[frame.f_lasti] == _IMPORT_NAME
