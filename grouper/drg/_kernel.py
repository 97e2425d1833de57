"""Numba kernel of the CHS-DRG grouper: one small function per rule kind, a loop over cases in parallel.

Reads only the flat arrays of a compiled ``Codebook`` (packed into the ``Tables`` named tuple) and the encoded
case arrays (ids, CSR offsets). The flow is RULES.md §2–§4: MDCs in seq order, each gate, ADRGs in table order
with the optional QY test, fall-through to the next MDC, then the severity suffix.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from grouper.drg.rules import GateKind, QyTrigger, RuleKind, SeverityRule

Tables = namedtuple(
    "Tables",
    "dx_mdc_mask dx_part mcc_table cc_table cce_table proc_valid mdc_gate mdc_gate_param mdc_adrg_off "
    "adrg_rule adrg_age_days_max adrg_bw_min adrg_bw_lt adrg_dnf_off adrg_dnf_mask "
    "zd_off zd_adrg ss_off ss_adrg ss_grp ss1_off ss1_adrg adrg_drg_off drg_rule qy_after qy_trigger",
)

#: adrg index of a case sent to the MDC's ambiguous group (歧义组)
QY_ADRG = -2

_G_PPROC_VALID, _G_PDX, _G_PDX_INFANT = int(GateKind.PPROC_VALID), int(GateKind.PDX), int(GateKind.PDX_INFANT)
_G_PDX_SEX, _G_TRAUMA = int(GateKind.PDX_SEX), int(GateKind.PDX_TRAUMA_PARTS)
_R = {k.name: int(k) for k in RuleKind}
_R_PDX, _R_PPROC, _R_PDX_PPROC = _R["PDX"], _R["PPROC"], _R["PDX_PPROC"]
_R_ANYPROC_BOTH, _R_PDX_ANYPROC_BOTH, _R_GROUPS = (
    _R["ANYPROC_BOTH"],
    _R["PDX_ANYPROC_BOTH"],
    _R["PDX_PROC_GROUPS"],
)
_R_PPROC_VALID, _R_ANYDX_PPROC_VALID = _R["PPROC_VALID"], _R["ANYDX_PPROC_VALID"]
_R_NO_VALID_PROC, _R_NB_PPROC, _R_NB_PDX = _R["NO_VALID_PROC"], _R["NEWBORN_PPROC"], _R["NEWBORN_PDX"]
_R_NB_ANYDX_BW, _R_ALWAYS = _R["NEWBORN_ANYDX_BW"], _R["ALWAYS"]
_S_MCC, _S_MCC_OR_CC = int(SeverityRule.MCC), int(SeverityRule.MCC_OR_CC)
_Q_ANY, _Q_PPROC = int(QyTrigger.ANYPROC_VALID), int(QyTrigger.PPROC_VALID)

#: severity of a case: no CC/MCC, CC, MCC (排除表 applied)
SEV_NONE, SEV_CC, SEV_MCC = 0, 1, 2


@njit(cache=True, inline="always")
def _in_list(off, adrgs, a, code):
    """Whether ``code`` is in ADRG ``a``'s list: a scan of the few ADRGs listing that code."""
    if code < 0:
        return False
    for k in range(off[code], off[code + 1]):
        if adrgs[k] == a:
            return True
    return False


@njit(cache=True, inline="always")
def _any_proc_in(off, adrgs, a, pproc, oprocs):
    if _in_list(off, adrgs, a, pproc):
        return True
    for p in oprocs:
        if _in_list(off, adrgs, a, p):
            return True
    return False


@njit(cache=True, inline="always")
def _any_dx_in(t, a, pdx, odx):
    if _in_list(t.zd_off, t.zd_adrg, a, pdx):
        return True
    for d in odx:
        if _in_list(t.zd_off, t.zd_adrg, a, d):
            return True
    return False


@njit(cache=True, inline="always")
def _valid(t, p):
    return p >= 0 and t.proc_valid[p]


