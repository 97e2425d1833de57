"""Shared fixtures: the compiled CHS-DRG codebook (loaded once per session)."""

from __future__ import annotations

import pytest

import grouper


@pytest.fixture(scope="session")
def codebook() -> grouper.Codebook:
    return grouper.Codebook.load("chs-drg-1.1")
