"""Compile the CHS-DRG 1.1 source tables (../shared/codebooks-src/chs-drg-1.1) into codebooks/chs-drg-1.1.

Run from the repository root: ``python tools/compile_chs_drg.py [SOURCE_DIR]``. The output is the project's own
format: the same tidy CSV tables, with the MDC gates turned from prose into a closed set of gate kinds (the
source's ``entry_rule`` text is kept as documentation only), the ADRG rule column renamed ``rule``, and a
``codebook.toml`` with the version, the file hashes and the provenance. It also copies the conformance suites into
``tests/grouper/drg/data/``.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "codebooks-src" / "chs-drg-1.1"
OUT = ROOT / "codebooks" / "chs-drg-1.1"
TEST_DATA = ROOT / "tests" / "grouper" / "drg" / "data"

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
    "adrg_codes.csv",
    "drg.csv",
]

# entry_rule prose of mdc.csv → (gate kind, params). Unknown prose stops the compile.
GATES = {
    "principal_proc in proc_valid": ("PPROC_VALID", ""),
    "principal_dx in mdc_dx[{m}] AND age_years==0": ("PDX_INFANT", ""),
    "principal_dx in mdc_dx[{m}]": ("PDX", ""),
    "principal_dx in mdc_dx[{m}] AND sex==1 (male)": ("PDX_SEX", "sex=1"),
    "principal_dx in mdc_dx[{m}] AND sex==2 (female)": ("PDX_SEX", "sex=2"),
    "principal_dx in mdc_dx[{m}] AND count(distinct part of every dx (principal or other) "
    "found in mdc_dx[{m}])>=2": ("PDX_TRAUMA_PARTS", "min_parts=2"),
}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, fields: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def compile_codebook(src: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(src / name, OUT / name)

    mdcs = []
    for row in _read(src / "mdc.csv"):
        text = row["entry_rule"].replace(row["mdc"], "{m}")
        if text not in GATES:
            raise SystemExit(f"mdc.csv: {row['mdc']}: entry rule not understood: {row['entry_rule']}")
        gate, params = GATES[text]
        mdcs.append({**row, "gate": gate, "params": params})
    _write(OUT / "mdc.csv", ["mdc", "name", "seq", "gate", "params", "entry_rule"], mdcs)

    adrgs = [{k if k != "rule_type" else "rule": v for k, v in r.items()} for r in _read(src / "adrg.csv")]
    _write(OUT / "adrg.csv", ["mdc", "adrg", "name", "seq", "kind", "rule", "params"], adrgs)

    # The 1.1 QY test is "any procedure in proc_valid" (RULES.md §3); record it as a trigger kind.
    qys = [{**r, "trigger": "ANYPROC_VALID"} for r in _read(src / "qy.csv")]
    _write(OUT / "qy.csv", ["mdc", "enabled", "after_adrg", "trigger"], qys)

    files = sorted(p.name for p in OUT.glob("*.csv"))
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (OUT / name).read_bytes())
    (OUT / "codebook.toml").write_text(
        "# Compiled by tools/compile_chs_drg.py; do not edit by hand.\n"
        "[codebook]\n"
        'scheme = "chs-drg-1.1"\n'
        'title = "CHS-DRG 分组方案 1.1 (国家医疗保障局), 医保版 2.0 codes"\n'
        'source = "NHSA CHS-DRG 1.1 as transcribed by OpenDRG drg_group/chs_drg_11 (Apache-2.0); see NOTICE.md"\n'
        f'content_sha256 = "{digest.hexdigest()}"\n'
        "\n[options]\n"
        "# Map 国临版 codes that are not valid 医保版 2.0 codes through dx_map/proc_map (never a valid code).\n"
        "remap_invalid_codes = true\n"
        "# Longest chain of remaps followed (the source has chains such as A19.800x010→A19.000x001→A19.001).\n"
        "remap_max_steps = 3\n",
        encoding="utf-8",
    )
    shutil.copyfile(src / "PROVENANCE.md", OUT / "PROVENANCE.md")
    shutil.copyfile(src / "RULES.md", OUT / "RULES.md")

    TEST_DATA.mkdir(parents=True, exist_ok=True)
    for name in ("conformance_visible.csv", "conformance_opendrg_input.csv"):
        shutil.copyfile(src / name, TEST_DATA / name)
    print(f"compiled {len(files)} tables into {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    compile_codebook(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
