"""The console's start snapshot (``console.start_snapshot``): written when the launcher closes a store, used
at the next start only while the store file is as it was then and for the same viewer, ignored (never a
traceback) when stale or corrupt; its content is what a normal start loads, and the app paints it in its
first frame, then loads the same from the store."""

from __future__ import annotations

import asyncio
import os
import shutil

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.clock import SimClock
from cqgov_tui.console import start_snapshot
from cqgov_tui.console.backend import LocalBackend
from cqgov_tui.console.board import load_board
from cqgov_tui.console.feed import ConsoleFeed
from cqgov_tui.console.sample import sample_user
from cqgov_tui.domain.entities import Role
from cqgov_tui.store import open_store

from factories import SAMPLE_START, wait_for

NOW = SAMPLE_START + 3600
LIMIT = 300


def _backend(path: str) -> LocalBackend:
    clock = SimClock(NOW)
    return LocalBackend(open_store(path, clock), user=sample_user(), clock=clock, sweep=False)


def _normal_load(backend: LocalBackend):
    """What a start without a snapshot shows: the feed's first poll on the city and the board."""
    frame = ConsoleFeed(backend, limit=LIMIT).poll(None)
    board = tuple(load_board(backend.store, backend.catalogue, backend.clock.now(), backend.user.scope_code))
    return frame.queue, frame.fill, frame.directives, board


@pytest.fixture
def kept(sample_file, tmp_path):
    """A copy of the sample city closed by the launcher's way out: the store and its snapshot."""
    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    start_snapshot.close_and_keep(_backend(path), path, LIMIT)
    assert start_snapshot.path_for(path).exists()
    return path


def test_the_snapshot_holds_what_a_normal_start_loads(kept):
    snap = start_snapshot.read(kept)
    backend = _backend(kept)
    try:
        assert start_snapshot.usable(snap, backend.user, LIMIT) is snap is not None
        queue, fill, directives, board = _normal_load(backend)
        assert snap.head == backend.store.head()
        assert queue and fill and directives and board  # the sample city has something in every pane
        assert (snap.queue, snap.fill, snap.directives, snap.board) == (queue, fill, directives, board)
    finally:
        backend.store.close()


def test_a_store_written_since_is_not_shown_from_its_snapshot(kept):
    backend = _backend(kept)
    street = next(j.code for j in backend.registry.children("500105"))
    backend.engine.report(category="garbage", title="垃圾堆放", code=street, actor=backend.user)
    backend.store.close()
    assert start_snapshot.read(kept) is None


