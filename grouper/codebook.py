"""Codebook (编码库 / 分组方案): one scheme's code dictionaries and grouping tables, compiled to numpy arrays.

``Codebook.load("chs-drg-1.1")`` reads ``codebooks/chs-drg-1.1/*.csv``, checks every rule kind against the engine's
closed set (grouper/drg/rules.py) and compiles the tables into flat arrays indexed by integer code ids, the shape
the numba kernel reads. The compiled arrays are cached on disk, keyed by the hash of the source files, so a
second load only reads one ``.npz``.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codes import encode_values, normalise_codes
from grouper.drg.rules import GateKind, QyTrigger, RuleKind, SeverityRule
from grouper.errors import CodebookError
from grouper.resources import data_root

__all__ = ["Codebook", "CodebookError", "codebook_dir"]

_CACHE_FORMAT = 2


def codebook_dir(scheme: str | os.PathLike) -> Path:
    """The folder of a codebook given by name (under ``codebooks/``) or by path."""
    path = Path(scheme)
    if (path / "codebook.toml").is_file():
        return path
    if len(path.parts) > 1 or path.is_absolute():
        raise CodebookError(f"{path}: not a codebook folder (no codebook.toml)")
    root = data_root()
    path = root / str(scheme)
    if not (path / "codebook.toml").is_file():
        known = sorted(p.parent.name for p in root.glob("*/codebook.toml"))
        raise CodebookError(f"unknown codebook {scheme!r} (known: {', '.join(known)})")
    return path


def _cache_dir() -> Path:
    base = os.environ.get("DRGDIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "drgdip"
    )
    return Path(base)


@dataclass(frozen=True, eq=False)
class Codebook:
    """A compiled CHS-DRG codebook.

    Attributes
    ----------
    scheme : str                       e.g. ``"chs-drg-1.1"``
    fingerprint : str                  SHA-256 of the source tables (recorded in every output)
    arrays : dict[str, ndarray]        the compiled tables (see ``_compile``); kernels read these only
    """

    scheme: str
    fingerprint: str
    arrays: dict[str, np.ndarray] = field(repr=False)
    _lookups: dict[str, tuple[pd.Index, np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, scheme: str | os.PathLike = "chs-drg-1.1", *, cache: bool = True) -> Codebook:
        """Load a codebook by name or folder, compiling it (and caching the result) when needed."""
        folder = codebook_dir(scheme)
        meta = tomllib.loads((folder / "codebook.toml").read_text(encoding="utf-8"))
        digest = hashlib.sha256()
        for path in [*sorted(folder.glob("*.csv")), folder / "codebook.toml"]:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        fingerprint = digest.hexdigest()
        name = meta["codebook"]["scheme"]
        cached = _cache_dir() / f"{name}-{fingerprint[:16]}-v{_CACHE_FORMAT}.npz"
        arrays = None
        if cache and cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # a damaged cache is rebuilt
                arrays = None
        if arrays is None:
            arrays = _compile(folder, meta.get("options", {}))
            if cache:
                _save_cache(cached, arrays)
        return cls(scheme=name, fingerprint=fingerprint, arrays=arrays)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def encode_dx(self, values: pa.Array) -> np.ndarray:
        """Diagnosis ids (-1 unknown or empty) of raw code strings, after normalisation and remapping."""
        return encode_values(values, lambda distinct: self._lookup("dx", distinct))

    def encode_proc(self, values: pa.Array) -> np.ndarray:
        """Procedure ids (-1 unknown or empty) of raw code strings, after normalisation and remapping."""
        return encode_values(values, lambda distinct: self._lookup("proc", distinct))

    def _lookup(self, kind: str, distinct: pa.Array) -> np.ndarray:
        if kind not in self._lookups:  # a hash index over the alias strings, built once per codebook
            self._lookups[kind] = (pd.Index(self.arrays[f"{kind}_alias"]), self.arrays[f"{kind}_alias_id"])
        keys, ids = self._lookups[kind]
        clean = normalise_codes(distinct, kind)
        found = _index_in(clean, keys, ids)
        if kind == "dx":
            # a dagger/asterisk pair the dictionary lacks is read as its dagger (etiology) code
            dagger = pc.replace_substring_regex(clean, r"\+.*$", "")
            found = np.where(found < 0, _index_in(dagger, keys, ids), found)
        return found


def _index_in(values: pa.Array, keys: pd.Index, ids: np.ndarray) -> np.ndarray:
    pos = keys.get_indexer(values.to_numpy(zero_copy_only=False))
    return np.where(pos >= 0, ids[pos], -1).astype(np.int32)


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:  # a read-only cache folder only costs a recompile next time
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------
# compilation: CSV tables → flat arrays


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / name
    if not path.is_file():
        raise CodebookError(f"{path}: missing codebook table")
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _kind(enum: type, value: str, where: str) -> int:
    try:
        return int(enum[value.strip().upper()])
    except KeyError:
        known = ", ".join(m.name for m in enum)
        raise CodebookError(f"{where}: kind {value!r} is not implemented (known: {known})") from None


def _params(text: str, where: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, value = part.partition("=")
        if not sep:
            raise CodebookError(f"{where}: params {text!r} is not key=value;…")
        out[key.strip()] = value.strip()
    return out


def _alias_table(
    codes: np.ndarray, maps: pd.DataFrame, max_steps: int, pairs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every string that reads as a code → that code's id: the codes, 国临版 remaps, dagger-only forms."""
    index = {c: i for i, c in enumerate(codes)}
    alias = dict(index)
    if pairs:  # a dagger code alone stands for its unique dagger/asterisk pair (A01.001 → A01.001+K77.0*)
        heads: dict[str, list[int]] = {}
        for code, i in index.items():
            if "+" in code:
                heads.setdefault(code.split("+")[0], []).append(i)
        alias.update({h: ids[0] for h, ids in heads.items() if len(ids) == 1 and h not in index})
    remap = dict(zip(maps["from_code"], maps["to_code"], strict=True))
    for source in remap:
        if source in index:
            continue  # a valid code is never remapped
        target, steps = remap[source], 1
        while target not in index and target in remap and steps < max_steps:
            target, steps = remap[target], steps + 1
        if target in index:
            alias[source] = index[target]
    keys = np.array(sorted(alias))
    return keys, np.array([alias[k] for k in keys], dtype=np.int32)


