"""Monthly audit deductions (月度审核扣款): read, validate and lay out per hospital and month.

docs/formulas.md §6: the deduction comes off the month's pre-settlement.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa

from grouper.errors import InputError
from payment.plausibility import check_hard

__all__ = ["deduction_grid", "parse_deductions"]

_MONTH = re.compile(r"\d{4}-\d{2}")


def parse_deductions(
    table: pa.Table,
    hospital_ids: Sequence[str],
    policy,
    *,
    first_row: int = 1,
    path: str | os.PathLike | None = None,
) -> dict:
    """Monthly audit deductions (该月审核扣款) in fen by ``(hospital_id, month)``, validated and summed.

    ``table`` has ``hospital_id``, ``month`` (``YYYY-MM`` inside the policy's effective period) and ``amount``
    (yuan, ≥ 0, at most two decimals, read exactly: text, integers, decimals or floats as written), and may
    have ``reason``. Rows of the same hospital and month add up. A bad row raises ``InputError`` naming the file
    (``path``, when read from one), the row (``first_row + i``) and the column. docs/formulas.md §6: the deduction comes
    off the month's pre-settlement.

    Examples
    --------
    >>> from payment.policy import Policy
    >>> p = Policy.load("codebooks/policies/demo-2025.toml")          # doctest: +SKIP
    >>> t = pa.table({"hospital_id": ["A", "A"], "month": ["2025-03", "2025-03"], "amount": ["100.25", "5"]})
    >>> parse_deductions(t, ["A", "B"], p)                             # doctest: +SKIP
    {('A', 3): 10525}
    """
    where_file = "" if path is None else f"{path}: "

    def bad(row: int, column: str, what: str) -> InputError:
        return InputError(
            f"{where_file}row {row}, column {column}: {what}", path=path, row=row, column=column
        )

    missing = [c for c in ("hospital_id", "month", "amount") if c not in table.column_names]
    if missing:
        raise InputError(f"{where_file}missing column(s) {', '.join(missing)}", path=path, column=missing[0])
    known = set(hospital_ids)
    eff = policy.header["effective"]
    first, last = eff["start"].replace(day=1), eff["end"]
    out: dict[tuple[str, int], int] = {}
    cols = [table.column(c).to_pylist() for c in ("hospital_id", "month", "amount")]
    for i, (h, m, a) in enumerate(zip(*cols, strict=True)):
        row = first_row + i
        h = None if h is None else str(h).strip()
        if h not in known:
            raise bad(row, "hospital_id", "not a hospital of the hospitals table")
        m = None if m is None else str(m).strip()
        try:
            d = _dt.date.fromisoformat(f"{m}-01") if m and _MONTH.fullmatch(m) else None
        except ValueError:
            d = None
        if d is None:
            raise bad(row, "month", "not a month YYYY-MM")
        if not first <= d <= last:
            raise bad(row, "month", f"outside the policy period {first:%Y-%m} … {last:%Y-%m}")
        try:
            fen = _amount_fen(a)
        except ValueError as exc:  # _amount_fen's own signal, turned into the file's error here
            raise bad(row, "amount", str(exc)) from None
        check_hard("deductions", {"amount": np.array([fen / 100])}, where=path or "deductions", first_row=row)
        out[(h, d.month)] = out.get((h, d.month), 0) + fen
    return out


def _amount_fen(value) -> int:
    """A yuan amount as written (text, int, Decimal or float's shortest repr) → whole fen, or ValueError (the
    reason, without the place)."""
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        d = None
    if value is None or d is None or not d.is_finite():
        raise ValueError("not an amount in yuan")
    if d < 0:
        raise ValueError("negative (a deduction is ≥ 0)")
    fen = d * 100
    if fen != fen.to_integral_value():
        raise ValueError("more than two decimals (amounts are in yuan to the fen)")
    return int(fen)


def deduction_grid(deductions: Mapping[tuple[str, int], int] | None, hosp_ids: pa.Array) -> np.ndarray | None:
    """Deductions as a hospital × month (0–12) array of fen; ``None`` when there are none."""
    if deductions is None:
        return None
    index = {h: i for i, h in enumerate(hosp_ids.to_pylist())}
    grid = np.zeros((len(index), 13), dtype=np.int64)
    for (h, month), fen in deductions.items():
        if h not in index:
            raise InputError("deductions: a hospital_id not in the hospitals table", column="hospital_id")
        if not 1 <= month <= 12:
            raise InputError(f"deductions: month {month} is not 1–12", column="month")
        grid[index[h], month] += int(fen)
    return grid