def test_a_checkpoint_is_told_by_the_file_itself_not_only_by_its_size_and_time(kept):
    """A checkpoint rewrites DuckDB's database header (its iteration counter): a store of the same size and
    time whose header differs is another store."""
    before = os.stat(kept)
    with open(kept, "r+b") as f:
        f.seek(4096 + 8)  # the first database header, past its checksum: the checkpoint iteration
        iteration = f.read(8)
        f.seek(4096 + 8)
        f.write(bytes([iteration[0] ^ 1]) + iteration[1:])
    os.utime(kept, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(kept).st_size == before.st_size
    assert start_snapshot.read(kept) is None


def test_a_touched_store_or_a_log_beside_it_is_not_trusted(kept):
    shutil.copy2(kept, kept + ".bak")
    os.utime(kept, ns=(1, 1))
    assert start_snapshot.read(kept) is None
    shutil.copy2(kept + ".bak", kept)
    assert start_snapshot.read(kept) is not None
    with open(kept + ".wal", "wb") as f:  # a write not yet checkpointed
        f.write(b"\0" * 64)
    assert start_snapshot.read(kept) is None


def test_another_viewer_or_queue_length_loads_from_the_store(kept):
    snap = start_snapshot.read(kept)
    assert start_snapshot.usable(snap, sample_user(), LIMIT) is snap
    assert start_snapshot.usable(snap, sample_user(Role.DISPATCHER), LIMIT) is None
    assert start_snapshot.usable(snap, sample_user(), 100) is None


@pytest.mark.parametrize("damage", [
    lambda data: b"",
    lambda data: data[: len(data) // 2],  # truncated
    lambda data: data.replace(b'"queue":[', b'"queue":[7,', 1),  # a row of the wrong type
    lambda data: data.replace(b'"colour":"', b'"colour":"purple', 1),  # not a colour
    lambda data: data.replace(b'"format":%d' % start_snapshot.FORMAT, b'"format":99', 1),  # another format
    lambda data: b"\x80\x04\x95 not json",
    lambda data: b"[" * 100_000,  # nested past any decoder's depth
])
def test_a_corrupt_snapshot_is_ignored(kept, damage):
    target = start_snapshot.path_for(kept)
    target.write_bytes(damage(target.read_bytes()))
    assert start_snapshot.read(kept) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_reading_any_bytes_never_raises(kept, data):
    start_snapshot.path_for(kept).write_bytes(data)
    assert start_snapshot.read(kept) is None


def test_any_decodable_snapshot_has_the_feed_types(kept):
    """What ``read`` accepts is typed as the feed's own rows: strings where strings are, colours as Colour."""
    snap = start_snapshot.read(kept)
    again = msgspec.json.decode(msgspec.json.encode(snap), type=start_snapshot.StartSnapshot)
    assert again == snap
    assert all(type(r).__name__ == "QueueRow" for r in snap.queue)


def test_no_cache_turns_the_snapshot_off(sample_file, tmp_path, monkeypatch):
    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    start_snapshot.close_and_keep(_backend(path), path, LIMIT)
    assert not start_snapshot.path_for(path).exists()
    monkeypatch.delenv("CQGOV_NO_CACHE")
    start_snapshot.close_and_keep(_backend(path), path, LIMIT)
    monkeypatch.setenv("CQGOV_NO_CACHE", "1")
    assert start_snapshot.read(path) is None


def test_an_unwritable_directory_just_has_no_snapshot(sample_file, tmp_path):
    path = str(tmp_path / "store.duckdb")
    shutil.copy(sample_file, path)
    content = start_snapshot.StartSnapshot(start_snapshot.FORMAT, None, "k", 0, NOW, (), {}, (), None)
    assert start_snapshot.save(str(tmp_path / "missing" / "store.duckdb"), content) is False
    assert start_snapshot.save(path, content) is True


def test_the_console_paints_the_snapshot_first_then_loads_the_same_from_the_store(kept, tmp_path):
    from cqgov_screens.app import ConsoleApp
    from cqgov_screens.widgets.directive_list import DirectiveList
    from cqgov_screens.widgets.event_queue import EventQueue
    from cqgov_screens.widgets.region_map import RegionMap
    from cqgov_screens.widgets.runway_board import RunwayBoard

    snap = start_snapshot.read(kept)
    backend = _backend(kept)
    backend.preload()
    queue, fill, directives, board = _normal_load(backend)
    at_ready: list[tuple] = []

    async def run() -> None:
        app = ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=3600, snapshot=snap)

        def started() -> None:
            centre = app.screen
            at_ready.append((app.frames, tuple(centre.query_one(EventQueue).rows),
                             centre.query_one(RunwayBoard).sectors, centre.query_one(RegionMap).fill,
                             tuple(centre.query_one(DirectiveList).items)))

        app.started = started
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: app.ready, "every pane filled")
            # The reload from the store follows the painted snapshot: a second frame, the same rows.
            await wait_for(pilot, lambda: app.frames >= 2, "the store's own first poll")
            await app.workers.wait_for_complete()
            await pilot.pause()
            centre = app.screen
            assert tuple(centre.query_one(EventQueue).rows) == queue
            assert centre.query_one(RunwayBoard).sectors == board
            assert centre.query_one(RegionMap).fill == fill
            assert tuple(centre.query_one(DirectiveList).items) == directives
            assert not app.last_error

    try:
        asyncio.run(run())
    finally:
        backend.store.close()
    # Every pane was filled from the snapshot alone: one frame, before any poll of the store.
    assert at_ready == [(1, snap.queue, snap.board, snap.fill, snap.directives)]
