"""Issue 13 in the console: 事件热榜 and 考评 from the runways pane (key, `:` command, palette), 督办 from
everywhere, refusals in the console's language, one queue row per group. SimClock, the sample city."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from cqgov_screens.app import ConsoleApp
from cqgov_screens.views.command_centre import CommandCentre
from cqgov_screens.views.evaluation import EvaluationScreen
from cqgov_screens.views.event_detail import EventDetailScreen

from factories import SAMPLE_START, sample_backend, settle

START = SAMPLE_START


def run_async(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def until(pilot, cond, what: str, deadline_s: float = 30.0) -> None:
    """Poll ``cond`` until it holds; fail naming ``what`` after the deadline (never a fixed sleep)."""
    give_up = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        await pilot.pause(0.01)


@pytest.fixture
def backend(sample_file, tmp_path):
    b = sample_backend(sample_file, tmp_path, START + 3600)
    yield b
    b.store.close()


def make_app(backend, tmp_path, **kw) -> ConsoleApp:
    kw.setdefault("keys_path", tmp_path / "no-keys.toml")
    kw.setdefault("tick_s", 3600)
    return ConsoleApp(backend, **kw)


def cells(screen: EvaluationScreen) -> list[list[str]]:
    table = screen.query_one("#eval-table")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


@run_async
async def test_hot_list_and_ranking_open_from_the_runways_pane(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("3")  # the runways pane
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and app.screen.filled, "the hot list")
        screen = app.screen
        assert screen.state.mode == "hot" and screen.state.period == "7d"
        rows = cells(screen)
        headings = [r[2] for r in rows if not r[0] and r[2] != "无"]
        assert headings == ["最多上报 (次)", "最久未结 (时长)", "督办最高 (级)", "督办最多 (次)"]
        # The sample's oldest open event leads "open longest"; Enter opens it.
        oldest = min((e for e in backend.store.all_events() if e.closed_at is None),
                     key=lambda e: (e.reported_at, e.number))
        row = next(i for i, eid in enumerate(screen.row_events) if eid)
        assert screen.row_events[row] == oldest.id and rows[row][2] == oldest.number
        screen.query_one("#eval-table").move_cursor(row=row)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the event's detail")
        assert app.screen.event_id == oldest.id
        await pilot.press("escape")
        # k: the ranking of districts; b cycles to streets, then departments; p cycles the period.
        await until(pilot, lambda: isinstance(app.screen, EvaluationScreen), "back on the hot list")
        await pilot.press("k")
        await until(pilot, lambda: app.screen.state.mode == "rank" and app.screen.filled, "the ranking")
        ranked = {r.code: r for r in app.screen.result.ranks}
        districts = {e.district_code for e in backend.store.all_events()}
        assert set(ranked) == districts
        assert cells(app.screen)[0][1] == app.screen.result.ranks[0].name
        await pilot.press("b")
        await until(pilot, lambda: app.screen.state.by == "street" and app.screen.filled, "ranked by street")
        assert all(len(r.code) == 9 for r in app.screen.result.ranks)
        await pilot.press("p")
        await until(pilot, lambda: app.screen.state.period == "30d" and app.screen.filled, "over 30 days")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CommandCentre), "back on the command centre")


@run_async
async def test_colon_commands_and_the_palette_open_both_views(backend, tmp_path):
    app = make_app(backend, tmp_path, lang="en")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        app.run_command("rank department 24h")
        await until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and app.screen.filled, "the ranking")
        assert (app.screen.state.mode, app.screen.state.by, app.screen.state.period) == ("rank", "department", "24h")
        assert "Ranking (考评) by department" in str(app.screen.query_one("#eval-head").render())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CommandCentre), "back")
        app.run_command("rank fortnight")
        await until(pilot, lambda: "not understood: fortnight" in app.screen.query_one("#status").message,
                    "the usage line")
        assert isinstance(app.screen, CommandCentre)
        # The palette lists the views in the console's language and runs them.
        await pilot.press("ctrl+p")
        await pilot.press(*"hot")
        from textual.command import CommandPalette

        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        from textual.command import CommandList

        def offered() -> list[str]:
            found = app.screen.query(CommandList)
            if not found:
                return []
            listing = found.first()
            return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]

        await until(pilot, lambda: any(p.startswith("hot — Hot list") for p in offered()), "the hot list entry")
        listing = app.screen.query_one(CommandList)
        target = next(i for i, p in enumerate(offered()) if p.startswith("hot — Hot list"))
        for _ in range(target + 1):  # the palette highlights its first hit; walk down to ours
            if listing.highlighted == target:
                break
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EvaluationScreen) and app.screen.filled, "the hot list")
        assert app.screen.state.mode == "hot"


def supervisions(backend, number: str) -> list:
    return [d for d in backend.store.directives() if d.title == f"督办 {number}"]


@run_async
async def test_supervise_from_the_command_line_and_the_palette(backend, tmp_path):
    from cqgov_screens.views.prompt import Prompt
    from cqgov_screens.widgets.event_queue import EventQueue

    events = sorted(backend.store.all_events(), key=lambda e: e.number)
    target = next(e for e in events if e.status == "reported" and e.street_code)
    done = next(e for e in events if e.status == "feedback")
    backend.engine.act(done.id, "close", backend.user)
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        status = app.screen.query_one("#status")
        # :supervise NUMBER NOTE — on its own store the console is the supervising tier: a directive to the
        # street that owns the event, delivered, and noted on the event.
        app.run_command(f"supervise {target.number} 请30分钟内到场处置")
        await until(pilot, lambda: "已督办" in status.message, "the supervision confirmed")
        [directive] = supervisions(backend, target.number)
        assert directive.targets == [target.street_code] and directive.require_ack
        assert backend.store.get_receipt(directive.id, target.street_code).state == "delivered"
        assert [a.action for a in backend.store.audit_entries(target.id)][-1] == "supervise_request"
        # A closed event cannot be supervised: refused here, in Chinese, and nothing is sent.
        app.run_command(f"supervise {done.number} 请说明")
        await until(pilot, lambda: "被拒绝: 当前状态不允许此操作" in status.message, "the refusal")
        assert done.number in status.message and not supervisions(backend, done.number)
        app.run_command("supervise NOPE-404 请说明")
        await until(pilot, lambda: "不在本辖区内" in status.message and "NOPE-404" in status.message, "unknown event")
        # The palette's "supervise" takes the event under the queue's cursor and asks for the note.
        row = app.screen.query_one(EventQueue).current_row()
        before = len(supervisions(backend, row.number))
        app.run_command("supervise")
        await until(pilot, lambda: isinstance(app.screen, Prompt), "the note prompt")
        assert row.number in app.screen.label
        await pilot.press(*"请核实", "enter")
        await until(pilot, lambda: len(supervisions(backend, row.number)) == before + 1, "the palette's supervision")


@run_async
async def test_an_alarm_storm_is_one_queue_row_that_expands(backend, tmp_path):
    from cqgov_screens.widgets.event_queue import EventQueue

    engine = backend.engine
    grid = backend.registry.grid_codes("500108001")[0]
    storm = []
    for i in range(5):  # five smoke detectors on one street within minutes: one incident
        storm.append(engine.report(category="highrise_fire", title=f"烟感报警 {i + 1}号楼", code=grid, source="sensor",
                                   actor=backend.user, apply_plans=False))
        backend.clock.advance(30)
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        queue = app.screen.query_one(EventQueue)
        ids = {r.id for r in queue.rows}
        assert storm[0].id in ids and not ids & {e.id for e in storm[1:]}
        row = next(r for r in queue.rows if r.id == storm[0].id)
        assert row.group_count == 5
        queue.table.cursor_row = queue.rows.index(row)
        await pilot.press("space")
        await until(pilot, lambda: sum(1 for r in queue.rows if r.group_leader == storm[0].id) == 4, "the members")
        members = [r.id for r in queue.rows if r.group_leader == storm[0].id]
        at = [r.id for r in queue.rows].index(storm[0].id)
        assert members == [e.id for e in storm[1:]] == [r.id for r in queue.rows[at + 1:at + 5]]
        await pilot.press("space")
        await until(pilot, lambda: not any(r.group_leader for r in queue.rows), "folded again")
