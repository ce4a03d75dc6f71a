"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Tests never depend on the terminal they run in.
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def tmp_db(tmp_path):
    return str(tmp_path / "store.duckdb")