@njit(cache=True, inline="always")
def _groups_of(t, a, code):
    """Bit set of the procedure groups (params.groups numbers) that ``code`` carries in ADRG ``a``'s ss list."""
    bits = np.uint32(0)
    if code < 0:
        return bits
    for k in range(t.ss_off[code], t.ss_off[code + 1]):
        if t.ss_adrg[k] == a:
            bits |= np.uint32(1) << np.uint32(t.ss_grp[k])
    return bits


@njit(cache=True, inline="always")
def _proc_groups_match(t, a, pproc, oprocs):
    found = _groups_of(t, a, pproc)
    for p in oprocs:
        found |= _groups_of(t, a, p)
    for k in range(t.adrg_dnf_off[a], t.adrg_dnf_off[a + 1]):
        need = t.adrg_dnf_mask[k]
        if found & need == need:
            return True
    return False


@njit(cache=True, inline="always")
def _adrg_matches(t, a, pdx, odx, pproc, oprocs, age_days, weight):
    """One branch per rule kind (RuleKind); RULES.md §3."""
    r = t.adrg_rule[a]
    if r == _R_PDX:
        return _in_list(t.zd_off, t.zd_adrg, a, pdx)
    if r == _R_PPROC:
        return _in_list(t.ss_off, t.ss_adrg, a, pproc)
    if r == _R_PDX_PPROC:
        return _in_list(t.zd_off, t.zd_adrg, a, pdx) and _in_list(t.ss_off, t.ss_adrg, a, pproc)
    if r == _R_ANYPROC_BOTH or r == _R_PDX_ANYPROC_BOTH:
        if r == _R_PDX_ANYPROC_BOTH and not _in_list(t.zd_off, t.zd_adrg, a, pdx):
            return False
        return _any_proc_in(t.ss_off, t.ss_adrg, a, pproc, oprocs) and _any_proc_in(
            t.ss1_off, t.ss1_adrg, a, pproc, oprocs
        )
    if r == _R_GROUPS:
        return _in_list(t.zd_off, t.zd_adrg, a, pdx) and _proc_groups_match(t, a, pproc, oprocs)
    if r == _R_PPROC_VALID:
        return _valid(t, pproc)
    if r == _R_ANYDX_PPROC_VALID:
        return _valid(t, pproc) and _any_dx_in(t, a, pdx, odx)
    if r == _R_NO_VALID_PROC:
        if _valid(t, pproc):
            return False
        for p in oprocs:
            if _valid(t, p):
                return False
        return True
    if r == _R_NB_PPROC:
        return age_days <= t.adrg_age_days_max[a] and _in_list(t.ss_off, t.ss_adrg, a, pproc)
    if r == _R_NB_PDX:
        return age_days <= t.adrg_age_days_max[a] and _in_list(t.zd_off, t.zd_adrg, a, pdx)
    if r == _R_NB_ANYDX_BW:
        return (
            age_days <= t.adrg_age_days_max[a]
            and weight > 0
            and t.adrg_bw_min[a] <= weight < t.adrg_bw_lt[a]
            and _any_dx_in(t, a, pdx, odx)
        )
    return r == _R_ALWAYS


@njit(cache=True, inline="always")
def _gate_passes(t, m, pdx, odx, pproc, sex, age_years):
    """One branch per MDC gate kind (GateKind); RULES.md §2."""
    g = t.mdc_gate[m]
    if g == _G_PPROC_VALID:
        return _valid(t, pproc)
    if pdx < 0 or not (t.dx_mdc_mask[pdx] >> np.uint32(m)) & np.uint32(1):
        return False
    if g == _G_PDX:
        return True
    if g == _G_PDX_INFANT:
        return age_years == 0
    if g == _G_PDX_SEX:
        return sex == t.mdc_gate_param[m]
    if g == _G_TRAUMA:
        seen = np.uint32(0)
        n = 0
        for d in np.concatenate((np.array([pdx], np.int32), odx)):
            if d >= 0 and (t.dx_mdc_mask[d] >> np.uint32(m)) & np.uint32(1) and t.dx_part[d] >= 0:
                bit = np.uint32(1) << np.uint32(t.dx_part[d])
                if not seen & bit:
                    seen |= bit
                    n += 1
        return n >= t.mdc_gate_param[m]
    return False


