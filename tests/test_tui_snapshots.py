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


@pytest.fixture
def evaluated(sample_file, tmp_path):
    """The sample city three hours on: the events at 反馈 closed and called back (one unhappy), and the
    SLA sweep run, so the ranking has closures and ratings and the hot list escalations and supervisions."""
    from cqgov_tui.domain.entities import Status

    backend = sample_backend(sample_file, tmp_path, START + 3600)  # after the sample's last report
    engine, user = backend.engine, backend.user
    feedback = sorted((e for e in backend.store.all_events() if e.status == Status.FEEDBACK.value),
                      key=lambda e: e.number)
    for n, event in enumerate(feedback):
        engine.act(event.id, "close", user)
        engine.act(event.id, "callback", user, note="2 未清理干净" if n == 0 else "5 电话回访满意")
    backend.clock.advance(3 * 3600)
    engine.sweep()
    yield ConsoleApp(backend, tick_s=3600, keys_path=tmp_path / "none.toml")
    backend.store.close()


def _evaluation(keys: str):
    async def before(pilot):
        from cqgov_screens.views.evaluation import EvaluationScreen

        await settle(pilot)
        await pilot.press("3", *keys)
        await _until(pilot, lambda: isinstance(pilot.app.screen, EvaluationScreen) and pilot.app.screen.filled)
        await settle(pilot)

    return before


async def _until(pilot, cond, deadline_s: float = 30.0) -> None:
    import time

    give_up = time.monotonic() + deadline_s
    while not cond():
        assert time.monotonic() < give_up, "the view did not fill in time"
        await pilot.pause(0.01)


def test_hot_list_160x50(evaluated, snap_compare):
    # 事件热榜 from the runways pane (h): open longest, escalated furthest and supervised most.
    assert snap_compare(evaluated, terminal_size=(160, 50), run_before=_evaluation("h"))


def test_ranking_160x50(evaluated, snap_compare):
    # 考评 from the runways pane (k): districts ranked by score over the last 7 days.
    assert snap_compare(evaluated, terminal_size=(160, 50), run_before=_evaluation("k"))
