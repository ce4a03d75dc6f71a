"""SVG snapshots of the main screens at 160×50 and 80×24 (deterministic: SimClock, sample city, no ticks)."""

from __future__ import annotations

import pytest

from cqgov_screens.app import ConsoleApp

from factories import SAMPLE_START, sample_backend, settle

START = SAMPLE_START


@pytest.fixture
def app(sample_file, tmp_path):
    backend = sample_backend(sample_file, tmp_path, START + 600)
    store = backend.store
    # A long tick keeps the refresh worker from racing the snapshot; the first frame is drawn on mount.
    yield ConsoleApp(backend, tick_s=3600, keys_path=tmp_path / "none.toml")
    store.close()


def test_command_centre_160x50(app, snap_compare):
    assert snap_compare(app, terminal_size=(160, 50), run_before=settle)


def test_command_centre_80x24(app, snap_compare):
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


def test_map_pane_80x24(app, snap_compare):
    async def before(pilot):
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)



def test_command_centre_160x50_in_colour(sample_file, tmp_path, monkeypatch, snap_compare):
    # The five warning colours themselves, not only their NO_COLOR glyphs (the suite runs with NO_COLOR).
    monkeypatch.delenv("NO_COLOR", raising=False)
    backend = sample_backend(sample_file, tmp_path, START + 600)
    try:
        app = ConsoleApp(backend, tick_s=3600, keys_path=tmp_path / "none.toml")
        assert snap_compare(app, terminal_size=(160, 50), run_before=settle)
    finally:
        backend.store.close()


@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])
def test_compose_directive(app, snap_compare, size):
    # Compose with a title typed, two districts and 网格员 picked: targets, audience list and text fit.
    async def before(pilot):
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        await pilot.press(*"防汛巡查")
        pilot.app.screen.query_one("#compose-tree").focus()
        await pilot.press("down", "space", "down", "space")
        pilot.app.screen.query_one("#compose-audience").focus()
        await pilot.press("space")
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_directive_receipts_160x50(app, snap_compare):
    # The sample's second directive: to two districts' 城管 and 网格员, part-acknowledged.
    async def before(pilot):
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(160, 50), run_before=before)
