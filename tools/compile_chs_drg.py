"""Compile the CHS-DRG source tables (../shared/codebooks-src/chs-drg-*) into codebooks/chs-drg-1.1 and -2.0.

Run from the repository root: ``python tools/compile_chs_drg.py [1.1|2.0 ...]`` (default: both; the sources
folder is ``../shared/codebooks-src`` or ``$CHS_DRG_SOURCES``). The output is
the project's own format (docs/codebook.md): tidy CSV tables whose MDC gates, ADRG conditions and ambiguous-group
(QY) rows are expressions of one condition language (grouper/drg/expr.py), and a ``codebook.toml`` with the
version, the file hashes, the provenance and the engine settings that are not grouping data. 2.0 is written in
that language by its source; for 1.1 the 13 rule kinds and the gate prose are rewritten as expressions (chs-drg-2.0
RULES.md §4.4). The conformance suites are copied into ``tests/grouper/drg/``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the source tables; another location through the environment variable CHS_DRG_SOURCES
SOURCES = Path(os.environ.get("CHS_DRG_SOURCES", ROOT.parent / "shared" / "codebooks-src"))
TEST_DATA = {
    "1.1": ROOT / "tests" / "grouper" / "drg" / "data",
    "2.0": ROOT / "tests" / "grouper" / "drg" / "data20",
}

COPIED = [
    "dx.csv",
    "proc.csv",
    "proc_valid.csv",
    "dx_map.csv",
    "proc_map.csv",
    "mcc.csv",
    "cc.csv",
    "cc_exclusion.csv",
    "mdc_dx.csv",
    "drg.csv",
]
#: 2.0 lists the grouper does not read: 医保灰码, 不作为分组规则 and the two WK_20 QC hint maps (RULES.md §8)
QC_LISTS = [
    "dx_gray.csv",
    "proc_gray.csv",
    "dx_not_for_grouping.csv",
    "proc_not_for_grouping.csv",
    "dx_surgical_hint_mdc.csv",
    "dx_surgical_hint_adrg.csv",
]
CONFORMANCE = {
    "1.1": ["conformance_visible.csv", "conformance_opendrg_input.csv"],
    "2.0": ["conformance_examples.csv", "conformance_published.csv", "conformance_visible.csv"],
}

# 1.1 entry_rule prose of mdc.csv → gate expression (RULES.md 1.1 §2, 2.0 §4.4). Unknown prose stops the compile.
GATES_11 = {
    "principal_proc in proc_valid": "pproc valid",
    "principal_dx in mdc_dx[{m}] AND age_years==0": "pdx in {m}.zd and age_years == 0",
    "principal_dx in mdc_dx[{m}]": "pdx in {m}.zd",
    "principal_dx in mdc_dx[{m}] AND sex==1 (male)": 'pdx in {m}.zd and sex == "1"',
    "principal_dx in mdc_dx[{m}] AND sex==2 (female)": 'pdx in {m}.zd and sex == "2"',
    "principal_dx in mdc_dx[{m}] AND count(distinct part of every dx (principal or other) "
    "found in mdc_dx[{m}])>=2": "pdx in {m}.zd and parts(anydx in {m}.zd) >= 2",
}

# 1.1 rule kinds → expressions (2.0 RULES.md §4.4); {…} are filled from the row's params
RULES_11 = {
    "PDX": "pdx in zd",
    "PPROC": "pproc in ss",
    "PDX_PPROC": "pdx in zd and pproc in ss",
    "ANYPROC_BOTH": "anyproc in ss and anyproc in ss1",
    "PDX_ANYPROC_BOTH": "pdx in zd and anyproc in ss and anyproc in ss1",
    "PPROC_VALID": "pproc valid",
    "ANYDX_PPROC_VALID": "anydx in zd and pproc valid",
    "NO_VALID_PROC": "not anyproc valid",
    "NEWBORN_PPROC": "pproc in ss and age_days <= {age_days_max}",
    "NEWBORN_PDX": "pdx in zd and age_days <= {age_days_max}",
    "NEWBORN_ANYDX_BW": "anydx in zd and birth_weight_g in {band} and age_days <= {age_days_max}",
    "ALWAYS": "true",
}

ENGINE = {
    "1.1": (
        "# Record checks of the reference (sex empty; newborn without birth weight) and the project's age checks.\n"
        "# No SEX_INVALID: the reference reads 1.0 as 1 and 男/女 as 1/2 and accepts any other non-empty sex, which\n"
        "# then never enters MDCM/MDCN (RULES.md §1, quirk 7), so the record reader's value maps apply.\n"
        'checks = ["SEX_MISSING", "NEWBORN_DATA_MISSING", "AGE_MISSING", "AGE_INVALID"]\n'
        "# Java reading (RULES.md §1): an empty number is 0; unreadable values are stopped by AGE_INVALID.\n"
        'numbers = "java"\n'
        "# MCC/CC are scanned over the other diagnoses only (RULES.md §4).\n"
        "severity_includes_principal = false\n"
    ),
    "2.0": (
        "# Record checks of the reference, in its order (RULES.md §1.4); no age or birth-weight check.\n"
        'checks = ["SEX_MISSING", "DX_MISSING", "SEX_INVALID"]\n'
        "# SEX_INVALID compares the sex as written with these, no trimming or value map: 男, 1.0 and ' 1' fail (§1.4).\n"
        'sex_spellings = ["1", "2"]\n'
        "# ECMAScript ToNumber (RULES.md §1.3): empty is 0, unreadable is NaN (false in every comparison but !=).\n"
        'numbers = "ecmascript"\n'
        "# The principal diagnosis takes part in its own MCC/CC scan (RULES.md §6.2, oracle quirk 6).\n"
        "severity_includes_principal = true\n"
    ),
}
TITLE = {
    "1.1": (
        "CHS-DRG 分组方案 1.1 (国家医疗保障局), 医保版 2.0 codes",
        "NHSA CHS-DRG 1.1 as transcribed by OpenDRG drg_group/chs_drg_11 (Apache-2.0); see NOTICE",
    ),
    "2.0": (
        "按病组（DRG）付费分组方案2.0版 (国家医疗保障局, 2024-07), 医保版 2.0 codes",
        "NHSA CHS-DRG 2.0 as transcribed by OpenDRG chs_drg_20 (web grouper @12d906af); see PROVENANCE.md and NOTICE",
    ),
}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _params(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if part)


def _groups_expression(groups: str) -> str:
    """``1|2&3`` → ``anyproc in ss_g1 or (anyproc in ss_g2 and anyproc in ss_g3)``."""
    terms = []
    for conj in groups.split("|"):
        parts = [f"anyproc in ss_g{g}" for g in conj.split("&")]
        terms.append(parts[0] if len(parts) == 1 else f"({' and '.join(parts)})")
    return " or ".join(terms)


def _condition_11(row: dict[str, str]) -> str:
    kind, p = row["rule_type"], _params(row["params"])
    if kind == "PDX_PROC_GROUPS":
        return f"pdx in zd and ({_groups_expression(p['groups'])})"
    if kind not in RULES_11:
        raise SystemExit(f"adrg.csv: {row['adrg']}: rule kind {kind} has no expression")
    if kind == "NEWBORN_ANYDX_BW":  # weight > 0 and bw_min <= weight < bw_lt
        low = int(p["bw_min"] or 0)
        high = p["bw_lt"] or "inf"
        p["band"] = f"(0, {high})" if low <= 0 else f"[{low}, {high})"
    return RULES_11[kind].format(**p)


def _tables_11(src: Path, out: Path) -> None:
    mdcs = []
    for row in _read(src / "mdc.csv"):
        text = row["entry_rule"].replace(row["mdc"], "{m}")
        if text not in GATES_11:
            raise SystemExit(f"mdc.csv: {row['mdc']}: entry rule not understood: {row['entry_rule']}")
        mdcs.append({**row, "gate": GATES_11[text].format(m=row["mdc"])})
    _write(out / "mdc.csv", ["mdc", "name", "seq", "gate", "entry_rule"], mdcs)

    adrgs = _read(src / "adrg.csv")
    grouped = {r["adrg"] for r in adrgs if r["rule_type"] == "PDX_PROC_GROUPS"}
    _write(
        out / "adrg.csv",
        ["mdc", "adrg", "name", "seq", "kind", "condition"],
        [{**r, "condition": _condition_11(r)} for r in adrgs],
    )
    # PDX_PROC_GROUPS: the ss rows of group g become the list ss_g<g> (2.0 RULES.md §4.4)
    codes = []
    for r in _read(src / "adrg_codes.csv"):
        if r["adrg"] in grouped and r["list"] == "ss":
            r = {**r, "list": f"ss_g{r['grp']}"}
        codes.append({**r, "grp": ""})
    _write(out / "adrg_codes.csv", ["adrg", "list", "code", "grp"], codes)

    # the 1.1 QY test (any procedure ∈ proc_valid after the last surgical/non-OR ADRG) is switched off everywhere
    qys = [
        {
            "mdc": r["mdc"],
            "qy_drg": f"{r['mdc'][-1]}QY",
            "seq": "1",
            "stage": "in_mdc",
            "after_adrg": r["after_adrg"],
            "condition": "anyproc valid",
            "enabled": r["enabled"],
            "note": "disabled in chs_drg_11 (RULES.md §3)",
        }
        for r in _read(src / "qy.csv")
    ]
    _write(
        out / "qy.csv", ["mdc", "qy_drg", "seq", "stage", "after_adrg", "condition", "enabled", "note"], qys
    )


def _tables_20(src: Path, out: Path) -> None:
    _write(out / "mdc.csv", ["mdc", "name", "seq", "gate", "entry_rule"], _read(src / "mdc.csv"))
    shutil.copyfile(src / "adrg.csv", out / "adrg.csv")
    shutil.copyfile(src / "adrg_codes.csv", out / "adrg_codes.csv")
    qys = [{**r, "enabled": "true"} for r in _read(src / "qy.csv")]
    _write(
        out / "qy.csv", ["mdc", "qy_drg", "seq", "stage", "after_adrg", "condition", "enabled", "note"], qys
    )
    for name in QC_LISTS:
        shutil.copyfile(src / name, out / name)


def compile_codebook(version: str, src: Path) -> None:
    out = ROOT / "codebooks" / f"chs-drg-{version}"
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(src / name, out / name)
    (_tables_11 if version == "1.1" else _tables_20)(src, out)

    files = sorted(p.name for p in out.glob("*.csv"))
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (out / name).read_bytes())
    title, source = TITLE[version]
    (out / "codebook.toml").write_text(
        "# Compiled by tools/compile_chs_drg.py; do not edit by hand.\n"
        "[codebook]\n"
        f'scheme = "chs-drg-{version}"\n'
        f'title = "{title}"\n'
        f'source = "{source}"\n'
        f'content_sha256 = "{digest.hexdigest()}"\n'
        "\n[options]\n"
        "# Map 国临版 codes that are not valid 医保版 2.0 codes through dx_map/proc_map (never a valid code).\n"
        "remap_invalid_codes = true\n"
        "# Longest chain of remaps followed (the source has chains such as A19.800x010→A19.000x001→A19.001).\n"
        "remap_max_steps = 3\n"
        "\n[engine]\n" + ENGINE[version],
        encoding="utf-8",
    )
    shutil.copyfile(src / "PROVENANCE.md", out / "PROVENANCE.md")
    shutil.copyfile(src / "RULES.md", out / "RULES.md")

    TEST_DATA[version].mkdir(parents=True, exist_ok=True)
    for name in CONFORMANCE[version]:
        shutil.copyfile(src / name, TEST_DATA[version] / name)
    print(f"compiled {len(files)} tables into {out.relative_to(ROOT)}")


if __name__ == "__main__":
    for v in sys.argv[1:] or ["1.1", "2.0"]:
        compile_codebook(v, SOURCES / f"chs-drg-{v}")
