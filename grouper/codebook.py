"""Codebook (编码库 / 分组方案): one scheme's code dictionaries and grouping tables, compiled to numpy arrays.

``Codebook.load("chs-drg-1.1")`` reads ``codebooks/chs-drg-1.1/*.csv``, checks every rule kind against the engine's
closed set (grouper/drg/rules.py) and compiles the tables into flat arrays indexed by integer code ids, the shape
the numba kernel reads. The compiled arrays are cached on disk, keyed by the hash of the source files, so a
second load only reads one ``.npz``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codes import encode_values, normalise_codes
from grouper.drg.expr import (
    STEP_GATE,
    STEP_ITEM,
    STEP_PRE,
    Cmp,
    Instr,
    Op,
    Sel,
    compile_condition,
    conjuncts,
    factored,
    guards,
    may_hold,
    required_pdx_list,
    required_sex,
    stack_depth,
)
from grouper.drg.rules import Check, NumberReading, SeverityRule
from grouper.errors import CodebookError, OutputError
from grouper.io.writer import write_with
from grouper.resources import data_root

if TYPE_CHECKING:  # pandas is imported where a codebook is compiled or named, not for every grouping
    import pandas as pd

    from grouper.strings import StringIds

__all__ = ["DEFAULT_SCHEME", "Codebook", "CodebookError", "EngineSettings", "codebook_dir"]

_QY_NAME = "歧义组"

#: Most values a condition may stack: the kernel holds its stack of booleans in one 64-bit integer.
_DEEPEST = 64
_CACHE_FORMAT = 10  # 3: postfix programs; 4: guards; 5, 6, 8, 9: steps and their prefilter; 7: anydx gates;
# 10: shared tests factored out


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


#: The scheme in force (国家医保局 CHS-DRG 2.0, 2024): the default of ``Codebook.load`` and ``drgdip group``.
DEFAULT_SCHEME = "chs-drg-2.0"


@dataclass(frozen=True)
class EngineSettings:
    """What differs between schemes and is not grouping data (``[engine]`` of codebook.toml).

    Attributes
    ----------
    checks : tuple[Check, ...]        blocking record checks (病案校验), in order
    numbers : NumberReading            how ages and birth weight are read (codebooks/chs-drg-2.0/RULES.md §1.3)
    severity_includes_principal : bool whether the principal dx takes part in its own MCC/CC scan (2.0: yes)
    sex_spellings : tuple[str, ...]    how sex must be written to pass the ``SEX_INVALID`` check (2.0: exactly
                                       ``"1"`` or ``"2"``, codebooks/chs-drg-2.0/RULES.md §1.4), compared with the sex as written
    """

    checks: tuple[Check, ...] = (Check.SEX_MISSING,)
    numbers: NumberReading = NumberReading.JAVA
    severity_includes_principal: bool = False
    sex_spellings: tuple[str, ...] = ("1", "2")

    @classmethod
    def from_toml(cls, table: dict, path: Path) -> EngineSettings:
        known = {"checks", "numbers", "severity_includes_principal", "sex_spellings"}
        for key in table:
            if key not in known:
                raise CodebookError(
                    f"{path}: [engine] {key}: unknown setting (known: {', '.join(sorted(known))})"
                )
        try:
            checks = tuple(Check(c) for c in table.get("checks", [Check.SEX_MISSING]))
        except ValueError as exc:
            raise CodebookError(f"{path}: [engine] checks: {exc} (known: {', '.join(Check)})") from None
        try:
            numbers = NumberReading(table.get("numbers", "java"))
        except ValueError as exc:
            raise CodebookError(
                f"{path}: [engine] numbers: {exc} (known: {', '.join(NumberReading)})"
            ) from None
        principal = table.get("severity_includes_principal", False)
        if not isinstance(principal, bool):
            raise CodebookError(f"{path}: [engine] severity_includes_principal: expected true or false")
        spellings = table.get("sex_spellings", list(cls.sex_spellings))
        if not isinstance(spellings, list) or not all(isinstance(v, str) and v for v in spellings):
            raise CodebookError(
                f'{path}: [engine] sex_spellings: expected a list of strings such as ["1", "2"]'
            )
        return cls(checks, numbers, principal, tuple(spellings))


@dataclass(frozen=True, eq=False)
class Codebook:
    """A compiled CHS-DRG codebook.

    Attributes
    ----------
    scheme : str                       e.g. ``"chs-drg-2.0"``
    fingerprint : str                  SHA-256 of the source tables (recorded in every output)
    arrays : dict[str, ndarray]        the compiled tables (see ``_compile``); kernels read these only
    settings : EngineSettings          the scheme's engine settings
    folder : Path                      the codebook's folder (for the tables grouping does not read)
    """

    scheme: str
    fingerprint: str
    arrays: dict[str, np.ndarray] = field(repr=False)
    settings: EngineSettings = field(default_factory=EngineSettings)
    folder: Path | None = field(default=None, repr=False)
    #: what grouping derives from the arrays, made on first use (:meth:`cached`): the code lookups (alias → id,
    #: code → id, the raw spellings already looked up), the kernel's tables, the label dictionaries
    _maps: dict[str, object] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict:
        """A copy (pickling, to a cluster's worker) leaves what was derived behind: each process makes its own."""
        return {**self.__dict__, "_maps": {}}

    @classmethod
    def load(cls, scheme: str | os.PathLike = DEFAULT_SCHEME, *, cache: bool = True) -> Codebook:
        """Load a codebook by name or folder, compiling it (and caching the result) when needed."""
        folder = codebook_dir(scheme)
        toml_path = folder / "codebook.toml"
        meta = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        settings = EngineSettings.from_toml(meta.get("engine", {}), toml_path)
        digest = hashlib.sha256()
        for path in [*sorted(folder.glob("*.csv")), toml_path]:
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
        return cls(scheme=name, fingerprint=fingerprint, arrays=arrays, settings=settings, folder=folder)

    def names(self, level: str, codes) -> np.ndarray:
        """Names (中文名称) of MDC, ADRG or DRG codes of this scheme; ``""`` for codes it does not know.

        Parameters
        ----------
        level : ``"mdc"``, ``"adrg"`` or ``"drg"``
        codes : sequence or array of codes (``xQY`` and ``QY`` are the ambiguous group 歧义组)

        Examples
        --------
        >>> cb = Codebook.load("chs-drg-1.1")
        >>> cb.names("drg", ["GZ13", "XXXX"]).tolist()
        ['其他消化系统诊断，伴并发症或合并症', '']
        """
        if level not in ("mdc", "adrg", "drg"):
            raise ValueError(f"level must be mdc, adrg or drg, not {level!r}")
        labels, names = self.arrays[f"{level}_labels"], self.arrays[f"{level}_names"]
        if level == "drg":
            labels = np.append(labels, self.arrays["qy_labels"])
            names = np.append(names, np.full(len(self.arrays["qy_labels"]), _QY_NAME))
        elif level == "adrg":
            labels, names = np.append(labels, "QY"), np.append(names, _QY_NAME)
        import pandas as pd

        index = pd.Index(labels)
        pos = index.get_indexer(np.asarray(codes, dtype=object).astype(str))
        return np.where(pos >= 0, np.append(names, "")[pos], "").astype(str)

    def table(self, name: str) -> pd.DataFrame:
        """A table of the codebook folder read as text, e.g. the QC lists ``dx_gray.csv`` (医保灰码)."""
        if self.folder is None:
            raise CodebookError(f"{self.scheme}: no codebook folder")
        return _read(self.folder, name)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def encode_dx(self, values: pa.Array, *, verbatim: bool = False) -> np.ndarray:
        """Diagnosis ids (-1 unknown or empty) of raw code strings, after normalisation and remapping; with
        ``verbatim``, exact matches only (the reference's reading: ``j18.900`` and ``" J18.900"`` match nothing)."""
        return encode_values(values, lambda distinct: self._lookup("dx", distinct, verbatim))

    def encode_proc(self, values: pa.Array, *, verbatim: bool = False) -> np.ndarray:
        """Procedure ids (-1 unknown or empty) of raw code strings, after normalisation and remapping; with
        ``verbatim``, exact matches only."""
        return encode_values(values, lambda distinct: self._lookup("proc", distinct, verbatim))

    def _lookup(self, kind: str, distinct: pa.Array, verbatim: bool = False) -> np.ndarray:
        """Ids of distinct raw strings, through the strings already looked up in this process (a batch repeats
        most of the previous batches' codes: only the new ones are cleaned and looked up)."""

        def remembered():
            from grouper.strings import Remembered  # (numba: not at import, the command line's start)

            return Remembered(lambda new: self._look_up(kind, new, verbatim))

        return self.cached(f"{kind}{'=' if verbatim else ''}/seen", remembered)(distinct)

    def _look_up(self, kind: str, distinct: pa.Array, verbatim: bool) -> np.ndarray:
        if verbatim:  # the codes themselves, each its own id
            codes = self.arrays[f"{kind}_codes"]
            return self._map(f"{kind}=", lambda: (codes, np.arange(len(codes)))).ids_of(distinct)[0]
        keys = self._map(kind, lambda: (self.arrays[f"{kind}_alias"], self.arrays[f"{kind}_alias_id"]))
        clean = normalise_codes(distinct, kind)
        found = keys.ids_of(clean)[0]
        if kind == "dx":
            # a dagger/asterisk pair the dictionary lacks is read as its dagger (etiology) code
            dagger = pc.replace_substring_regex(clean, r"\+.*$", "")
            found = np.where(found < 0, keys.ids_of(dagger)[0], found)
        return found

    def _map(self, name: str, entries) -> StringIds:
        """The string → id map ``name`` of this codebook, made once from ``entries()`` (strings, ids; the first
        of two equal strings wins)."""

        def made() -> StringIds:
            from grouper.strings import StringIds  # (numba: not at import, the command line's start)

            strings, ids = entries()
            found = StringIds()
            found.add(pa.array(strings, pa.string()), np.asarray(ids, np.int32))
            return found

        return self.cached(name, made)

    def cached(self, name: str, make):
        """The object ``name`` derived from this codebook, made once per process by ``make()``."""
        found = self._maps.get(name)
        return found if found is not None else self._maps.setdefault(name, make())


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def save(tmp: Path) -> None:
        with tmp.open("wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, **arrays)

    with contextlib.suppress(OutputError):  # a read-only cache folder only costs a recompile next time
        write_with(path, save, if_exists="replace")


# ---------------------------------------------------------------------------------------------------------
# compilation: CSV tables → flat arrays


def _read(folder: Path, name: str) -> pd.DataFrame:
    import pandas as pd

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


def _anydx_list(program: list[Instr]) -> tuple[str, str] | None:
    """The list of a top-level ``anydx in L`` conjunct of a gate, if any."""
    for k in conjuncts(program):
        ins = program[k]
        if ins.op == Op.DX_IN and ins.sel == Sel.ANYDX and not ins.prefix:
            return ins.list
    return None


def _possible_steps(programs, step_prog, bits, op: Op, principal: Sel, anywhere: Sel, arg) -> np.ndarray:
    """Bit set per code (row 0: no code) of the steps still possible when that code is the principal: the code
    decides each ``<principal> in L`` leaf (and makes ``<any> in L`` true when it is in L); a step is impossible
    when its program cannot be true then (``expr.may_hold``)."""
    n_steps = len(step_prog)
    out = np.zeros((bits.shape[0] + 1, max(1, -(-n_steps // 64))), np.uint64)
    none = np.zeros(1, np.bool_)  # row 0: no principal code, in no list

    def leaf(ins):
        if ins.op != op or ins.sel not in (principal, anywhere):
            return True, True
        lid = arg(ins)
        held = np.concatenate(
            [none, ((bits[:, lid >> 6] >> np.uint64(lid & 63)) & np.uint64(1)).astype(np.bool_)]
        )
        return (held, ~held) if ins.sel == principal else (True, ~held)

    for s, p in enumerate(step_prog):
        ok = np.broadcast_to(may_hold(programs[p], leaf), (bits.shape[0] + 1,))
        out[ok, s >> 6] |= np.uint64(1) << np.uint64(s & 63)
    return out


def _steps_where(programs, step_prog, false) -> np.ndarray:
    """Bit set of the steps whose program may still be true when every leaf ``false(ins)`` holds for is false."""
    out = np.zeros(max(1, -(-len(step_prog) // 64)), np.uint64)
    for s, p in enumerate(step_prog):
        if may_hold(programs[p], lambda ins: (False, True) if false(ins) else (True, True)):
            out[s >> 6] |= np.uint64(1) << np.uint64(s & 63)
    return out


def _compile(folder: Path, options: dict) -> dict[str, np.ndarray]:
    import pandas as pd

    dx_dict, proc_dict = _read(folder, "dx.csv"), _read(folder, "proc.csv")
    mdc, mdc_dx = _read(folder, "mdc.csv"), _read(folder, "mdc_dx.csv")
    adrg, adrg_codes, drg = (
        _read(folder, "adrg.csv"),
        _read(folder, "adrg_codes.csv"),
        _read(folder, "drg.csv"),
    )
    mcc, cc, cce = _read(folder, "mcc.csv"), _read(folder, "cc.csv"), _read(folder, "cc_exclusion.csv")
    valid, qy = _read(folder, "proc_valid.csv"), _read(folder, "qy.csv")

    # MDCs in seq order; ADRGs by (MDC seq, ADRG seq); enabled QY rows by (MDC, seq)
    mdc = mdc.assign(seq=mdc.seq.astype(int)).sort_values("seq", kind="stable").reset_index(drop=True)
    if len(mdc) > 32:
        raise CodebookError(f"{folder / 'mdc.csv'}: more than 32 MDCs")
    mdc_index = pd.Series(np.arange(len(mdc)), index=mdc.mdc)
    adrg = adrg.reset_index().assign(m=mdc_index.reindex(adrg.mdc).to_numpy(), seq=adrg.seq.astype(int))
    if adrg.m.isna().any():
        row = adrg[adrg.m.isna()].iloc[0]
        raise CodebookError(
            f"{folder / 'adrg.csv'}: row {row['index'] + 2}: ADRG {row.adrg} of an unknown MDC"
        )
    adrg = adrg.sort_values(["m", "seq"], kind="stable").reset_index(drop=True)
    n_adrg = len(adrg)
    adrg_index = pd.Series(np.arange(n_adrg), index=adrg.adrg)
    qy = qy.reset_index()
    qy = qy[qy.enabled.str.strip().str.lower() == "true"]
    unknown = qy[~qy.mdc.isin(mdc.mdc) | ~qy.after_adrg.isin(["", *adrg.adrg])]
    if len(unknown):
        raise CodebookError(
            f"{folder / 'qy.csv'}: row {unknown['index'].iloc[0] + 2}: unknown MDC or after_adrg"
        )

    # every condition parsed and compiled; errors name file, row and position (grouper.errors.CodebookError)
    gate_progs = [
        compile_condition(text, f"{folder / 'mdc.csv'}: row {i + 2} ({m})", owner=m)
        for i, (text, m) in enumerate(zip(mdc.gate, mdc.mdc, strict=True))
    ]
    adrg_progs = [
        compile_condition(text, f"{folder / 'adrg.csv'}: row {i + 2} ({a})", owner=a)
        for i, a, text in zip(adrg["index"], adrg.adrg, adrg.condition, strict=True)
    ]
    qy_progs = [
        compile_condition(text, f"{folder / 'qy.csv'}: row {i + 2} ({q})", owner=q)
        for i, q, text in zip(qy["index"], qy.qy_drg, qy.condition, strict=True)
    ]
    wheres = (
        [f"{folder / 'mdc.csv'}: row {i + 2}" for i in range(len(mdc))]
        + [f"{folder / 'adrg.csv'}: row {i + 2}" for i in adrg["index"]]
        + [f"{folder / 'qy.csv'}: row {i + 2}" for i in qy["index"]]
    )
    programs = gate_progs + adrg_progs + qy_progs

    # the lists the programs name: (owner, name) → codes; MDCx.zd is mdc_dx, the rest adrg_codes
    listed = {k: g.to_numpy().astype(str) for k, g in adrg_codes.groupby(["adrg", "list"])["code"]}
    listed.update({(m, "zd"): g.to_numpy().astype(str) for m, g in mdc_dx.groupby("mdc")["code"]})
    dx_refs: dict[tuple[str, str], None] = {}
    proc_refs: dict[tuple[str, str], None] = {("", "valid"): None}
    for prog, where in zip(programs, wheres, strict=True):
        for ins in prog:
            if ins.list is None or ins.list == ("", "valid"):
                continue
            if ins.list not in listed:
                owner, name = ins.list
                raise CodebookError(
                    f"{where}: unknown list {owner}.{name} at position {ins.pos + 1} (no adrg_codes.csv rows with "
                    f"adrg={owner}, list={name})"
                )
            (proc_refs if ins.op == Op.PROC_IN else dx_refs)[ins.list] = None
    listed[("", "valid")] = valid.code.to_numpy().astype(str)

    dx_codes = _strings(
        dx_dict.code,
        mdc_dx.code,
        mcc.code,
        cc.code,
        cce.principal_code,
        *(pd.Series(listed[r]) for r in dx_refs),
    )
    proc_codes = _strings(proc_dict.code, *(pd.Series(listed[r]) for r in proc_refs))
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

    # list ids and membership bit sets: bit L of row c = code c is in list L (one test per predicate)
    prefixes = sorted({ins.prefix for prog in programs for ins in prog if ins.prefix})
    dx_list_id = {ref: i for i, ref in enumerate(dx_refs)}
    dx_list_id.update({("^", p): len(dx_refs) + i for i, p in enumerate(prefixes)})
    proc_list_id = {ref: i for i, ref in enumerate(proc_refs)}
    dx_bits = np.zeros((len(dx_codes), max(1, -(-len(dx_list_id) // 64))), np.uint64)
    proc_bits = np.zeros((len(proc_codes), max(1, -(-len(proc_list_id) // 64))), np.uint64)
    for bits, ids, refs in ((dx_bits, dx_id, dx_refs), (proc_bits, proc_id, proc_refs)):
        ids_of = ids.to_numpy()
        for ref in refs:
            lid = (dx_list_id if bits is dx_bits else proc_list_id)[ref]
            rows = ids_of[ids.index.get_indexer(listed[ref])]
            bits[rows, lid >> 6] |= np.uint64(1) << np.uint64(lid & 63)
    for p in prefixes:
        lid = dx_list_id[("^", p)]
        dx_bits[np.char.startswith(dx_codes, p), lid >> 6] |= np.uint64(1) << np.uint64(lid & 63)

    # programs → flat instruction arrays (opcode, selector, argument, constant)
    def arg(ins: Instr) -> int:
        if ins.prefix:
            return dx_list_id[("^", ins.prefix)]
        if ins.op == Op.PROC_IN:
            return proc_list_id[ins.list]
        if ins.op in (Op.DX_IN, Op.PARTS):
            return dx_list_id[ins.list]
        return ins.arg

    for prog, where in zip(programs, wheres, strict=True):
        if stack_depth(prog) > _DEEPEST:
            raise CodebookError(f"{where}: condition nests deeper than {_DEEPEST} values")
    # what the kernel runs: each condition with the tests its or's branches share in front (expr.factored; the
    # same value, unless that nests deeper than the kernel's stack holds); what the MDCs' candidates and the
    # sex checks read stays the condition as written
    runs = [f if stack_depth(f := factored(p)) <= _DEEPEST else p for p in programs]
    flat = [ins for prog in runs for ins in prog]
    prog_off = np.zeros(len(runs) + 1, np.int64)
    np.cumsum([len(p) for p in runs], out=prog_off[1:])
    required = [required_pdx_list(p) for p in programs]
    # guards: the top-level conjuncts, tried first and cheapest first; a program that is only an "and" of its
    # guards is true when they all are, without running its stack
    found = [guards(p) for p in runs]
    guard_off = np.zeros(len(runs) + 1, np.int64)
    np.cumsum([len(g) for g, _ in found], out=guard_off[1:])
    guard_ins = np.array([prog_off[i] + k for i, (g, _) in enumerate(found) for k in g], np.int64)
    prog_pure = np.array([pure for _, pure in found], np.bool_)

    n_mdc = len(mdc)
    n_gate, n_adrg_prog = len(gate_progs), len(adrg_progs)
    qy_labels = np.unique(qy.qy_drg.to_numpy().astype(str)) if len(qy) else np.array([], dtype="<U4")
    qy_mdc = np.array([mdc_index.get(f"MDC{q[0]}", -1) for q in qy_labels], np.int32)
    if (qy_mdc < 0).any():
        raise CodebookError(f"{folder / 'qy.csv'}: QY group {qy_labels[qy_mdc < 0][0]} of no MDC of mdc.csv")
    qy_label_of = np.searchsorted(qy_labels, qy.qy_drg.to_numpy().astype(str)).astype(np.int32)
    qy_m = mdc_index[qy.mdc].to_numpy()
    qy_seq = qy.seq.astype(int).to_numpy()
    pre = [k for k in np.lexsort((qy_seq, qy_m)) if qy.stage.iloc[k] == "pre_gate"]
    bad_stage = set(qy.stage) - {"pre_gate", "in_mdc"}
    if bad_stage:
        raise CodebookError(f"{folder / 'qy.csv'}: unknown stage {sorted(bad_stage)[0]!r} (pre_gate, in_mdc)")
    # the steps of each MDC (codebooks/chs-drg-2.0/RULES.md §2): its pre-gate QY rows, its gate, then its items: its ADRGs in order,
    # each in_mdc QY row right after its after_adrg
    step_prog, step_kind, step_target, step_off = [], [], [], np.zeros(n_mdc + 1, np.int64)
    for m in range(n_mdc):
        rows = [k for k in np.lexsort((qy_seq, qy_m)) if qy_m[k] == m]
        after = {}
        for k in rows:
            if qy.stage.iloc[k] == "pre_gate":
                step_prog.append(n_gate + n_adrg_prog + k)
                step_kind.append(STEP_PRE)
                step_target.append(-2 - int(qy_label_of[k]))
            else:
                after.setdefault(qy.after_adrg.iloc[k], []).append(k)
        step_prog.append(m)
        step_kind.append(STEP_GATE)
        step_target.append(-1)
        for k in after.get("", []):
            step_prog.append(n_gate + n_adrg_prog + k)
            step_kind.append(STEP_ITEM)
            step_target.append(-2 - int(qy_label_of[k]))
        for a in np.flatnonzero(adrg.m.to_numpy() == m):
            step_prog.append(n_gate + int(a))
            step_kind.append(STEP_ITEM)
            step_target.append(int(a))
            for k in after.get(adrg.adrg.iloc[a], []):
                step_prog.append(n_gate + n_adrg_prog + k)
                step_kind.append(STEP_ITEM)
                step_target.append(-2 - int(qy_label_of[k]))
        step_off[m + 1] = len(step_prog)

    # MDCs a principal can open: bit m when the gate and pre-gate rows need no list or the code is in it
    dx_mdc_mask = np.zeros(len(dx_codes), np.uint32)
    dx_any_mask = np.zeros(len(dx_codes), np.uint32)
    open_mdcs = any_mdcs = np.uint32(0)
    pre_of = np.bincount(qy_m[pre], minlength=n_mdc) if pre else np.zeros(n_mdc, np.int64)
    mdc_gate_sex = np.zeros(n_mdc, np.int8)
    for m in range(n_mdc):
        need = {required[m], *(required[n_gate + n_adrg_prog + k] for k in pre if qy_m[k] == m)}
        mdc_gate_sex[m] = required_sex(gate_progs[m])
        if len(need) == 1 and None not in need:
            (ref,) = need
            dx_mdc_mask[dx_id.reindex(listed[ref]).dropna().astype(int).to_numpy()] |= np.uint32(
                1
            ) << np.uint32(m)
        elif pre_of[m] or _anydx_list(gate_progs[m]) is None:
            open_mdcs |= np.uint32(1) << np.uint32(m)
        else:  # a gate "anydx in L and …" (2.0 MDCY): a candidate when some diagnosis is in L
            rows = dx_id.reindex(listed[_anydx_list(gate_progs[m])]).dropna().astype(int).to_numpy()
            dx_any_mask[rows] |= np.uint32(1) << np.uint32(m)
            any_mdcs |= np.uint32(1) << np.uint32(m)
    # which steps a principal diagnosis / principal procedure leaves possible: a step whose program cannot be true
    # once the principal's lists are known ("pdx in L" decided, "anydx in L" true when it is in L); row 0 is the
    # unknown code (-1)
    dx_steps = _possible_steps(runs, step_prog, dx_bits, Op.DX_IN, Sel.PDX, Sel.ANYDX, arg)
    proc_steps = _possible_steps(runs, step_prog, proc_bits, Op.PROC_IN, Sel.PPROC, Sel.ANYPROC, arg)
    # and the steps still possible for a case without any procedure (every "proc in L" false), and those possible
    # when age_years is not 0 ("age_years == 0" false: the newborn rows)
    no_proc_steps = _steps_where(runs, step_prog, lambda ins: ins.op == Op.PROC_IN)
    aged_steps = _steps_where(
        runs,
        step_prog,
        lambda ins: ins.op == Op.NUM and ins.arg == 0 and ins.sel == Cmp.EQ and ins.const == 0,
    )
    parts = mdc_dx[mdc_dx.part != ""]
    part_names = np.unique(parts.part)
    dx_part = np.full(len(dx_codes), -1, np.int8)
    dx_part[dx_id[parts.code].to_numpy()] = np.searchsorted(part_names, parts.part)

    def table_of(frame: pd.DataFrame, key: str) -> np.ndarray:
        out = np.full(len(dx_codes), -1, np.int32)
        out[dx_id[frame[key]].to_numpy()] = frame.table.astype(int).to_numpy()
        return out

    unknown_adrg = (
        set(adrg_codes.adrg) - set(adrg.adrg) - set(qy.qy_drg) - {o for o, _ in dx_refs | proc_refs}
    )
    if unknown_adrg:
        raise CodebookError(f"{folder / 'adrg_codes.csv'}: codes for unknown ADRG {sorted(unknown_adrg)[0]}")

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

    return {
        "dx_codes": dx_codes,
        "proc_codes": proc_codes,
        "dx_alias": dx_alias,
        "dx_alias_id": dx_alias_id,
        "proc_alias": proc_alias,
        "proc_alias_id": proc_alias_id,
        "dx_known": np.isin(dx_codes, _strings(dx_dict.code)),
        "proc_known": np.isin(proc_codes, _strings(proc_dict.code)),
        "proc_valid": np.isin(proc_codes, _strings(valid.code)),
        "dx_bits": dx_bits,
        "proc_bits": proc_bits,
        "prog_off": prog_off,
        "ins_op": np.array([int(i.op) for i in flat], np.int8),
        "ins_sel": np.array([int(i.sel) for i in flat], np.int8),
        "ins_arg": np.array([arg(i) for i in flat], np.int32),
        "ins_const": np.array([i.const for i in flat], np.float64),
        "guard_off": guard_off,
        "guard_ins": guard_ins,
        "prog_pure": prog_pure,
        "mdc_labels": mdc.mdc.to_numpy().astype(str),
        "mdc_names": mdc.name.to_numpy().astype(str),
        "mdc_gate_sex": mdc_gate_sex,
        "mdc_open": np.array([open_mdcs], np.uint32),
        "mdc_step_off": step_off,
        "step_prog": np.array(step_prog, np.int32),
        "step_kind": np.array(step_kind, np.int8),
        "step_target": np.array(step_target, np.int32),
        "dx_steps": dx_steps,
        "proc_steps": proc_steps,
        "no_proc_steps": no_proc_steps,
        "aged_steps": aged_steps,
        "mdc_gate_step": np.flatnonzero(np.array(step_kind) == STEP_GATE).astype(np.int64),
        "qy_labels": qy_labels,
        "qy_mdc": qy_mdc,
        "dx_mdc_mask": dx_mdc_mask,
        "dx_any_mask": dx_any_mask,
        "mdc_any": np.array([any_mdcs], np.uint32),
        "dx_part": dx_part,
        "mcc_table": table_of(mcc, "code"),
        "cc_table": table_of(cc, "code"),
        "cce_table": table_of(cce.rename(columns={"principal_code": "code"}), "code"),
        "adrg_labels": adrg.adrg.to_numpy().astype(str),
        "adrg_names": adrg.name.to_numpy().astype(str),
        "adrg_condition": adrg.condition.to_numpy().astype(str),
        "adrg_mdc": adrg.m.astype(np.int32).to_numpy(),
        "drg_labels": drg.drg.to_numpy().astype(str),
        "drg_names": drg.name.to_numpy().astype(str),
        "drg_rule": drg_rule,
        "adrg_drg_off": adrg_drg_off,
    }
