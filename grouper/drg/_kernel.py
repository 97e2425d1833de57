"""Numba kernel of the CHS-DRG grouper: postfix condition programs on a stack of booleans, cases on threads.

Reads only the flat arrays of a compiled ``Codebook`` (packed into the ``Tables`` named tuple) and the encoded
case arrays (ids, CSR offsets). The flow is codebooks/chs-drg-2.0/RULES.md §2, for every scheme: MDCs in seq order;
per MDC its pre-gate QY rows, its gate, then its items (ADRGs and in-MDC QY rows) in order; the first true item
wins; an MDC whose items all fail falls through to the next; then the severity suffix of the ADRG's DRGs.

These are the steps of the MDC (``mdc_step_off``); only the steps the case's principal diagnosis and principal
procedure leave possible are run (``dx_steps`` & ``proc_steps``; ``no_proc_steps`` for a case without any
procedure, ``aged_steps`` for age_years not 0; visited by their set bits). An MDC gated by ``anydx in L`` (2.0
MDCY) is tried only when some diagnosis is in L (``dx_any_mask``).

Cold compile (issue 14): one serial kernel (``_group_range``) that Python threads share (``group_cases``), its
helpers compiled once each as functions of their own, nothing reference-counted: about 2 s CPU, against 10 s for
the ``parallel=True`` kernel with helpers inlined into numba's IR, which grouped no faster.
"""

from __future__ import annotations

import functools
import os
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import config, njit
from numba.cpython.unsafe.numbers import trailing_zeros

from grouper.drg.expr import STEP_GATE, Cmp, Op, Sel
from grouper.drg.rules import SeverityRule

Tables = namedtuple(
    "Tables",
    "dx_bits proc_bits prog_off ins_op ins_sel ins_arg ins_const guard_off guard_ins prog_pure mdc_open "
    "mdc_step_off step_prog step_kind step_target dx_steps proc_steps no_proc_steps aged_steps mdc_gate_step qy_mdc dx_mdc_mask dx_any_mask mdc_any dx_part "
    "mcc_table cc_table cce_table adrg_drg_off drg_rule severity_all",
)


def tables(codebook, severity_includes_principal: bool | None = None) -> Tables:
    """The kernel's view of a compiled codebook; the severity scan follows the codebook unless told otherwise."""
    if severity_includes_principal is None:
        severity_includes_principal = codebook.settings.severity_includes_principal
    arrays = {f: codebook[f] for f in Tables._fields if f != "severity_all"}
    return Tables(**arrays, severity_all=np.array([severity_includes_principal]))


#: adrg index of a case sent to an ambiguous group (歧义组); its ``drg`` is then the QY group's index
QY_ADRG = -2

_TRUE, _AND, _OR, _NOT = int(Op.TRUE), int(Op.AND), int(Op.OR), int(Op.NOT)
_DX_IN, _PROC_IN, _NUM, _SEX, _PARTS = int(Op.DX_IN), int(Op.PROC_IN), int(Op.NUM), int(Op.SEX), int(Op.PARTS)
_PDX, _ODX, _PPROC = int(Sel.PDX), int(Sel.ODX), int(Sel.PPROC)
_LT, _LE, _GT, _GE, _EQ = int(Cmp.LT), int(Cmp.LE), int(Cmp.GT), int(Cmp.GE), int(Cmp.EQ)
_GATE = STEP_GATE
_S_MCC, _S_MCC_OR_CC = int(SeverityRule.MCC), int(SeverityRule.MCC_OR_CC)

#: severity of a case: no CC/MCC, CC, MCC (排除表 applied)
SEV_NONE, SEV_CC, SEV_MCC = 0, 1, 2
_ONE = np.uint64(1)

#: A kernel function without numba's reference counting (``_nrt=False``: it allocates nothing). With it, each
#: use of the tables ``t`` counted each of their 31 arrays up and down, two atomic operations per array per
#: program run: one thread grouped 14 times slower, and only the ``parallel=True`` kernel escaped (its worker
#: function sees arrays without a reference count), at three times the compile time.
_kernel_jit = njit(cache=True, nogil=True, _nrt=False)
#: A helper of the kernel: compiled once as a function of its own (LLVM inlines it), not callable from Python.
_helper_jit = njit(cache=True, _nrt=False, no_cpython_wrapper=True)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
#: fewest cases a thread takes at once
_PIECE = 16_384


