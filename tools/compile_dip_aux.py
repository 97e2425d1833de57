"""Compile the auxiliary-typing tables (codebooks/dip/aux/) that come from a source table.

Run from the repository root: ``python tools/compile_dip_aux.py [--src PATH]``. Writes

* ``codebooks/dip/aux/cci_quan2005.csv`` (``category, category_zh, prefix, weight, zeroed_if_present``): the
  Charlson/Quan-2005 ICD-10 prefixes with Charlson weights, from ``dip/cci_charlson_quan2005_icd10_prefixes.csv``
  (comorbidipy 0.5.0, MIT; licence copied beside it). Not the official DIP CCI list (docs/dip.md §5.1).

``subtypes.csv`` and ``code_flags.csv`` in the same folder are written by hand (see its README.md).
Nothing at run or test time reads the source directory; only this script does.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "codebooks" / "dip" / "aux"
SRC_CCI = "dip/cci_charlson_quan2005_icd10_prefixes.csv"
SRC_CCI_SHA256 = (
    "dfc8f0618c0cccdd0961d7fdda9cbbe3271509bed3a144e3c82efd06689a9019"  # codebooks-src PROVENANCE §4
)


def compile_cci(src: Path) -> Path:
    path = src / SRC_CCI
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SRC_CCI_SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not the recorded {SRC_CCI_SHA256}")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    out = OUT / "cci_quan2005.csv"
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["category", "category_zh", "prefix", "weight", "zeroed_if_present"])
        for r in rows:
            w.writerow(
                [
                    r["category"],
                    r["category_zh"],
                    r["icd10_prefix"],
                    r["weight_charlson"],
                    r["zeroed_if_present"],
                ]
            )
    shutil.copyfile(src / "dip" / "LICENSE.comorbidipy.txt", OUT / "LICENSE.comorbidipy.txt")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "codebooks-src")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    out = compile_cci(args.src)
    print(f"{out}: sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
