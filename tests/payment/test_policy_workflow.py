"""Policy workflow (issue 13): a template from the loader's declarations, every problem at once, a JSON Schema
that stays in step, error text that rich markup does not swallow."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from payment.cli import app
from payment.policy import Policy
from payment.policy_schema import keys, schema, schema_text, spec_keys, template

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_every_declared_key_is_described_and_nothing_else():
    assert [k for k, _ in spec_keys()] == list(keys())
    for row in keys().values():
        assert row["zh"] and row["en"] and row["feeds"], row["key"]


@pytest.mark.parametrize("scheme", ["dip", "drg"])
def test_the_template_loads_and_names_every_key_it_takes(tmp_path, scheme):
    path = tmp_path / "p.toml"
    result = runner.invoke(
        app, ["policy", "init", "--scheme", scheme, "--region", "示例市", "--year", "2026", "-o", str(path)]
    )
    assert result.exit_code == 0, result.output
    pol = Policy.load(path)
    assert (pol.scheme, pol.header["region"], pol.header["year"]) == (scheme, "示例市", 2026)
    text = path.read_text(encoding="utf-8")
    for key, row in keys().items():
        if row[scheme] != "-":
            name = key.rsplit(".", 1)[1]
            assert f"# {row['zh']} — {row['en']}." in text and f"{name} = " in text, key
    # every commented key, uncommented, still loads: the commented values are the loader's defaults
    active = "\n".join(
        ln[2:] if ln.startswith("# ") and " = { value" in ln and "…" not in ln else ln
        for ln in text.splitlines()
    )
    assert Policy.from_dict(tomllib.loads(active)).scheme == scheme
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert (
        result.exit_code == 0 and "placeholder: scores.score_scale still cites the template" in result.output
    )


def test_check_reports_every_problem_at_once_and_exits_1(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(template("dip", "x", 2026), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    text = text.replace('regime = { value = "floating"', 'regime = { value = "fixed"')
    text = text.replace("decimals = { value = 4,", "decimals = { value = -4,")
    text = text.replace(
        'prepay_ratio = { value = 0.9, unit = "share"', 'prepay_ratio = { value = 0.9, unit = "ratio"'
    )
    path.write_text(text + "\n[budjet]\n", encoding="utf-8")
    problems = [str(p) for p in Policy.problems(path)]
    assert problems == [
        f"{path}: budjet: unknown key (known: policy, sources, scores, budget, point_value, deviation, "
        "hospital_coef, primary_care, tcm, special_case, routing, bed_day, per_case, dip, settlement)",
        f"{path}: point_value.decimals: must be ≥ 0, got -4",
        f"{path}: settlement.prepay_ratio: unit must be 'share', got 'ratio'",
        f"{path}: point_value.all.fixed: missing (needed by regime = 'fixed')",
    ]
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert "4 problem(s)" in result.output and result.output.count("error: ") == 4


def test_a_bracketed_key_in_an_error_stays_visible(tmp_path):
    path = tmp_path / "p.toml"
    text = template("dip", "x", 2026).replace("[budget.all]", "[budget.al]")
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 1
    assert "needs [budget.all] or [budget.employee] + [budget.resident]" in result.output
    pol = Policy.load(ROOT / "codebooks/policies/demo-2025.toml")
    assert pol  # the settle command prints the same message through fail(), which escapes it too


def test_shipped_policies_have_no_problems():
    for path in sorted((ROOT / "codebooks/policies").glob("*.toml")):
        assert Policy.problems(path) == [], path


def test_the_shipped_schema_is_the_generated_one():
    shipped = ROOT / "codebooks/policies/policy.schema.json"
    assert shipped.read_text(encoding="utf-8") == schema_text(), (
        "regenerate: drgdip policy schema -o codebooks/policies/policy.schema.json --force"
    )


def test_the_schema_accepts_the_shipped_policies_and_rejects_an_unknown_key():
    import jsonschema  # in the test extra: a missing one is a failure, not a skip

    for path in sorted((ROOT / "codebooks/policies").glob("*.toml")):
        raw = json.loads(json.dumps(tomllib.loads(path.read_text(encoding="utf-8")), default=str))
        jsonschema.validate(raw, schema())
    raw = json.loads(json.dumps(tomllib.loads(template("drg", "x", 2026)), default=str))
    jsonschema.validate(raw, schema())
    raw["deviation"]["hihg"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema())


def test_the_schema_and_the_loader_bound_the_policy_year_alike(tmp_path):
    """One declaration (payment.policy._YEARS) bounds policy.year for the loader and for an editor's schema."""
    import jsonschema

    from payment.policy import _YEARS

    text = template("drg", "x", 2026)
    raw = json.loads(json.dumps(tomllib.loads(text), default=str))
    assert schema()["properties"]["policy"]["properties"]["year"] == {
        "type": "integer",
        "minimum": _YEARS[0],
        "maximum": _YEARS[1],
    }
    raw["policy"]["year"] = -5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, schema())
    bad = tmp_path / "year.toml"
    bad.write_text(re.sub(r"(?m)^year( *)= 2026$", r"year\1= -5", text, count=1), encoding="utf-8")
    assert any(f"must lie in {_YEARS[0]}–{_YEARS[1]}" in p for p in map(str, Policy.problems(bad)))


def test_docs_key_reference_is_the_generated_one():
    from payment.policy_schema import key_reference

    text = (ROOT / "docs/policy.md").read_text(encoding="utf-8")
    assert key_reference() in text, "regenerate: python tools/make_policy_docs.py"