@_helper_jit
def _has(bits, code, lid):
    """Whether code id ``code`` (-1 = unknown or empty) is in list ``lid``."""
    if code < 0:
        return False
    return (bits[code, lid >> 6] >> np.uint64(lid & 63)) & _ONE == _ONE


@_helper_jit
def _compare(x, cmp, c):
    """IEEE comparison: every comparison with NaN is false except ``!=``."""
    if cmp == _LT:
        return x < c
    if cmp == _LE:
        return x <= c
    if cmp == _GT:
        return x > c
    if cmp == _GE:
        return x >= c
    if cmp == _EQ:
        return x == c
    return x != c


@_helper_jit
def _parts(t, lid, pdx, odx):
    """Distinct body parts of the diagnoses (any position) found in list ``lid``."""
    seen = np.uint32(0)
    n = 0
    for k in range(-1, odx.shape[0]):
        d = pdx if k < 0 else odx[k]
        if _has(t.dx_bits, d, lid) and t.dx_part[d] >= 0:
            bit = np.uint32(1) << np.uint32(t.dx_part[d])
            if not seen & bit:
                seen |= bit
                n += 1
    return n


@_helper_jit
def _leaf(t, k, pdx, odx, pproc, oprocs, sex, nums):
    op, sel, lid = t.ins_op[k], t.ins_sel[k], t.ins_arg[k]
    if op == _DX_IN:
        if sel != _ODX and _has(t.dx_bits, pdx, lid):
            return True
        if sel != _PDX:
            for d in odx:
                if _has(t.dx_bits, d, lid):
                    return True
        return False
    if op == _PROC_IN:
        if _has(t.proc_bits, pproc, lid):
            return True
        if sel != _PPROC:
            for p in oprocs:
                if _has(t.proc_bits, p, lid):
                    return True
        return False
    if op == _TRUE:
        return True
    if op == _NUM:
        x = nums[lid]
    elif op == _SEX:
        x = float(sex)
    else:
        x = float(_parts(t, lid, pdx, odx))
    return _compare(x, sel, t.ins_const[k])  # NUM, SEX, PARTS: one call site


@_helper_jit
def _run(t, p, pdx, odx, pproc, oprocs, sex, nums):
    """Value of program ``p``: its guards (the top-level "and" operands, cheapest first), then, unless they are
    the whole program, its instructions on a stack of booleans held in one integer. One call site of ``_leaf``."""
    g0, g1 = t.guard_off[p], t.guard_off[p + 1]
    base = t.prog_off[p] - g1
    end = g1 if t.prog_pure[p] else t.prog_off[p + 1] - base
    stack = np.uint64(0)
    for j in range(g0, end):
        k = t.guard_ins[j] if j < g1 else base + j
        op = t.ins_op[k]
        if j >= g1 and (op == _AND or op == _OR):
            a = stack & _ONE
            stack >>= _ONE
            b = stack & _ONE
            stack = (stack & ~_ONE) | ((a & b) if op == _AND else (a | b))
        elif j >= g1 and op == _NOT:
            stack ^= _ONE
        else:
            value = _leaf(t, k, pdx, odx, pproc, oprocs, sex, nums)
            if j < g1:
                if not value:
                    return False
            else:
                stack = (stack << _ONE) | (_ONE if value else np.uint64(0))
    return t.prog_pure[p] or stack & _ONE == _ONE


@_helper_jit
def _severity(t, pdx, odx):
    """(severity, dx id that set it): MCC/CC excluding the principal's 排除表 (codebooks/chs-drg-2.0/RULES.md §6.2)."""
    excl = t.cce_table[pdx] if pdx >= 0 else -1
    cc_code = -1
    start = -1 if t.severity_all[0] else 0
    for k in range(start, odx.shape[0]):
        d = pdx if k < 0 else odx[k]
        if d < 0:
            continue
        tm = t.mcc_table[d]
        if tm >= 0:
            if not (excl >= 0 and tm == excl):
                return SEV_MCC, d
            continue  # an excluded MCC does not fall back to CC
        tc = t.cc_table[d]
        if cc_code < 0 and tc >= 0 and not (excl >= 0 and tc == excl):
            cc_code = d
    if cc_code >= 0:
        return SEV_CC, cc_code
    return SEV_NONE, -1


