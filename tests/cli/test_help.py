"""Every command's --help shows its option texts as written: a ``[section]`` is text, not rich markup."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from payment.cli import app

#: What rich reads as a style tag: ``[`` then a letter, ``#``, ``/`` or ``@`` (rich.markup's tag pattern).
_TAG = re.compile(r"(?<!\\)\[([a-z#/@][^\[\]]*)\]")


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():  # typer's own click: groups known by their commands
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_catalog_help_keeps_the_policy_sections():
    out = CliRunner().invoke(app, ["catalog", "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}).output
    assert "A DIP policy whose [dip.grouping] and [dip.catalogue] give the settings" in out


def test_no_help_text_loses_a_bracketed_word():
    """A bracketed word of an option's help (unescaped in the source) would be swallowed by rich markup."""
    runner, seen = CliRunner(), 0
    for path, cmd in _commands(typer.main.get_command(app)):
        texts = [getattr(p, "help", None) or "" for p in cmd.params]
        words = {m.group(0) for t in texts for m in _TAG.finditer(t)}
        seen += len(texts)
        if not words:
            continue
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"}).output
        for word in words:
            assert word in out, f"drgdip {' '.join(path)} --help loses {word}"
    assert seen > 50  # the option texts were found