@njit(cache=True, inline="always")
def _qy_triggered(t, m, pproc, oprocs):
    if t.qy_trigger[m] == _Q_PPROC:
        return _valid(t, pproc)
    if _valid(t, pproc):
        return True
    for p in oprocs:
        if _valid(t, p):
            return True
    return False


@njit(cache=True, inline="always")
def _severity(t, pdx, odx):
    """(severity, dx id that set it): MCC/CC over the other diagnoses, excluding the principal's 排除表."""
    excl = t.cce_table[pdx] if pdx >= 0 else -1
    cc_code = -1
    for d in odx:
        if d < 0:
            continue
        tm = t.mcc_table[d]
        if tm >= 0 and not (excl >= 0 and tm == excl):
            return SEV_MCC, d
        tc = t.cc_table[d]
        if cc_code < 0 and tc >= 0 and not (excl >= 0 and tc == excl):
            cc_code = d
    if cc_code >= 0:
        return SEV_CC, cc_code
    return SEV_NONE, -1


@njit(cache=True, inline="always")
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


@njit(parallel=True, cache=True, nogil=True)
def group_cases(
    t, pdx, odx_off, odx_ids, pproc, oproc_off, oproc_ids, sex, age_years, age_days, weight, skip
):
    """Group every case; returns (mdc, adrg, drg, severity, severity_dx, first_gated_mdc) arrays.

    ``skip`` marks cases that failed a blocking check: they keep -1 everywhere. ``adrg == QY_ADRG`` marks a case
    sent to its MDC's ambiguous group.
    """
    n = pdx.shape[0]
    mdc = np.full(n, -1, np.int8)
    adrg = np.full(n, -1, np.int16)
    drg = np.full(n, -1, np.int16)
    severity = np.zeros(n, np.int8)
    severity_dx = np.full(n, -1, np.int32)
    first_gate = np.full(n, -1, np.int8)
    n_mdc = t.mdc_gate.shape[0]
    # every gate but PPROC_VALID needs the principal in the MDC's list: only those MDCs (and MDCA) are candidates
    pproc_gated = np.uint32(0)
    for m in range(n_mdc):
        if t.mdc_gate[m] == _G_PPROC_VALID:
            pproc_gated |= np.uint32(1) << np.uint32(m)
    for i in prange(n):
        if skip[i]:
            continue
        odx = odx_ids[odx_off[i] : odx_off[i + 1]]
        oprocs = oproc_ids[oproc_off[i] : oproc_off[i + 1]]
        p, pp = pdx[i], pproc[i]
        candidates = (t.dx_mdc_mask[p] if p >= 0 else np.uint32(0)) | (
            pproc_gated if _valid(t, pp) else np.uint32(0)
        )
        for m in range(n_mdc):
            if not (candidates >> np.uint32(m)) & np.uint32(1):
                continue
            if not _gate_passes(t, m, p, odx, pp, sex[i], age_years[i]):
                continue
            if first_gate[i] < 0:
                first_gate[i] = m
            lo, hi = t.mdc_adrg_off[m], t.mdc_adrg_off[m + 1]
            hit = -1
            for a in range(lo, hi):
                if _adrg_matches(t, a, p, odx, pp, oprocs, age_days[i], weight[i]):
                    hit = a
                    break
                if t.qy_after[m] == a - lo and _qy_triggered(t, m, pp, oprocs):
                    hit = QY_ADRG
                    break
            if hit == -1:
                continue  # fall through to the next MDC (RULES.md §2)
            mdc[i] = m
            adrg[i] = hit
            if hit >= 0:
                sev, code = _severity(t, p, odx)
                severity[i] = sev
                severity_dx[i] = code
                drg[i] = _resolve_drg(t, hit, sev, odx.shape[0])
            break
    return mdc, adrg, drg, severity, severity_dx, first_gate