@_helper_jit
def _resolve_drg(t, a, severity, n_odx):
    for k in range(t.adrg_drg_off[a], t.adrg_drg_off[a + 1]):
        r = t.drg_rule[k]
        if r == _S_MCC:
            if n_odx > 0 and severity == SEV_MCC:
                return k
        elif r == _S_MCC_OR_CC:
            if n_odx > 0 and severity != SEV_NONE:
                return k
        else:
            return k
    return -1


def group_cases(t, pdx, odx_off, odx_ids, pproc, oproc_off, oproc_ids, sex, nums, skip):
    """Group every case; returns (mdc, adrg, drg, severity, severity_dx, first_gated_mdc) arrays.

    ``nums`` holds age_years, age_days and birth_weight_g per case (float64, columns in ``expr.NUMVARS`` order).
    ``skip`` marks cases that failed a blocking check: they keep -1 everywhere. ``adrg == QY_ADRG`` marks a case
    sent to an ambiguous group; its ``drg`` is the index of the QY group and ``mdc`` that group's MDC.
    ``NUMBA_NUM_THREADS`` threads (the cores) share the cases.
    """
    n = pdx.shape[0]
    out = (
        np.full(n, -1, np.int8),  # mdc
        np.full(n, -1, np.int16),  # adrg
        np.full(n, -1, np.int16),  # drg
        np.zeros(n, np.int8),  # severity
        np.full(n, -1, np.int32),  # severity_dx
        np.full(n, -1, np.int8),  # first gated MDC
    )
    args = (t, pdx, odx_off, odx_ids, pproc, oproc_off, oproc_ids, sex, nums, skip, *out)
    threads = config.NUMBA_NUM_THREADS
    piece = max(_PIECE, -(-n // (4 * threads)))  # a few pieces per thread: a slow core does not hold the rest
    if threads <= 1 or n <= piece:
        _group_range(*args, 0, n)
        return out
    list(_pool(threads).map(lambda lo: _group_range(*args, lo, min(lo + piece, n)), range(0, n, piece)))
    return out


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """The kernel's threads, started once per process (two new threads per batch cost milliseconds each)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="drgdip-kernel")


os.register_at_fork(after_in_child=_pool.cache_clear)  # a forked child has none of the parent's threads


@_kernel_jit
def _group_range(t, pdx, odx_off, odx_ids, pproc, oproc_off, oproc_ids, sex, nums, skip,
                 mdc, adrg, drg, severity, severity_dx, first_gate, start, stop):  # fmt: skip
    """Group cases ``start:stop`` into the output arrays (see ``group_cases``)."""
    n_mdc = t.mdc_step_off.shape[0] - 1
    for i in range(start, stop):
        if skip[i]:
            continue
        odx = odx_ids[odx_off[i] : odx_off[i + 1]]
        oprocs = oproc_ids[oproc_off[i] : oproc_off[i + 1]]
        p, pp, s, v = pdx[i], pproc[i], sex[i], nums[i]
        candidates = t.mdc_open[0] | (t.dx_mdc_mask[p] if p >= 0 else np.uint32(0))
        if t.mdc_any[0]:  # MDCs gated by "anydx in L": some diagnosis in L
            if p >= 0:
                candidates |= t.dx_any_mask[p]
            for d in odx:
                if d >= 0:
                    candidates |= t.dx_any_mask[d]
        no_proc = pp < 0 and oprocs.shape[0] == 0
        aged = v[0] != 0.0  # age_years (NaN too): the newborn steps cannot hold
        for m in range(n_mdc):
            if not (candidates >> np.uint32(m)) & np.uint32(1):
                continue
            hit = -1  # >= 0: an ADRG; <= -2: a QY group (-2 - its index)
            refused = False
            lo, hi, gate = t.mdc_step_off[m], t.mdc_step_off[m + 1], t.mdc_gate_step[m]
            for word in range(lo >> 6, ((hi - 1) >> 6) + 1):
                able = t.dx_steps[p + 1, word] & t.proc_steps[pp + 1, word]
                if no_proc:
                    able &= t.no_proc_steps[word]
                if aged:
                    able &= t.aged_steps[word]
                visit = able | (_ONE << np.uint64(gate & 63) if gate >> 6 == word else np.uint64(0))
                if word == lo >> 6:
                    visit &= _ALL << np.uint64(lo & 63)
                if word == (hi - 1) >> 6:
                    visit &= _ALL >> np.uint64(63 - ((hi - 1) & 63))
                while visit:
                    b = np.int64(trailing_zeros(visit))
                    visit &= visit - _ONE
                    k = (word << 6) + b
                    value = (able >> np.uint64(b)) & _ONE == _ONE and _run(
                        t, t.step_prog[k], p, odx, pp, oprocs, s, v
                    )
                    if k == gate:
                        if not value:
                            refused = True  # the gate refuses: the next MDC
                            break
                        if first_gate[i] < 0:
                            first_gate[i] = m
                    elif value:
                        hit = t.step_target[k]
                        break
                if hit != -1 or refused:
                    break
            if hit == -1:
                continue  # gate refused, or no item matched: fall through to the next MDC (codebooks/chs-drg-2.0/RULES.md §2)
            if hit < 0:  # an ambiguous group: its own MDC (MDCN's wrong-sex row reports MQY in MDCM)
                q = -2 - hit
                mdc[i] = t.qy_mdc[q]
                adrg[i] = QY_ADRG
                drg[i] = q
            else:
                mdc[i] = m
                adrg[i] = hit
            break
    # the DRGs of the ADRGs found: in a loop of their own, 20-25 % faster on cases with many codes than the same
    # steps inside the loop above (fewer registers spilt there)
    for i in range(start, stop):
        a = adrg[i]
        if a >= 0:
            odx = odx_ids[odx_off[i] : odx_off[i + 1]]
            sev, code = _severity(t, pdx[i], odx)
            severity[i] = sev
            severity_dx[i] = code
            drg[i] = _resolve_drg(t, a, sev, odx.shape[0])


@njit(cache=True, nogil=True)
def case_numbers(age_years, age_days, weight, nan_for_unreadable):
    """age_years, age_days, birth_weight_g per case as float64 rows (``expr.NUMVARS`` order), from int columns
    whose empty values are 0.

    Both readings take an empty value as 0 (codebooks/chs-drg-2.0/RULES.md §1.3); the ECMAScript one
    (``nan_for_unreadable``) makes a present but unreadable value (``-1`` from the readers) NaN, which fails every
    comparison but ``!=``.
    """
    out = np.empty((age_years.shape[0], 3), np.float64)
    for i in range(age_years.shape[0]):
        out[i, 0] = age_years[i]
        out[i, 1] = age_days[i]
        out[i, 2] = weight[i]
        if nan_for_unreadable:
            for k in range(3):
                if out[i, k] == -1.0:
                    out[i, k] = np.nan
    return out


@njit(cache=True, nogil=True)
def label_positions(mdc, adrg, drg, status, n_mdc, n_adrg, n_drg, n_qy, status_position):
    """Each case's position in the four label dictionaries (int32 rows: MDC, ADRG, DRG, status). ADRG: ``QY``
    after the ADRGs; DRG: the QY groups after the DRGs; the last position of each is the ungrouped label (-1).
    ``status_position``: the position of each status code."""
    n = mdc.shape[0]
    out = np.empty((4, n), np.int32)
    for i in range(n):
        out[0, i] = mdc[i] if mdc[i] >= 0 else n_mdc
        if adrg[i] == QY_ADRG:
            out[1, i] = n_adrg
            out[2, i] = n_drg + drg[i]
        else:
            out[1, i] = adrg[i] if adrg[i] >= 0 else n_adrg + 1
            out[2, i] = drg[i] if drg[i] >= 0 else n_drg + n_qy
        out[3, i] = status_position[status[i]]
    return out


@njit(cache=True, nogil=True)
def los_invalid(los, admitted, discharged, empty):
    """Per case: LOS negative, discharge before admission, or LOS not the days between the dates (a same-day
    stay counts as 1). int64 days; ``empty`` marks a missing value, and a test that needs it does not fail."""
    out = np.zeros(los.shape[0], np.bool_)
    for i in range(los.shape[0]):
        n, a, d = los[i], admitted[i], discharged[i]
        dated = a != empty and d != empty
        out[i] = (n != empty and n < 0) or (dated and (d < a or (n != empty and max(d - a, 1) != n)))
    return out
