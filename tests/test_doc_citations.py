"""No file of the repository cites a document the repository does not contain (issue 13): every ``NAME.md`` named in
code, tests, docs, codebooks or comments is a file of the repository, found from the repository's root or from the
citing file's folder, and a section it cites (``docs/formulas.md §3.3``) is a heading or a ``* §3.3`` item there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A document name with its folders, then maybe an anchor and a section: docs/formulas.md §3.3, RULES.md §1.4.
_CITATION = re.compile(
    r"(?<![\w./-])((?:\.\./|[\w\-\u4e00-\u9fff]+/)*[\w\-\u4e00-\u9fff]+\.md)(?!\w)(?:#[\w\-.]*)?"
    r"(?:[ ,]*§\s?(\d+(?:\.\d+)*))?"
)
#: Files that write their text into other folders: their citations are read from there.
_WRITES_INTO = {
    "tools/compile_chs_drg.py": ("codebooks/chs-drg-1.1", "codebooks/chs-drg-2.0"),
    "tools/compile_qc.py": ("codebooks/qc",),
}
_BINARY = (".parquet", ".xlsx", ".png", ".gz", ".zip", ".whl")


def _files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (an unpacked wheel or sdist)")
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()  # its examples are not citations
    return [
        f for f in out.splitlines() if f and f != this and not f.endswith(_BINARY) and (ROOT / f).is_file()
    ]


def _sections(doc: Path) -> set[str]:
    """The section numbers a document has: headings ``## §3``/``## 3.`` and items ``* §3.3``."""
    found = set()
    for line in doc.read_text(encoding="utf-8").splitlines():
        m = re.match(r"(?:#+|[*-])\s*§?(\d+(?:\.\d+)*)(?:\.?\s|$)", line)
        if m:
            found.add(m.group(1))
    return found


def _missing() -> list[str]:
    problems = []
    for name in _files():
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        bases = [ROOT, (ROOT / name).parent, *(ROOT / b for b in _WRITES_INTO.get(name, ()))]
        for m in _CITATION.finditer(text):
            cited, section = m.group(1), m.group(2)
            docs = [
                b / cited
                for b in bases
                if (b / cited).resolve().is_relative_to(ROOT) and (b / cited).is_file()
            ]
            line = text.count("\n", 0, m.start()) + 1
            if not docs:
                problems.append(f"{name}:{line}: {cited} is not in the repository")
            elif section and not any(section in _sections(d) for d in docs):
                problems.append(f"{name}:{line}: {cited} has no section §{section}")
    return problems


def test_every_cited_document_and_section_is_in_the_repository():
    problems = _missing()
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_missing_document_and_a_missing_section(tmp_path):
    doc = ROOT / "docs/formulas.md"
    assert "3.3" in _sections(doc) and "99" not in _sections(doc)
    found = [
        m.groups() for m in _CITATION.finditer("see payment.md §2.5, docs/formulas.md §3.3 and self.mdc")
    ]
    assert found == [("payment.md", "2.5"), ("docs/formulas.md", "3.3")]
