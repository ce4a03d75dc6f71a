"""Shared test fixtures."""

from __future__ import annotations

import os

import pytest

# Tests never depend on the terminal they run in.
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
# ... nor on the user's own cqgov config file (README: Configuration): defaults come from flags only.
os.environ["CQGOV_CONFIG"] = os.devnull


@pytest.fixture
def tmp_db(tmp_path):
    return str(tmp_path / "store.duckdb")


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory):
    """The console tests' sample city, built once per module through the real engine."""
    from cqgov_tui.clock import SimClock
    from cqgov_tui.console.sample import build_sample_store
    from factories import SAMPLE_START

    path = str(tmp_path_factory.mktemp("sample") / "sample.duckdb")
    store, _ = build_sample_store(SimClock(SAMPLE_START), path=path, extra=8)
    store.close()
    return path
