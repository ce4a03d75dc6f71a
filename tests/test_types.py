"""The collaborators' public APIs are typed: mypy, configured in pyproject.toml ([tool.mypy]), passes over
cqgov_tui/store, cqgov_tui/engine and cqgov_tui/sync. Runs here so the README's test command (and .ci/run) checks it."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cache_dir(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> pathlib.Path:
    # pytest's own cache (.pytest_cache/, gitignored) keeps mypy's incremental cache between runs;
    # a throwaway directory when the cache plugin is off.
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("mypy") if cache is not None else tmp_path / "mypy_cache"


def test_mypy_passes_over_store_engine_and_sync(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(_cache_dir(request, tmp_path)), "--no-color-output"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert r.returncode == 0, "mypy found type errors:\n" + r.stdout + r.stderr
