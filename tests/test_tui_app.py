"""Pilot tests of the console: panes, drill-down, filter, detail actions, compose, help, language,
80×24, literal field text and robustness. All on a SimClock and the deterministic sample city."""

from __future__ import annotations

import asyncio
import functools

import pytest

from cqgov_tui.engine.directives import recipients
from cqgov_tui.console.backend import LinkStatus, LocalBackend
from cqgov_tui.console.sample import sample_user
from cqgov_tui.domain.entities import Role
from cqgov_screens.app import ConsoleApp
from cqgov_screens.i18n import Strings, all_keys
from cqgov_screens.keymap import load_overrides
from cqgov_screens.views.command_centre import CommandCentre
from cqgov_screens.views.compose import ComposeScreen, TargetTree
from cqgov_screens.views.event_detail import EventDetailScreen
from cqgov_screens.views.help import HelpScreen
from cqgov_screens.views.receipts import ReceiptsScreen
from cqgov_screens.widgets.event_queue import EventQueue
from cqgov_screens.widgets.region_map import RegionMap
from cqgov_screens.widgets.status_bar import StatusBar

from factories import SAMPLE_START, sample_backend, settle, wait_for

START = SAMPLE_START


def run_async(fn):
    """No asyncio plugin is installed: each Pilot test runs its own event loop."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture
def backend(sample_file, tmp_path):
    b = sample_backend(sample_file, tmp_path, START + 3600)
    yield b
    b.store.close()


def make_app(backend, tmp_path, **kw) -> ConsoleApp:
    kw.setdefault("keys_path", tmp_path / "no-keys.toml")
    kw.setdefault("tick_s", 0.2)
    return ConsoleApp(backend, **kw)


@run_async
async def test_four_panes_fill_in_chinese_by_default(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        titles = [p.border_title for p in app.screen.query(".pane")]
        for word in ("事件", "地图", "跑道", "政令"):
            assert any(word in t for t in titles), titles
        events = app.screen.query_one(EventQueue)
        assert events.table.row_count == backend.store.count_events(open_only=True)
        assert "本地" in str(app.screen.query_one(StatusBar).render())
        assert app.screen.query_one("#directives").row_count == 2


@run_async
async def test_english_on_request(backend, tmp_path):
    app = make_app(backend, tmp_path, lang="en")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        titles = " ".join(p.border_title for p in app.screen.query(".pane"))
        for word in ("Events", "Map", "Runways", "Directives"):
            assert word in titles
        await pilot.press("f8")  # switch language at run time
        await settle(pilot)
        titles = " ".join(p.border_title for p in app.screen.query(".pane"))
        assert "事件" in titles


def test_every_string_exists_in_both_languages():
    zh, en = Strings("zh"), Strings("en")
    for key in all_keys():
        assert zh(key) and en(key) and zh(key) != key


@run_async
async def test_map_drills_down_and_back(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        rmap = app.screen.query_one(RegionMap)
        assert app.focused is rmap
        await pilot.press("right", "down")
        chosen = rmap.state.selected
        assert chosen is not None
        await pilot.press("enter")
        await settle(pilot)
        assert rmap.state.code == chosen and len(rmap.state.path) == 2
        assert rmap.registry.get(chosen).name in rmap.parent.border_subtitle
        await pilot.press("backspace")
        assert rmap.state.path == ["500000"] and rmap.state.selected == chosen


@run_async
async def test_filter_narrows_the_queue(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        events = app.screen.query_one(EventQueue)
        total = len(events.rows)
        await pilot.press("slash")
        await pilot.press(*"red")
        await pilot.press("enter")
        await settle(pilot)
        assert 0 < len(events.rows) < total
        assert all(r.colour.value == "red" for r in events.rows)
        assert events.table.row_count == len(events.rows)


@run_async
async def test_event_taken_from_reported_to_closed_by_keyboard(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        events = app.screen.query_one(EventQueue)
        target = next(r for r in events.rows if r.status.value == "reported")
        events.table.move_cursor(row=events.table.get_row_index(target.id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail screen is shown")
        for key in ("v", "d", "enter", "s", "o", "x", "f", "z"):
            await pilot.press(key)
            await settle(pilot)
        event = backend.store.get_event(target.id)
        assert event.status == "closed"
        actions = [a.action for a in backend.store.audit_entries(target.id)]
        assert actions[-7:] == ["verify", "dispatch", "accept", "arrive", "dispose", "feedback", "close"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandCentre), "back on the command centre")
        await settle(pilot)
        assert target.id not in {r.id for r in app.screen.query_one(EventQueue).rows}


@run_async
async def test_reject_needs_a_reason_and_refusals_show_theirs(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        events = app.screen.query_one(EventQueue)
        reported = [r for r in events.rows if r.status.value == "reported"]
        app.push_screen(EventDetailScreen(backend, reported[0].id, app.t))
        await pilot.pause()
        await pilot.press("m")  # merge into an event that does not exist: refused, with the reason
        await pilot.press(*"NOPE-1", "enter")
        await settle(pilot)
        bar = app.screen.query_one(StatusBar)
        assert "被拒绝" in bar.message and "NOPE-1" in bar.message
        await pilot.press("r", *"误报", "enter")
        await settle(pilot)
        event = backend.store.get_event(reported[0].id)
        assert event.status == "rejected"
        assert backend.store.audit_entries(event.id)[-1].note == "误报"


@run_async
async def test_compose_sends_and_follows_receipts(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        before = len(backend.store.directives())
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ComposeScreen), "the compose screen is shown")
        await pilot.press(*"防汛巡查")
        tree = app.screen.query_one(TargetTree)
        tree.focus()
        await pilot.press("down", "space", "down", "space")
        assert len(tree.picked) == 2
        # Who answers there: the first entry (网格员) and 城管, picked from the list with the keyboard.
        who = app.screen.query_one("#compose-audience")
        who.focus()
        await pilot.press("space")
        for _ in range(5):  # roles (4), then 治理中心, then 城管
            await pilot.press("down")
        await pilot.press("space")
        assert sorted(who.selected) == ["dept:cgj", "role:grid_worker"]
        await pilot.press("ctrl+s")
        # The receipts screen is pushed once the directive is sent: wait for it, not for a settle.
        await wait_for(pilot, lambda: isinstance(app.screen, ReceiptsScreen),
                       "the receipts screen follows the sent directive")
        await settle(pilot)
        assert len(backend.store.directives()) == before + 1
        directive = backend.store.directives()[0]
        assert directive.title == "防汛巡查"
        assert directive.targets == sorted(tree.picked) + ["dept:cgj", "role:grid_worker"]
        streets = recipients(backend.registry, directive.targets)
        head = app.screen.query_one("#receipts-head")
        assert f"0/0/0 · {len(streets)}" in str(head.render()) and "由谁办理: 城管 · 网格员" in str(head.render())
        # A receipt arriving shows up without leaving the screen.
        backend.receipt(directive.id, streets[0], "acknowledged")
        app.screen.reload()
        assert f"{len(streets)}/1/1/0" in str(head.render())
        # Answering from the keyboard, for the selected street: x = executed.
        await pilot.press("x")
        await wait_for(pilot, lambda: f"{len(streets)}/1/1/1" in str(head.render()), "the executed receipt is counted")
        assert backend.store.get_receipt(directive.id, streets[0]).state == "executed"
        # Going back is refused, with the reason shown, and changes nothing.
        await pilot.press("a")
        await wait_for(pilot, lambda: any("被拒绝" in n.message for n in app._notifications), "the refusal is shown")
        shown = [n.message for n in app._notifications]
        # In the console's language (the server's English reason is translated by its code).
        assert any("被拒绝: 当前状态不允许此操作" in m and streets[0] in m for m in shown), shown
        assert backend.store.get_receipt(directive.id, streets[0]).state == "executed"


@run_async
async def test_help_lists_every_binding(backend, tmp_path):
    app = make_app(backend, tmp_path, lang="en")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen is shown")
        text = str(app.screen.query_one("Static").render())
        for label in ("Quit", "Filter", "Compose directive", "Events pane", "verify", "close", "r  a  x  Esc"):
            assert label in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandCentre), "back on the command centre")


@run_async
async def test_80x24_shows_one_pane_at_a_time(backend, tmp_path):
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        centre = app.screen
        assert centre.narrow
        shown = [p.id for p in centre.query(".pane") if p.display and p.region.height > 0]
        assert shown == ["pane-events"]
        await pilot.press("2")
        await wait_for(pilot, lambda: [p.id for p in centre.query(".pane") if p.region.height > 0] == ["pane-map"],
                       "only the map pane shown")
        await pilot.press("tab")
        await wait_for(pilot, lambda: [p.id for p in centre.query(".pane") if p.region.height > 0] == ["pane-runways"],
                       "only the runways pane shown")


@run_async
async def test_field_text_is_shown_literally(backend, tmp_path):
    evil = backend.engine.report(category="gas_leak", title="[bold]x[/bold] \x1b[2J", text="[red]y\x1b]0;pwn\x07",
                                 code="500108001", apply_plans=False)
    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        events = app.screen.query_one(EventQueue)
        cells = events.table.get_row(evil.id)
        title = cells[events.cols.index("title")].plain
        assert "[bold]x[/bold]" in title and "\x1b" not in title and "␛[2J" in title
        app.push_screen(EventDetailScreen(backend, evil.id, app.t))
        await pilot.pause()
        head = app.screen.query_one("#detail-head").render()
        assert "[bold]x[/bold]" in str(head) and "\x1b" not in str(head)
        fields = app.screen.query_one("#detail-fields").content
        rendered = "".join(seg.text for seg in app.console.render(fields, app.console.options.update_width(120)))
        assert "[red]y" in rendered and "\x1b]0" not in rendered


class _BrokenBackend(LocalBackend):
    def status(self) -> LinkStatus:
        raise RuntimeError("link exploded")


@run_async
async def test_worker_errors_show_and_do_not_kill_the_app(backend, tmp_path):
    broken = _BrokenBackend(backend.store, user=sample_user(), clock=backend.clock, engine=backend.engine, sweep=False)
    app = make_app(broken, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        assert "link exploded" in app.screen.query_one(StatusBar).message
        assert app.is_running
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code in (0, None)


@run_async
async def test_q_quits_cleanly_and_saves_state(backend, tmp_path):
    state = tmp_path / "state.json"
    app = make_app(backend, tmp_path, state_path=state)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running and app.return_code in (0, None)
    assert '"lang": "zh"' in state.read_text(encoding="utf-8")


@run_async
async def test_keys_are_remappable_from_the_user_file(backend, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text('[keys]\nhelp = "h"\nverify = "y"\n', encoding="utf-8")
    assert load_overrides(keys) == ({"help": "h", "verify": "y"}, "")
    app = make_app(backend, tmp_path, keys_path=keys, lang="en")
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the remapped key opens help")
    bad = tmp_path / "bad.toml"
    bad.write_text("[keys\n", encoding="utf-8")
    overrides, error = load_overrides(bad)
    assert overrides == {} and "bad.toml" in error


@run_async
async def test_role_without_field_actions_sees_only_its_own(sample_file, tmp_path):
    b = sample_backend(sample_file, tmp_path, START, role=Role.AUDITOR)
    store = b.store
    try:
        app = make_app(b, tmp_path)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(pilot)
            row = app.screen.query_one(EventQueue).rows[0]
            app.push_screen(EventDetailScreen(b, row.id, app.t))
            await pilot.pause()
            actions = [a.action for a in app.screen.detail.actions]
            assert actions == ["comment"]
            await pilot.press("v")
            await pilot.pause()
            assert store.get_event(row.id).status == row.status.value
    finally:
        store.close()


@run_async
async def test_footer_labels_follow_the_language(backend, tmp_path):
    from textual.widgets._footer import FooterKey

    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        labels = {k.description for k in app.screen.query(FooterKey)}
        assert {"退出", "帮助", "筛选", "起草政令"} <= labels, labels
        assert not labels & {"quit", "help", "filter", "compose", "Quit"}
        await pilot.press("f8")
        await settle(pilot)
        assert {"Quit", "Help", "Filter"} <= {k.description for k in app.screen.query(FooterKey)}


async def _until(pilot, condition, deadline_s: float = 20.0) -> None:
    """Wait (polling) until ``condition`` holds or the deadline passes; the caller asserts."""
    import time

    give_up = time.monotonic() + deadline_s
    while not condition() and time.monotonic() < give_up:
        await pilot.pause(0.02)


@run_async
async def test_event_table_redraws_only_what_changed_and_ticks_only_countdowns(backend, tmp_path):
    from dataclasses import replace

    from rich.cells import cell_len

    from cqgov_screens.widgets.event_queue import HOT_SECONDS

    app = make_app(backend, tmp_path, lang="en", tick_s=3600)  # no background poll: this test feeds the table
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        events = app.screen.query_one(EventQueue)
        table = events.table
        due = next(r for r in events.rows[:10] if r.due_at is not None)
        before_left = table.get_row(due.id)[events.cols.index("left")].plain
        rendered = table.renders
        later = events.now + 61
        events.tick(later)  # a minute later: countdowns move, rows do not change
        await pilot.pause()
        assert table.get_row(due.id)[events.cols.index("left")].plain != before_left or events.now != later
        assert table.renders == rendered
        # one visible row changes: only its strip is rendered again (highlighted as new)
        rows = list(events.rows)
        rows[1] = replace(rows[1], version=rows[1].version + 1, title="改名之后 renamed")
        events.apply(rows, frozenset({rows[1].id}), events.now)
        await _until(pilot, lambda: table.renders >= rendered + 1)
        assert table.renders == rendered + 1 and table.hot.get(rows[1].id)
        # The highlight ends: that row once more. (An absolute time: the app's own one-second tick may have set
        # ``events.now`` back to its clock meanwhile on a loaded machine, and the highlight runs from ``later``.)
        events.tick(later + HOT_SECONDS + 1)
        await _until(pilot, lambda: table.renders >= rendered + 2)
        assert table.renders == rendered + 2 and rows[1].id not in table.hot
        # CJK and ASCII titles keep the columns aligned: every line fills the width, numbers line up
        lines = [table.render_line(y) for y in range(1, 6)]
        assert len({line.cell_length for line in lines}) == 1
        starts = set()
        for line, row in zip(lines, events.rows):
            text = line.text
            starts.add(cell_len(text[:text.index(row.number)]))
        assert len(starts) == 1
        # keyboard: down moves the cursor, Enter opens the row under it
        table.focus()
        await pilot.press("home", "down")
        assert table.cursor_row == 1
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "Enter opens the row's detail")
        assert app.screen.event_id == events.rows[1].id


@run_async
async def test_console_reaches_every_pane_filled(backend, tmp_path):
    # The start-up contract the benchmark times: each pane reports its first real content, then the app
    # is ready — queue rows with names, map shapes coloured, runway values, directives, link and clock.
    from factories import until_ready
    from cqgov_screens.widgets.directive_list import DirectiveList
    from cqgov_screens.widgets.runway_board import RunwayBoard

    app = make_app(backend, tmp_path)
    async with app.run_test(size=(160, 50)) as pilot:
        await until_ready(pilot)
        assert app.ready and app.progress.missing == () and app.first_frame_at is not None
        centre = app._centre_screen()
        events = centre.query_one(EventQueue)
        assert events.rows and all(r.place for r in events.rows)
        assert any(r.place != (r.street_code or r.district_code) for r in events.rows)  # names, not codes
        assert {r.category for r in events.rows}.isdisjoint(backend.catalogue.categories)
        rmap = centre.query_one(RegionMap)
        assert rmap.registry is not None and rmap.fill and rmap.canvas().regions
        board = centre.query_one(RunwayBoard)
        assert len(board.sectors) == 8 and board.query_one("#board-table").row_count == 8
        assert centre.query_one(DirectiveList).row_count == 2
        bar = centre.query_one(StatusBar)
        assert bar.link.mode == "local" and bar.now


@run_async
async def test_names_replace_codes_when_the_launcher_loaded_them_before_mount(backend, tmp_path):
    # The launcher polls the first frame before names load, then loads them while Textual starts: by
    # mount they may be in already, and the rows polled with codes must still get their names.
    from cqgov_tui.console.feed import ConsoleFeed
    from factories import until_ready

    feed = ConsoleFeed(backend)
    first = feed.poll(None)
    assert not first.named
    backend.preload()
    backend.preload_board()
    app = make_app(backend, tmp_path, feed=feed, first_frame=first)
    async with app.run_test(size=(160, 50)) as pilot:
        await until_ready(pilot)
        rows = app._centre_screen().query_one(EventQueue).rows
        assert any(r.place != (r.street_code or r.district_code) for r in rows)
