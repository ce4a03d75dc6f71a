"""The console's start-up: the board's narrow read of open events, and the launcher's start mode (collector
off, short GIL switch interval) that always ends — when every pane is filled, or when opening fails."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys

import pytest

from cqgov_tui.errors import BadInput
from cqgov_tui.store import open_store

from factories import SAMPLE_START, sample_backend, until_ready


def test_open_event_links_are_the_same_from_the_queue_and_from_the_index(sample_file, tmp_path):
    from cqgov_tui.catalogue.loader import load_catalogue
    from cqgov_tui.engine import risk_grades

    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    store = open_store(path)
    try:
        assert store._open is None  # nothing has loaded the index yet
        narrow = store.open_event_links()
        assert store._open is None, "the narrow read must not build the open-event index"
        catalogue = load_catalogue()
        now = SAMPLE_START + 3600
        before = risk_grades.grades(store, catalogue, now)
        indexed = [(e.reported_at, e.number, e.source, e.reporter, e.category_code, e.grid_code)
                   for e in store.open_events()]
        assert store._open is not None
        assert narrow and sorted(narrow) == sorted(indexed) == sorted(store.open_event_links())
        assert risk_grades.grades(store, catalogue, now) == before
    finally:
        store.close()


def test_a_console_that_cannot_open_leaves_the_collector_and_switch_interval_as_they_were(tmp_path):
    from cqgov_screens.launch import run_console

    switch = sys.getswitchinterval()
    assert gc.isenabled()
    with pytest.raises(BadInput, match="no store at"):
        run_console(db_path=str(tmp_path / "missing.duckdb"))
    assert gc.isenabled() and sys.getswitchinterval() == switch


def test_start_mode_ends_once_every_pane_is_filled(sample_file, tmp_path):
    from cqgov_screens.app import ConsoleApp

    backend = sample_backend(sample_file, tmp_path, SAMPLE_START + 3600)
    ended: list[bool] = []

    async def run() -> None:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=0.2)
        app.started = lambda: ended.append(app.ready)
        async with app.run_test(size=(160, 50)) as pilot:
            await until_ready(pilot)
            await pilot.pause()
            assert ended == [True]  # once, and only when ready
            app.refresh_data(force=True)
            await pilot.pause()
        assert ended == [True]

    try:
        asyncio.run(run())
    finally:
        backend.store.close()
