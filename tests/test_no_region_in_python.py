"""No region is named in the package's Python (issue 8 "a region's rules in its policy"): a region's rules are
data in its policy (codebooks/policies/<region>-<year>.toml), so no identifier and no string the code works with
names a region of the shipped policies. Docstrings and comments may cite where a rule comes from."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The shipped regions' Chinese names (the policies name their regions in pinyin).
_CHINESE = ("广州", "济宁", "泰安", "宜昌")


def _regions() -> set[str]:
    names = set(_CHINESE)
    for path in (ROOT / "codebooks/policies").glob("*.toml"):
        region = tomllib.loads(path.read_text(encoding="utf-8"))["policy"]["region"]
        if region not in ("demo", "example-drg"):
            names.add(region)
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_region_is_named_in_the_packages_code():
    regions = _regions()
    assert {"taian", "泰安"} <= regions
    found = []
    for path in sorted([*(ROOT / "grouper").rglob("*.py"), *(ROOT / "payment").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                text = node.value.lower()
            elif isinstance(node, ast.Name):
                text = node.id.lower()
            elif isinstance(node, ast.Attribute):
                text = node.attr.lower()
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {r}" for r in regions if r in text]
    assert not found, found
