"""Every command's --help shows its option texts as written: a ``[section]`` is text, not rich markup."""

from __future__ import annotations

import re

import click
import typer
from typer.testing import CliRunner

from payment.cli import app

#: What rich reads as a style tag: ``[`` then a letter, ``#``, ``/`` or ``@`` (rich.markup's tag pattern).
_TAG = re.compile(r"(?<!\\)\[([a-z#/@][^\[\]]*)\]")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_catalog_help_keeps_the_policy_sections():
    out = CliRunner().invoke(app, ["catalog", "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}).output
    assert "A DIP policy whose [dip.grouping] and [dip.catalogue] give the settings" in out


def test_no_help_text_loses_a_bracketed_word():
    """A bracketed word of an option's help (unescaped in the source) would be swallowed by rich markup."""
    runner = CliRunner()
    for path, cmd in _commands(typer.main.get_command(app)):
        texts = [p.help or "" for p in cmd.params if isinstance(p, click.Option)]
        words = {m.group(0) for t in texts for m in _TAG.finditer(t)}
        if not words:
            continue
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}).output
        for word in words:
            assert word in out, f"drgdip {' '.join(path)} --help loses {word}"
