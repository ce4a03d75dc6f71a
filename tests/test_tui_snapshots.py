"""SVG snapshots of the main screens at 160×50 and 80×24 (deterministic: SimClock, sample city, no ticks)."""

from __future__ import annotations

import shutil

import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.console.backend import LocalBackend
from cqgov_tui.console.sample import build_sample_store, sample_user
from cqgov_tui.store import open_store
from screens.app import ConsoleApp

START = 1_795_000_000.0


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("snap") / "sample.duckdb")
    store, _ = build_sample_store(SimClock(START), path=path, extra=8)
    store.close()
    return path


@pytest.fixture
def app(sample_file, tmp_path):
    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    clock = SimClock(START + 600)
    store = open_store(path, clock)
    backend = LocalBackend(store, user=sample_user(), clock=clock, sweep=False)
    # A long tick keeps the refresh worker from racing the snapshot; the first frame is drawn on mount.
    yield ConsoleApp(backend, tick_s=3600, keys_path=tmp_path / "none.toml")
    store.close()


async def _settle(pilot):
    from textual.worker import WorkerCancelled

    for _ in range(3):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:
            pass
        await pilot.pause()


def test_command_centre_160x50(app, snap_compare):
    assert snap_compare(app, terminal_size=(160, 50), run_before=_settle)


def test_command_centre_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


def test_map_pane_80x24(app, snap_compare):
    async def before(pilot):
        await _settle(pilot)
        await pilot.press("2")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)

