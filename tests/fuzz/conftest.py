"""Fuzz and attack suite (issue 11 item 8): profiles in ``profile.py``; the counts printed after the run."""

from __future__ import annotations

from tests.fuzz.profile import COUNTS, PROFILE


def pytest_terminal_summary(terminalreporter):
    if COUNTS:
        terminalreporter.write_line(
            f"fuzz ({PROFILE}): " + ", ".join(f"{k} {v:,}" for k, v in sorted(COUNTS.items()))
        )
