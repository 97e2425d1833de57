"""Policy files under attack (issue 11): an unreadable or hostile file is one PolicyError naming the file, never
a traceback; the new range and cross-field rules are reported all at once by ``policy check``.

Each single rule has its broken fragment in ``tests/payment/invalid/`` (checked by test_policy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from payment.cli import app
from payment.policy import Policy, PolicyError

BASE = Path(__file__).parent / "invalid" / "_base.toml"
runner = CliRunner()


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "p.toml"
    path.write_bytes(text.encode(encoding))
    return path


def test_a_gbk_file_is_one_error_naming_the_file(tmp_path):
    text = BASE.read_text(encoding="utf-8").replace('region = "test"', 'region = "济宁市"')
    path = _write(tmp_path, text, "gbk")
    with pytest.raises(PolicyError, match=r"p\.toml: not UTF-8 text .*GBK") as info:
        Policy.load(path)
    assert info.value.path == str(path)
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output and "not UTF-8" in result.output


def test_a_utf8_byte_order_mark_is_skipped_as_notepad_writes_one(tmp_path):
    """Chosen: a UTF-8 file starting with a byte-order mark (BOM, what Windows Notepad saves) is read as the same
    file without it (it was "not valid TOML (line 1, column 1)"): the mark is no TOML, so skipping it is
    unambiguous. The policy is the same, its sha256 included (settlement outputs record it)."""
    demo = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"
    path = tmp_path / "p.toml"
    path.write_bytes(b"\xef\xbb\xbf" + demo.read_bytes().replace(b"\n", b"\r\n"))  # Notepad: BOM and CRLF
    with_bom, plain = Policy.load(path), Policy.load(demo)
    assert with_bom.sha256 == plain.sha256 and with_bom.values == plain.values
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    # a mark anywhere else is text, and TOML refuses it where it stands
    path.write_bytes(demo.read_bytes().replace(b"[point_value]", b"\xef\xbb\xbf[point_value]", 1))
    with pytest.raises(PolicyError, match=r"p\.toml: not valid TOML"):
        Policy.load(path)


def test_a_utf16_file_says_to_save_it_as_utf8(tmp_path):
    path = _write(
        tmp_path, BASE.read_text(encoding="utf-8"), "utf-16"
    )  # Notepad's "Unicode": a BOM, then UTF-16
    with pytest.raises(PolicyError) as info:
        Policy.load(path)
    assert str(info.value) == f'{path}: UTF-16 text (Notepad\'s "Unicode"), not UTF-8; save the file as UTF-8'
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert (
        result.exit_code == 1
        and "Traceback" not in result.output
        and "save the file as UTF-8" in result.output
    )


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be"])
def test_a_utf32_file_is_called_utf32(tmp_path, encoding):
    """UTF-32's little-endian byte-order mark starts with UTF-16's: the file was called UTF-16 text."""
    text = BASE.read_text(encoding="utf-8")
    path = _write(tmp_path, ("\ufeff" if encoding != "utf-32" else "") + text, encoding)
    with pytest.raises(PolicyError) as info:
        Policy.load(path)
    assert str(info.value) == f"{path}: UTF-32 text, not UTF-8; save the file as UTF-8"


def test_a_3000_deep_array_is_one_error(tmp_path):
    path = _write(tmp_path, BASE.read_text(encoding="utf-8") + "\n[x]\ny = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(PolicyError, match="nested too deep"):
        Policy.load(path)
    assert [str(e) for e in Policy.problems(path)] == [
        f"{path}: not a policy: arrays or tables nested too deep"
    ]


def test_every_broken_rule_is_reported_at_once(tmp_path):
    text = BASE.read_text(encoding="utf-8")
    text = text.replace("year = 2025", "year = 2025\n").replace(
        "effective = { start = 2025-01-01, end = 2025-12-31 }",
        "effective = { start = 2025-01-01T00:00:00, end = 2025-12-31 }",
    )
    text = text.replace(
        'inpatient_fund = { value = 100000000, unit = "yuan", source = "s" }',
        'inpatient_fund = { value = nan, unit = "yuan", source = "s" }',
    )
    text = text.replace(
        'ratio = { value = 0.5, unit = "ratio", source = "s" }',
        'ratio = { value = 4.0, unit = "ratio", source = "s" }',
    )
    text = text.replace('[scores]\nscore_scale = { value = 1000, unit = "points", source = "s" }\n', "")
    text += '\n[[settlement.surplus_bands]]\nfrom = 0.0\nretain = 1.2\nsource = "s"\n'
    problems = [
        str(p).removeprefix(f"{tmp_path / 'p.toml'}: ") for p in Policy.problems(_write(tmp_path, text))
    ]
    assert problems == [
        "policy.effective: expected { start = YYYY-MM-DD, end = YYYY-MM-DD } (dates, no time)",
        "scores: missing: the [scores] section",
        "budget.all.inpatient_fund: expected a finite number, got nan",
        "settlement.surplus_bands[0].retain: a share must lie in 0–1, got 1.2",
        "deviation.high.ratio: must be above the low ratio 4.0, got 2.0",
    ]
    result = runner.invoke(app, ["policy", "check", str(tmp_path / "p.toml")])
    assert result.exit_code == 1 and "5 problem(s)" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("section", ["point_value", "deviation", "scores", "settlement", "hospital_coef"])
def test_a_missing_section_is_named_not_a_traceback(tmp_path, section):
    lines, out, skip = BASE.read_text(encoding="utf-8").splitlines(), [], False
    for ln in lines:
        if ln.startswith("["):
            skip = ln.strip("[]").split(".")[0] == section
        if not skip:
            out.append(ln)
    path = _write(tmp_path, "\n".join(out) + "\n")
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{section}: missing" in result.output
    with pytest.raises(PolicyError, match=rf"{section}: missing"):
        Policy.load(path)


def test_unified_design_keeps_bed_day_and_per_case_in_the_pool():
    """Under budget.design = unified the bed-day and per-case amounts are not carved out, so they may exceed
    what the carve-out rule would allow."""
    pol = Policy.load(BASE)
    raw = {
        **pol.raw,
        "budget": {
            "design": {"value": "unified", "source": "s"},
            "all": {
                "inpatient_fund": {"value": 100, "unit": "yuan", "source": "s"},
                "bed_day": {"value": 150, "unit": "yuan", "source": "s"},
            },
        },
    }
    assert Policy.from_dict(raw).budget.design == "unified"
    raw["budget"]["design"]["value"] = "carve_out"
    with pytest.raises(PolicyError, match=r"budget\.all: carve-outs .* leave nothing"):
        Policy.from_dict(raw)
