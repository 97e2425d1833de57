"""Readable results (可读输出): group names beside the codes, case statuses as words in Chinese or English, and the
input columns a user asked to keep (病案号, 科室, 总费用…) beside ``case_id``.

The words are data: ``codebooks/records/status_labels.csv`` (``status,zh,en``), one row per :class:`Status` name,
each naming the field that decided the status, and ``reason_labels.csv`` (``key,en,zh``), the pieces the groupers
build their ``--explain`` reasons from. Names come from the codebook (MDC/ADRG/DRG) or the catalogue (DIP
groups); the caller passes them as functions of the codes, so this module knows no scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.errors import InputError, SettingsError
from grouper.resources import text_columns
from grouper.schema import FEE_COLUMNS

__all__ = ["LANGS", "MONEY_COLUMNS", "readable", "reason_words", "status_labels"]

#: Languages of the words in outputs.
LANGS = ("zh", "en")
#: Canonical columns holding yuan (元): written with two decimals in Excel.
MONEY_COLUMNS = frozenset(("total_cost", "fund_paid", "patient_paid", *FEE_COLUMNS))

NameLookup = Callable[[np.ndarray], np.ndarray]


@cache
def _words(file: str, key: str, lang: str) -> dict[str, str]:
    """``key`` column → the ``lang`` column of ``codebooks/records/<file>``."""
    if lang not in LANGS:
        raise SettingsError(f"language must be one of {', '.join(LANGS)}, not {lang!r}", key="lang")
    table = text_columns("records", file)
    return dict(zip(table[key], table[lang], strict=True))


def status_labels(lang: str) -> dict[str, str]:
    """Status name → its words in ``lang`` (``zh`` or ``en``), from ``status_labels.csv``."""
    return dict(_words("status_labels.csv", "status", lang))


def reason_words(lang: str) -> dict[str, str]:
    """The pieces the groupers build ``--explain`` reasons from, in ``lang`` (``reason_labels.csv``: key → words)."""
    return dict(_words("reason_labels.csv", "key", lang))


def _label(status: pa.ChunkedArray | pa.Array, lang: str) -> pa.Array:
    words = status_labels(lang)
    keys = pa.array(list(words), pa.string())
    text = status.cast(pa.string())
    idx = pc.index_in(text, value_set=keys)
    return pc.if_else(pc.is_valid(idx), pc.take(pa.array(list(words.values()), pa.string()), idx), text)


def _names(codes: pa.ChunkedArray | pa.Array, lookup: NameLookup) -> pa.Array:
    text = codes.cast(pa.string())
    values = np.asarray(text.fill_null("").to_numpy(zero_copy_only=False), dtype=object)
    names = lookup(values)
    return pc.if_else(pc.is_valid(text), pa.array(np.asarray(names, dtype=object), pa.string()), None)


def readable(
    result: pa.Table,
    *,
    names: Mapping[str, NameLookup] | None = None,
    lang: str | None = None,
    statuses: tuple[str, ...] = (),
    kept: pa.Table | None = None,
) -> pa.Table:
    """A result table with ``<code>_name`` after each code column of ``names``, ``<status>_label`` after each
    column of ``statuses`` (in ``lang``; none when None) and the ``kept`` columns after ``case_id``.

    Raises
    ------
    InputError
        A kept column has the name of a result column.
    """
    columns: list[tuple[str, pa.Array | pa.ChunkedArray]] = []
    taken = set(result.column_names)
    for name, col in zip(result.column_names, result.columns, strict=True):
        columns.append((name, col))
        if names and name in names:
            columns.append((f"{name}_name", _names(col, names[name])))
        if lang and name in statuses:
            columns.append((f"{name}_label", _label(col, lang)))
        if name == "case_id" and kept is not None:
            clash = [k for k in kept.column_names if k in taken]
            if clash:
                raise InputError(
                    f"kept column {clash[0]!r} has the name of a result column; rename it (--rename)",
                    column=clash[0],
                )
            columns.extend(zip(kept.column_names, kept.columns, strict=True))
    return pa.table(dict(columns))
