"""Compile the QC code lists of the self-audit (codebooks/qc/) from the source tables in ../shared/codebooks-src.

Run from the repository root: ``python tools/compile_qc.py [--src PATH]``. Writes

* ``codebooks/qc/sex_dx.csv``: diagnoses of one sex only: the CHS-DRG 1.1 MDCM (male) and MDCN/MDCO (female)
  diagnosis lists, a code listed under both sexes left out;
* ``codebooks/qc/gray_dx.csv`` / ``gray_proc.csv``: the 医保灰码 lists (CHS-DRG 2.0 source package);
* ``codebooks/qc/not_principal_dx.csv``: the 不作为分组规则 diagnosis list (CHS-DRG 2.0 source package) after the
  hand-written rows of ``not_principal_rules.csv`` (asterisk codes, external causes V01–Y98, Z37).

The hand-written lists (``sex_proc.csv``, ``age_dx.csv``, ``low_standard_dx.csv``) are edited directly.
Nothing at run or test time reads the source directory; only this script does.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "codebooks" / "qc"
_SEX_SOURCE = "CHS-DRG 1.1 MDCM / MDCN / MDCO diagnosis lists (codebooks/chs-drg-1.1/mdc_dx.csv)"
_GRAY_SOURCE = "医保灰码, CHS-DRG 2.0 source package (codebooks-src/chs-drg-2.0, see its PROVENANCE.md)"
_NOT_SOURCE = (
    "不作为分组规则 诊断, CHS-DRG 2.0 source package (codebooks-src/chs-drg-2.0, see its PROVENANCE.md)"
)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows(rows)
    print(f"{path.relative_to(ROOT)}: {len(rows)} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent.parent / "shared" / "codebooks-src")
    src = parser.parse_args().src
    male, female = set(), set()
    for row in _rows(ROOT / "codebooks" / "chs-drg-1.1" / "mdc_dx.csv"):
        if row["mdc"] == "MDCM":
            male.add(row["code"])
        elif row["mdc"] in ("MDCN", "MDCO"):
            female.add(row["code"])
    sex = sorted([c, "exact", "1", _SEX_SOURCE] for c in male - female)
    sex += sorted([c, "exact", "2", _SEX_SOURCE] for c in female - male)
    _write(OUT / "sex_dx.csv", ["code", "match", "sex", "source"], sorted(sex))
    for kind in ("dx", "proc"):
        codes = sorted({r["code"] for r in _rows(src / "chs-drg-2.0" / f"{kind}_gray.csv")})
        _write(
            OUT / f"gray_{kind}.csv", ["code", "match", "source"], [[c, "exact", _GRAY_SOURCE] for c in codes]
        )
    rules = [[r["code"], r["match"], r["source"]] for r in _rows(OUT / "not_principal_rules.csv")]
    listed = sorted({r["code"] for r in _rows(src / "chs-drg-2.0" / "dx_not_for_grouping.csv")})
    _write(
        OUT / "not_principal_dx.csv",
        ["code", "match", "source"],
        rules + [[c, "exact", _NOT_SOURCE] for c in listed],
    )


if __name__ == "__main__":
    main()
