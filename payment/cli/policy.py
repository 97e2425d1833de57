"""``drgdip policy init|check|schema``: write a policy template, check a policy file, write its JSON Schema."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from payment.cli import _options as opt
from payment.cli._app import UserError, app, check_output, command
from payment.cli._app import stderr as console
from payment.cli._coerce import Group

policy_app = typer.Typer(
    cls=Group,
    no_args_is_help=True,
    help="Write a policy template (政策模板), check a policy file, write the policy's JSON Schema.",
)
app.add_typer(policy_app, name="policy")


def _write(text: str, out: Path, force: bool) -> None:
    if str(out) == "-":
        sys.stdout.write(text)
        return
    check_output(out, force)
    from grouper.io.writer import write_text  # the one writer: atomic, never half a template

    write_text(text, out, if_exists="replace" if force else "error")


@command("init", on=policy_app)
def init(
    scheme: str = typer.Option(..., "--scheme", help="dip or drg."),
    region: str = typer.Option(..., "--region", help=escape("Region name written in [policy].")),
    year: int = typer.Option(
        ..., "--year", help="Policy year (effective 1 Jan – 31 Dec).", min=1900, max=9999
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Policy TOML to write (- for stdout)."),
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Write a complete, commented policy template that `drgdip policy check` accepts as it is."""
    from payment.policy_schema import TEMPLATE_SOURCE, template

    if scheme not in ("dip", "drg"):
        raise UserError(f"--scheme: {scheme!r} is not one of dip, drg")
    _write(template(scheme, region, year), out, force)
    if str(out) != "-":
        console.print(
            f'wrote {escape(str(out))}: replace each value citing source = "{TEMPLATE_SOURCE}", then '
            f"`drgdip policy check {escape(str(out))}`",
            highlight=False,
            soft_wrap=True,
        )


@command("check", on=policy_app)
def check(
    path: Path = typer.Argument(..., help="Policy TOML file."),
    debug: bool = opt.DEBUG,
) -> None:
    """Report every problem of a policy file at once (exit 1 if any), then its assumptions and placeholders."""
    from payment.policy import Policy
    from payment.policy_schema import TEMPLATE_SOURCE

    problems = Policy.problems(path)
    for p in problems:
        console.print(f"[red]error:[/red] {escape(str(p))}", highlight=False, soft_wrap=True)
    if problems:
        console.print(f"{len(problems)} problem(s) in {escape(str(path))}", highlight=False)
        raise typer.Exit(1)
    pol = Policy.load(path)
    placeholders = sorted(k for k, s in pol.cited.items() if s == TEMPLATE_SOURCE)
    for key in placeholders:
        console.print(
            f"[yellow]placeholder:[/yellow] {escape(key)} still cites the template", highlight=False
        )
    for a in pol.assumptions():
        console.print(f"assumption: {escape(a)}", highlight=False, soft_wrap=True)
    console.print(
        f"ok: {escape(str(path))} ({pol.scheme}, pools {', '.join(pol.pools)}; "
        f"{len(placeholders)} placeholder(s), {len(pol.assumptions())} assumption(s))",
        highlight=False,
    )


@command("schema", on=policy_app)
def schema(
    out: Path = typer.Option(Path("-"), "--out", "-o", help="JSON file to write (- for stdout)."),
    force: bool = opt.FORCE,
    debug: bool = opt.DEBUG,
) -> None:
    """Write the policy's JSON Schema (also shipped as codebooks/policies/policy.schema.json) for editors."""
    from payment.policy_schema import schema_text

    _write(schema_text(), out, force)
