"""Compile the DIP codebooks (codebooks/dip/) from the source tables in ../shared/codebooks-src.

Run from the repository root: ``python tools/compile_dip.py [--src PATH]``. Writes

* ``codebooks/dip/pingdingshan-2025/catalogue.csv`` and ``catalogue.toml``: the 平顶山 2025 DIP 2.0
  catalogue in the project's catalogue format (``grouper.dip.catalogue``);
* ``codebooks/dip/procedure_tiers.csv``: the derived default treatment tier of every 医保版 2.0 procedure
  (``grouper.dip.tiers``; rules in ``codebooks/dip/procedure_tier_rules.csv``).

Nothing at run or test time reads the source directory; only this script does.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "codebooks" / "dip"
SRC_CATALOGUE = "dip/pingdingshan_dip2_2025_catalogue.csv"

#: Source group_type → catalogue ``kind``.
_KIND = {
    "core": "core",
    "comprehensive": "comprehensive",
    "blank_kbbz": "blank",
    "ungrouped_chapter_placeholder": "placeholder",
    "export_only": "export_only",
}
#: 平顶山 综合 suffix → treatment tier (docs/dip.md §3.8).
_TIER = {"SS": "surgery", "ZLXCZ": "therapeutic", "ZDXCZ": "diagnostic", "BSZL": "conservative"}
_TIER_ZH = {"SS": "相关手术组", "ZLXCZ": "治疗性操作组", "ZDXCZ": "诊断性操作组", "BSZL": "内科诊疗组"}

_SOURCE = (
    "医保信息平台 DIP catalogue export (sheets 中间结果 + 目录) via GitHub "
    "atraa321/Hospital-Department-Operations-Dashboard, blob 23948e85f795ba6d80031c8a6c33b253970840aa"
)
_LICENCE = (
    "government table (著作权法 第五条); the source repository has no licence. NOT verified against a "
    "平顶山市医疗保障局 notice: for tests and examples only, never a national default."
)

CATALOGUE_COLUMNS = (
    "dip_code",
    "kind",
    "subcategory",
    "main_proc",
    "related_procs",
    "tier",
    "name",
    "score",
    "avg_cost",
    "cv",
    "n_cases",
    "avg_los",
    "discuss_flag",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(row: dict) -> str:
    kind = _KIND[row["group_type"]]
    suffix = row["comprehensive_treatment"]
    if kind == "blank":
        return "空白病种"
    if kind == "placeholder":
        return f"{row['remark']}-{_TIER_ZH[suffix]}"
    if kind in ("comprehensive", "export_only"):
        return f"{row['main_diag_name'] or row['main_diag_code']}-{_TIER_ZH[suffix]}"
    procs = [n for n in (row["main_oprn_name"], row["related_oprn_names"]) if n]
    return "：".join([row["main_diag_name"], "+".join(procs)]) if procs else row["main_diag_name"]


def compile_catalogue(src: Path) -> None:
    """Write the 平顶山 2025 catalogue (CSV + TOML) in the project's catalogue format."""
    path = src / SRC_CATALOGUE
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    region_avg = {r["region_avg_fee"] for r in rows}
    data_year = {r["data_year"] for r in rows}
    if len(region_avg) != 1 or len(data_year) != 1:
        sys.exit(f"error: {path}: region_avg_fee or data_year is not constant")
    out_dir = OUT / "pingdingshan-2025"
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "catalogue.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CATALOGUE_COLUMNS)
        for r in rows:
            kind = _KIND[r["group_type"]]
            w.writerow(
                [
                    r["dip_code"],
                    kind,
                    r["main_diag_code"],
                    r["main_oprn_code"],
                    r["related_oprn_codes"],
                    _TIER.get(r["comprehensive_treatment"], "") if kind != "core" else "",
                    _name(r),
                    r["score"],
                    r["avg_fee"],
                    r["cv"],
                    r["case_count"],
                    r["avg_los"],
                    r["discuss_flag"],
                ]
            )
    toml = f"""\
# 平顶山市 2025 年 DIP 2.0 分组目录库 (with 分值), compiled by tools/compile_dip.py from
# ../shared/codebooks-src/{SRC_CATALOGUE}. See codebooks/dip/PROVENANCE.md.
name = "pingdingshan-2025"
region = "平顶山市"
year = 2025
data_year = {data_year.pop()}
score_scale = 1000
# score = avg_cost / region_avg_cost × score_scale, to the 6-dp rounding of the source
score_method = "average_cost"
region_avg_cost = {region_avg.pop()}  # yuan, REGION_AVE_VAL
source = "{_SOURCE}"
licence = "{_LICENCE}"
source_sha256 = "{_sha256(path)}"
"""
    (out_dir / "catalogue.toml").write_text(toml, encoding="utf-8")


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def derive_procedure_tiers(src: Path) -> list[tuple[str, str, str]]:
    """Apply ``codebooks/dip/procedure_tier_rules.csv`` (first matching rule wins) to each procedure."""
    procs = _read(src / "chs-drg-1.1" / "proc.csv")
    adrg_kind = {r["adrg"]: r["kind"] for r in _read(src / "chs-drg-1.1" / "adrg.csv")}
    in_adrg: dict[str, set[str]] = {}
    for r in _read(src / "chs-drg-1.1" / "adrg_codes.csv"):
        if r["list"] in ("ss", "ss1"):
            in_adrg.setdefault(r["code"], set()).add(r["adrg"])
    rules = sorted(_read(OUT / "procedure_tier_rules.csv"), key=lambda r: int(r["order"]))
    out = []
    for p in procs:
        code, name = p["code"], p["name"]
        adrgs = in_adrg.get(code, set())
        for r in rules:
            scope = tuple(r["scope"].split("|")) if r["scope"] else ("",)
            if not code.startswith(scope):
                continue
            kind, pattern = r["kind"], r["pattern"]
            if kind == "code_prefix":
                hit = code.startswith(tuple(pattern.split("|")))
            elif kind == "name_regex":
                hit = re.search(pattern, name) is not None
            elif kind == "adrg_in":
                hit = bool(adrgs & set(pattern.split("|")))
            elif kind == "adrg_kind":
                hit = any(adrg_kind[a] == pattern for a in adrgs)
            elif kind == "default":
                hit = True
            else:
                sys.exit(f"error: procedure_tier_rules.csv: rule {r['rule']}: unknown kind {kind!r}")
            if hit:
                out.append((code, r["tier"], r["rule"]))
                break
    return out


def compile_procedure_tiers(src: Path) -> None:
    """Write ``codebooks/dip/procedure_tiers.csv`` (code, tier, rule)."""
    with (OUT / "procedure_tiers.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(("code", "tier", "rule"))
        w.writerows(derive_procedure_tiers(src))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "codebooks-src")
    args = parser.parse_args(argv)
    compile_catalogue(args.src)
    compile_procedure_tiers(args.src)


if __name__ == "__main__":
    main()
