"""numba kernels of the DIP grouper: core-group set matching over CSR procedure arrays, segment reductions."""

from __future__ import annotations

import numpy as np
from numba import njit

#: Tie-break criterion kinds (``codebooks/dip/grouping.toml``); each is a "larger is better" value.
MOST_RELATED, EXACT_SET, HIGHEST_SCORE, CLOSEST_COST = 0, 1, 2, 3
CRITERIA = {"most_related": MOST_RELATED, "exact_set": EXACT_SET, "highest_score": HIGHEST_SCORE,
            "closest_cost": CLOSEST_COST}  # fmt: skip


#: A helper of a kernel, without numba's reference counting (it allocates nothing; see grouper/drg/_kernel.py).
_helper_jit = njit(cache=True, _nrt=False)


@_helper_jit
def _value(kind, matched, exact, score, group_cost, case_cost):
    if kind == MOST_RELATED:
        return float(matched)
    if kind == EXACT_SET:
        return 1.0 if exact else 0.0
    if kind == HIGHEST_SCORE:
        return score
    # CLOSEST_COST: a case without a cost ties on this criterion
    if np.isnan(case_cost):
        return 0.0
    return -abs(case_cost - group_cost)


@_helper_jit
def _first_at_least(keys, key):
    """Position of the first of the sorted ``keys`` not below ``key`` (``np.searchsorted``, cheaper to compile)."""
    lo, hi = 0, keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def core_rows(sub_id, has_main, main_pid, off, pid, case_cost,
              u_key, u_start, u_end, g_row, g_score, g_cost, rel_off, rel_pid,
              stride, crit, partial):  # fmt: skip
    """Catalogue row of the core group (核心病种) of each case, -1 when none qualifies.

    A case's candidates share its 亚目 and main procedure (key ``sub * stride + main + 1``; ``+ 0`` for the
    conservative group). A group qualifies when all its related procedures are among the case's (``partial``:
    at least one, or it lists none). Among qualifying groups the criteria ``crit`` decide, in order; groups
    are sorted by dip_code within a key, so a full tie keeps the smallest dip_code.
    """
    out = np.full(sub_id.shape[0], -1, np.int32)
    _core_rows(out, sub_id, has_main, main_pid, off, pid, case_cost, u_key, u_start, u_end, g_row, g_score,
               g_cost, rel_off, rel_pid, stride, crit, partial)  # fmt: skip
    return out


@njit(cache=True, nogil=True, _nrt=False)
def _core_rows(out, sub_id, has_main, main_pid, off, pid, case_cost,
               u_key, u_start, u_end, g_row, g_score, g_cost, rel_off, rel_pid,
               stride, crit, partial):  # fmt: skip
    """``core_rows`` into ``out`` (-1 where no group qualifies)."""
    for i in range(sub_id.shape[0]):
        s = sub_id[i]
        if s < 0:
            continue
        m = main_pid[i] if has_main[i] else -1
        if has_main[i] and m < 0:
            continue  # the main procedure heads no group of the catalogue
        key = s * stride + m + 1
        j = _first_at_least(u_key, key)
        if j >= u_key.shape[0] or u_key[j] != key:
            continue
        best, b_matched, b_exact = -1, 0, False
        for g in range(u_start[j], u_end[j]):
            nrel = rel_off[g + 1] - rel_off[g]
            matched = 0
            for r in range(rel_off[g], rel_off[g + 1]):
                for k in range(off[i], off[i + 1]):
                    if pid[k] == rel_pid[r]:
                        matched += 1
                        break
            if matched < nrel and not (partial and matched > 0):
                continue
            exact = matched == nrel
            for k in range(off[i], off[i + 1]):
                if not exact:
                    break
                p = pid[k]
                if p == m and has_main[i]:
                    continue
                found = False
                for r in range(rel_off[g], rel_off[g + 1]):
                    if rel_pid[r] == p:
                        found = True
                        break
                exact = found
            better = best < 0
            if not better:
                for c in crit:
                    a = _value(c, matched, exact, g_score[g], g_cost[g], case_cost[i])
                    b = _value(c, b_matched, b_exact, g_score[best], g_cost[best], case_cost[i])
                    if a != b:
                        better = a > b
                        break
            if better:
                best, b_matched, b_exact = g, matched, exact
        if best >= 0:
            out[i] = g_row[best]


@njit(cache=True)
def segment_max(off, values, empty):
    """Largest value of each CSR segment ``values[off[i]:off[i+1]]``; ``empty`` for an empty one."""
    n = off.shape[0] - 1
    out = np.full(n, empty, values.dtype)
    for i in range(n):
        for k in range(off[i], off[i + 1]):
            if values[k] > out[i]:
                out[i] = values[k]
    return out


@njit(cache=True)
def segment_min(off, values, empty):
    """Smallest value of each CSR segment; ``empty`` for an empty one."""
    n = off.shape[0] - 1
    out = np.full(n, empty, values.dtype)
    for i in range(n):
        for k in range(off[i], off[i + 1]):
            if values[k] < out[i]:
                out[i] = values[k]
    return out


@njit(cache=True, nogil=True)
def procedure_lists(principal, o_off, o_code):
    """Each case's known procedures as CSR, principal first, then its others in order: ``(off, flat, unknown)``.

    ``principal`` and ``o_code`` (the others, CSR by ``o_off``) are looked-up codes: >= 0 known, -1 empty,
    -2 unknown; ``unknown`` marks the cases with an unknown one.
    """
    n = principal.shape[0]
    off = np.zeros(n + 1, np.int64)
    unknown = np.zeros(n, np.bool_)
    for i in range(n):
        kept = 1 if principal[i] >= 0 else 0
        unknown[i] = principal[i] == -2
        for j in range(o_off[i], o_off[i + 1]):
            kept += o_code[j] >= 0
            unknown[i] |= o_code[j] == -2
        off[i + 1] = off[i] + kept
    flat = np.empty(off[n], np.int64)
    for i in range(n):
        at = off[i]
        if principal[i] >= 0:
            flat[at] = principal[i]
            at += 1
        for j in range(o_off[i], o_off[i + 1]):
            if o_code[j] >= 0:
                flat[at] = o_code[j]
                at += 1
    return off, flat, unknown
