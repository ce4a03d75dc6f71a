"""The every-day start opens the store after the first frame (``console.pending_store``): the snapshot's frame is
painted without DuckDB, the store opens once behind it and the workers then load the same; a store that turns
out unopenable then ends the console with the one-line error a start without a snapshot gives, changing
nothing on disk."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from cqgov_tui.clock import SimClock
from cqgov_tui.console import session, start_snapshot
from cqgov_tui.console.pending_store import PendingStore
from cqgov_tui.domain.entities import Tier
from cqgov_tui.errors import EXIT_STORE, StoreLocked

from factories import SAMPLE_START, wait_for

NOW = SAMPLE_START + 3600
LIMIT = 300


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def kept(sample_file, tmp_path):
    """A copy of the sample city that a console on ``--db`` closed: the store and its snapshot."""
    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    backend = session.open_backend(db_path=path, clock=SimClock(NOW))
    backend.preload()  # as the console's has: the rows it keeps carry names
    start_snapshot.close_and_keep(backend, path, LIMIT)
    assert start_snapshot.path_for(path).exists()
    return path


class _Opens:
    def __init__(self, result=None, error: BaseException | None = None):
        self.calls = 0
        self.result, self.error = result, error

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


class _Real:
    closed = False

    def head(self) -> int:
        return 7

    def close(self) -> None:
        self.closed = True


def test_a_pending_store_says_who_it_is_without_opening_and_opens_once():
    opens = _Opens(_Real())
    store = PendingStore("/x/store.duckdb", Tier.DISTRICT, "500105", "district-500105", SimClock(NOW), opens)
    assert (store.path, store.tier, store.code, store.is_replica, store.is_open) == (
        "/x/store.duckdb", Tier.DISTRICT, "500105", False, False)
    assert opens.calls == 0
    heads: list[int] = []
    threads = [threading.Thread(target=lambda: heads.append(store.head())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert heads == [7] * 8 and opens.calls == 1 and store.is_open
    real = store.open()
    store.close()
    assert real.closed


def test_a_store_that_cannot_be_opened_says_so_every_time_and_is_never_closed():
    opens = _Opens(error=StoreLocked("/x/store.duckdb: store is in use by process 1"))
    store = PendingStore("/x/store.duckdb", Tier.CITY, "500000", "city-500000", SimClock(NOW), opens)
    for _ in range(2):
        with pytest.raises(StoreLocked, match="in use"):
            store.head()
    assert opens.calls == 1 and isinstance(store.error, StoreLocked) and not store.is_open
    store.close()  # nothing was opened: nothing to close


def test_the_snapshot_stands_for_the_store_it_was_written_for(kept):
    snap = start_snapshot.read(kept)
    assert (snap.tier, snap.code, snap.node) == ("city", "500000", "city-500000")
    backend = session.pending_local_backend(kept, snap.tier, snap.code, snap.node, clock=SimClock(NOW))
    opened = session.open_backend(db_path=kept, clock=SimClock(NOW))
    try:
        assert backend.user == opened.user  # the same viewer as an opened store gives: the snapshot is usable
        assert start_snapshot.usable(snap, backend.user, LIMIT) is snap
        assert not backend.store.is_open
    finally:
        opened.store.close()
    assert session.pending_local_backend(kept, "city", "500000", "console-operator") is None  # a replica's
    assert session.pending_local_backend(kept, "planet", "500000", "planet-500000") is None


def test_closing_a_console_that_never_opened_its_store_leaves_store_and_snapshot_as_they_were(kept):
    before = (_digest(kept), _digest(str(start_snapshot.path_for(kept))), os.stat(kept).st_mtime_ns)
    snap = start_snapshot.read(kept)
    backend = session.pending_local_backend(kept, snap.tier, snap.code, snap.node, clock=SimClock(NOW))
    start_snapshot.close_and_keep(backend, kept, LIMIT)
    assert not backend.store.is_open
    assert (_digest(kept), _digest(str(start_snapshot.path_for(kept))), os.stat(kept).st_mtime_ns) == before
    assert start_snapshot.read(kept) == snap


def test_the_snapshot_frame_is_painted_before_the_store_opens_then_the_store_loads_the_same(kept, tmp_path):
    from cqgov_screens.app import ConsoleApp
    from cqgov_screens.widgets.directive_list import DirectiveList
    from cqgov_screens.widgets.event_queue import EventQueue
    from cqgov_screens.widgets.region_map import RegionMap
    from cqgov_screens.widgets.runway_board import RunwayBoard

    snap = start_snapshot.read(kept)
    backend = session.pending_local_backend(kept, snap.tier, snap.code, snap.node, clock=SimClock(NOW))
    backend.preload()
    at_ready: list[bool] = []

    async def run() -> None:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=3600, snapshot=snap)
        app.started = lambda: at_ready.append(backend.store.is_open)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.ready, "every pane filled")
            await wait_for(pilot, lambda: backend.store.is_open and app.frames >= 2, "the store opened and polled")
            await app.workers.wait_for_complete()
            await pilot.pause()
            centre = app.screen
            assert tuple(centre.query_one(EventQueue).rows) == snap.queue
            assert centre.query_one(RegionMap).fill == snap.fill
            assert tuple(centre.query_one(DirectiveList).items) == snap.directives
            assert centre.query_one(RunwayBoard).sectors == snap.board
            assert not app.last_error and not app.store_error

    try:
        asyncio.run(run())
    finally:
        backend.store.close()
    assert at_ready == [False]  # every pane was filled while the store was still closed


def test_a_store_locked_after_its_snapshot_was_painted_ends_the_console_in_one_line(kept, monkeypatch):
    """The realistic case: another process takes the store between the snapshot's check and the open (here a
    DuckDB reader in a child process, started when the console opens the store)."""
    from cqgov_screens.app import ConsoleApp
    from cqgov_tui.cli import main

    before = (_digest(kept), _digest(str(start_snapshot.path_for(kept))))
    apps: list[ConsoleApp] = []
    holders: list[subprocess.Popen] = []
    run = ConsoleApp.run

    def headless_run(self, *args, **kwargs):
        apps.append(self)
        return run(self, headless=True, size=(160, 50))

    real_open = session.open_backend

    def open_when_locked(**kwargs):
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
                                   "print('held', flush=True); sys.stdin.read()", kept],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "held"
        return real_open(**kwargs)

    monkeypatch.setattr(ConsoleApp, "run", headless_run)
    monkeypatch.setattr(session, "open_backend", open_when_locked)
    monkeypatch.delenv("CQGOV_TUI_MARKS", raising=False)
    try:
        result = CliRunner().invoke(main, ["tui", "--db", kept])
    finally:
        for holder in holders:
            holder.communicate("", timeout=30)  # its stdin closes: it exits
    assert len(holders) == 1  # the store was opened once, by the console after its first frame
    app = apps[0]
    assert app.snapshot is not None and app.first_frame_at is not None
    assert "in use" in app.store_error
    assert result.exit_code == EXIT_STORE, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cqgov: ") and "in use by process" in lines[0]
    assert "Traceback" not in result.output
    assert (_digest(kept), _digest(str(start_snapshot.path_for(kept)))) == before


def test_notifications_still_show_while_the_hidden_rack_is_left_alone(sample_file, tmp_path):
    """The app skips Textual's re-hiding of a hidden, empty notification rack (a layout after the first frame);
    a notification still shows, and the rack hides again once it is dismissed."""
    from textual.widgets._toast import Toast, ToastRack

    from cqgov_screens.app import ConsoleApp
    from factories import sample_backend, until_ready

    backend = sample_backend(sample_file, tmp_path, NOW)

    async def run() -> None:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=3600)
        async with app.run_test(size=(160, 50), notifications=True) as pilot:
            await until_ready(pilot)
            rack = app.screen.get_child_by_type(ToastRack)
            assert not rack.display
            app.notify("南岸区 新消息", timeout=30)
            await wait_for(pilot, lambda: rack.display and any("新消息" in str(t.render()) for t in rack.query(Toast)),
                           "the notification shown")
            app.clear_notifications()
            await wait_for(pilot, lambda: not rack.display, "the rack hidden again")

    try:
        asyncio.run(run())
    finally:
        backend.store.close()


def test_a_snapshot_without_a_board_opens_the_store_at_once_and_the_board_comes_from_it(kept, tmp_path,
                                                                                      monkeypatch):
    """The board could not be computed at close: the runway pane waits for the store, which then opens at once
    (not after start-up's time limit), and every pane fills."""
    import dataclasses

    from cqgov_screens.app import ConsoleApp
    from cqgov_screens.widgets.runway_board import RunwayBoard

    monkeypatch.setattr("cqgov_screens.app.START_LIMIT_S", 3600.0)  # only the open can fill the board here
    snap = dataclasses.replace(start_snapshot.read(kept), board=None)
    backend = session.pending_local_backend(kept, snap.tier, snap.code, snap.node, clock=SimClock(NOW))
    backend.preload()

    async def run() -> None:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=3600, snapshot=snap)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.ready, "every pane filled, the board from the store")
            assert backend.store.is_open
            assert app.screen.query_one(RunwayBoard).sectors
            assert not app.last_error

    try:
        asyncio.run(run())
    finally:
        backend.store.close()


def test_a_key_that_reaches_a_store_that_failed_to_open_ends_the_console_in_one_line(kept, tmp_path, monkeypatch):
    """A handler on the UI thread (a key pressed before the open finished) meets the open's error: the console
    ends as when the opening worker meets it, with the error kept for the launcher's one line."""
    from cqgov_screens.app import ConsoleApp

    snap = start_snapshot.read(kept)
    backend = session.pending_local_backend(kept, snap.tier, snap.code, snap.node, clock=SimClock(NOW))
    backend.preload()
    backend.store._opener = _Opens(error=StoreLocked(f"{kept} is in use by process 1"))
    monkeypatch.setattr(ConsoleApp, "_open_store", lambda self: None)  # only the key reaches the store here

    async def run() -> ConsoleApp:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=3600, snapshot=snap)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.ready, "every pane filled")
            app.call_later(lambda: backend.store.head())  # what a key's handler does first
            for _ in range(600):  # (the app is exiting: polled without the pilot, for at most 30 s)
                if app.store_error:
                    break
                await asyncio.sleep(0.05)
        return app

    app = asyncio.run(run())
    assert "in use by process 1" in app.store_error
    assert app.return_code == 1