def _strings(*columns: pd.Series) -> np.ndarray:
    """Sorted distinct values of string columns as a fixed-width numpy string array (fast to sort and cache)."""
    return np.unique(np.concatenate([c.to_numpy().astype(str) for c in columns]))


def _csr(groups: np.ndarray, n_groups: int, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Offsets and values of a CSR layout: values sorted by group (stable), offsets of length n_groups + 1."""
    order = np.argsort(groups, kind="stable")
    offsets = np.zeros(n_groups + 1, np.int64)
    np.cumsum(np.bincount(groups, minlength=n_groups), out=offsets[1:])
    return (offsets, *(v[order] for v in values))


def _compile(folder: Path, options: dict) -> dict[str, np.ndarray]:
    dx_dict, proc_dict = _read(folder, "dx.csv"), _read(folder, "proc.csv")
    mdc, mdc_dx = _read(folder, "mdc.csv"), _read(folder, "mdc_dx.csv")
    adrg, adrg_codes, drg = (
        _read(folder, "adrg.csv"),
        _read(folder, "adrg_codes.csv"),
        _read(folder, "drg.csv"),
    )
    mcc, cc, cce = _read(folder, "mcc.csv"), _read(folder, "cc.csv"), _read(folder, "cc_exclusion.csv")
    valid, qy = _read(folder, "proc_valid.csv"), _read(folder, "qy.csv")

    lists = adrg_codes.groupby("list")["code"]
    dx_codes = _strings(
        dx_dict.code, mdc_dx.code, mcc.code, cc.code, cce.principal_code, lists.get_group("zd")
    )
    proc_codes = _strings(
        proc_dict.code, valid.code, *(lists.get_group(k) for k in ("ss", "ss1") if k in lists.groups)
    )
    dx_id = pd.Series(np.arange(len(dx_codes), dtype=np.int32), index=dx_codes)
    proc_id = pd.Series(np.arange(len(proc_codes), dtype=np.int32), index=proc_codes)
    remap, max_steps = bool(options.get("remap_invalid_codes", True)), int(options.get("remap_max_steps", 1))
    no_map = pd.DataFrame({"from_code": [], "to_code": []})
    dx_alias, dx_alias_id = _alias_table(
        dx_codes, _read(folder, "dx_map.csv") if remap else no_map, max_steps, pairs=True
    )
    proc_alias, proc_alias_id = _alias_table(
        proc_codes, _read(folder, "proc_map.csv") if remap else no_map, max_steps, pairs=False
    )

    # MDCs in seq order, their gates and dx lists (bit m of dx_mdc_mask = code in the list of MDC m)
    mdc = mdc.assign(seq=mdc.seq.astype(int)).sort_values("seq", kind="stable").reset_index(drop=True)
    if len(mdc) > 32:
        raise CodebookError(f"{folder / 'mdc.csv'}: more than 32 MDCs")
    mdc_index = pd.Series(np.arange(len(mdc)), index=mdc.mdc)
    gate = np.array(
        [_kind(GateKind, g, f"{folder / 'mdc.csv'}: row {i + 2}") for i, g in enumerate(mdc.gate)]
    )
    gate_param = np.zeros(len(mdc), np.int32)
    for i, text in enumerate(mdc.params):
        p = _params(text, f"{folder / 'mdc.csv'}: row {i + 2}")
        gate_param[i] = int(p.get("sex", p.get("min_parts", 0)))
    dx_mdc_mask = np.zeros(len(dx_codes), np.uint32)
    np.bitwise_or.at(
        dx_mdc_mask,
        dx_id[mdc_dx.code].to_numpy(),
        (np.uint32(1) << mdc_index[mdc_dx.mdc].to_numpy().astype(np.uint32)),
    )
    parts = mdc_dx[mdc_dx.part != ""]
    part_names = np.unique(parts.part)
    dx_part = np.full(len(dx_codes), -1, np.int8)
    dx_part[dx_id[parts.code].to_numpy()] = np.searchsorted(part_names, parts.part)

    def table_of(frame: pd.DataFrame, key: str) -> np.ndarray:
        out = np.full(len(dx_codes), -1, np.int32)
        out[dx_id[frame[key]].to_numpy()] = frame.table.astype(int).to_numpy()
        return out

    # ADRGs ordered by (MDC seq, ADRG seq); their rule kinds and parameters
    adrg = adrg.assign(m=mdc_index.reindex(adrg.mdc).to_numpy(), seq=adrg.seq.astype(int))
    if adrg.m.isna().any():
        raise CodebookError(
            f"{folder / 'adrg.csv'}: ADRG of an unknown MDC: {adrg[adrg.m.isna()].adrg.iloc[0]}"
        )
    adrg = adrg.sort_values(["m", "seq"], kind="stable").reset_index(drop=True)
    n_adrg = len(adrg)
    adrg_index = pd.Series(np.arange(n_adrg), index=adrg.adrg)
    rule = np.zeros(n_adrg, np.int8)
    age_days_max = np.full(n_adrg, np.iinfo(np.int32).max, np.int32)
    bw_min = np.zeros(n_adrg, np.int32)
    bw_lt = np.full(n_adrg, np.iinfo(np.int32).max, np.int32)
    dnf_terms: list[list[int]] = []
    for i, row in adrg.iterrows():
        where = f"{folder / 'adrg.csv'}: row {i + 2} ({row.adrg})"
        rule[i] = _kind(RuleKind, row.rule, where)
        p = _params(row.params, where)
        if p.get("age_days_max"):
            age_days_max[i] = int(p["age_days_max"])
        if p.get("bw_min"):
            bw_min[i] = int(p["bw_min"])
        if p.get("bw_lt"):
            bw_lt[i] = int(p["bw_lt"])
        terms = []
        if rule[i] == RuleKind.PDX_PROC_GROUPS:
            if "groups" not in p:
                raise CodebookError(f"{where}: PDX_PROC_GROUPS needs params groups=…")
            for conj in p["groups"].split("|"):
                terms.append(sum(1 << int(g) for g in conj.split("&")))
        dnf_terms.append(terms)
    dnf_off = np.zeros(n_adrg + 1, np.int64)
    np.cumsum([len(t) for t in dnf_terms], out=dnf_off[1:])
    dnf_mask = np.array([m for t in dnf_terms for m in t], dtype=np.uint32)
    mdc_adrg_off = np.zeros(len(mdc) + 1, np.int64)
    np.cumsum(np.bincount(adrg.m.astype(int), minlength=len(mdc)), out=mdc_adrg_off[1:])

    unknown_adrg = set(adrg_codes.adrg) - set(adrg.adrg)
    if unknown_adrg:
        raise CodebookError(f"{folder / 'adrg_codes.csv'}: codes for unknown ADRG {sorted(unknown_adrg)[0]}")
    # list memberships stored by code: the ADRGs (and procedure group numbers) whose list holds each code,
    # so that a kernel test "code ∈ list of ADRG a" scans the one to three entries of that code
    out = {}
    for lst, ids in (("zd", dx_id), ("ss", proc_id), ("ss1", proc_id)):
        rows = adrg_codes[adrg_codes.list == lst]
        code = ids[rows.code].to_numpy()
        a = adrg_index[rows.adrg].to_numpy().astype(np.int16)
        grp = pd.to_numeric(rows.grp, errors="coerce").fillna(0).astype(np.int8).to_numpy()
        order = np.lexsort((a, code))
        off, adrgs, grps = _csr(code[order], len(ids), a[order], grp[order])
        out[f"{lst}_off"], out[f"{lst}_adrg"] = off, adrgs
        if lst == "ss":
            out["ss_grp"] = grps
    unknown_lists = set(adrg_codes.list) - {"zd", "ss", "ss1"}
    if unknown_lists:
        raise CodebookError(f"{folder / 'adrg_codes.csv'}: unknown list {sorted(unknown_lists)[0]!r}")

    # DRGs of each ADRG in seq order
    drg = drg.assign(a=adrg_index.reindex(drg.adrg).to_numpy(), seq=drg.seq.astype(int))
    if drg.a.isna().any():
        raise CodebookError(f"{folder / 'drg.csv'}: DRG of an unknown ADRG: {drg[drg.a.isna()].drg.iloc[0]}")
    drg = drg.sort_values(["a", "seq"], kind="stable").reset_index(drop=True)
    drg_rule = np.array(
        [_kind(SeverityRule, r, f"{folder / 'drg.csv'}: row {i + 2}") for i, r in enumerate(drg.rule)],
        dtype=np.int8,
    )
    adrg_drg_off = np.zeros(n_adrg + 1, np.int64)
    np.cumsum(np.bincount(drg.a.astype(int), minlength=n_adrg), out=adrg_drg_off[1:])

    # QY: position inside each MDC after which the test runs (-1 disabled)
    qy_after = np.full(len(mdc), -1, np.int32)
    qy_trigger = np.zeros(len(mdc), np.int8)
    for i, row in qy.iterrows():
        where = f"{folder / 'qy.csv'}: row {i + 2}"
        if row.enabled.strip().lower() != "true":
            continue
        m = int(mdc_index[row.mdc])
        qy_trigger[m] = _kind(QyTrigger, row.trigger, where)
        qy_after[m] = int(adrg_index[row.after_adrg]) - int(mdc_adrg_off[m])

    return {
        **out,
        "dx_codes": dx_codes,
        "proc_codes": proc_codes,
        "dx_alias": dx_alias,
        "dx_alias_id": dx_alias_id,
        "proc_alias": proc_alias,
        "proc_alias_id": proc_alias_id,
        "dx_known": np.isin(dx_codes, _strings(dx_dict.code)),
        "proc_known": np.isin(proc_codes, _strings(proc_dict.code)),
        "proc_valid": np.isin(proc_codes, _strings(valid.code)),
        "mdc_labels": mdc.mdc.to_numpy().astype(str),
        "mdc_gate": gate.astype(np.int8),
        "mdc_gate_param": gate_param,
        "dx_mdc_mask": dx_mdc_mask,
        "dx_part": dx_part,
        "mcc_table": table_of(mcc, "code"),
        "cc_table": table_of(cc, "code"),
        "cce_table": table_of(cce.rename(columns={"principal_code": "code"}), "code"),
        "adrg_labels": adrg.adrg.to_numpy().astype(str),
        "adrg_mdc": adrg.m.astype(np.int32).to_numpy(),
        "adrg_rule": rule,
        "adrg_age_days_max": age_days_max,
        "adrg_bw_min": bw_min,
        "adrg_bw_lt": bw_lt,
        "adrg_dnf_off": dnf_off,
        "adrg_dnf_mask": dnf_mask,
        "mdc_adrg_off": mdc_adrg_off,
        "drg_labels": drg.drg.to_numpy().astype(str),
        "drg_rule": drg_rule,
        "adrg_drg_off": adrg_drg_off,
        "qy_after": qy_after,
        "qy_trigger": qy_trigger,
    }
