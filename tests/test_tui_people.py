"""Pilot tests of the console's people views (issue 14): my work (accept, arrive, done) and the inbox
(acknowledge) for the logged-in user, and dispatching an event to a person on duty from its detail."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import pytest

from cqgov_tui.clock import CST, SimClock
from cqgov_tui.console.backend import LocalBackend
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.notify.service import Notifier
from cqgov_tui.people import roster
from cqgov_screens.app import ConsoleApp
from cqgov_screens.views.event_detail import EventDetailScreen
from cqgov_screens.views.my_work import MyWorkScreen
from factories import wait_for

T0 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=CST).timestamp()


def run_async(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


@pytest.fixture
def world(tmp_path):
    from cqgov_tui.engine import Engine
    from cqgov_tui.store import init_store

    clock = SimClock(T0)
    store = init_store(str(tmp_path / "d.duckdb"), "district", "500105", clock=clock)
    engine = Engine(store, clock=clock)
    grid = engine.registry.grid_codes(engine.registry.children("500105")[0].code)[0]
    roster.import_rows(store, engine.registry, roster.parse_csv(
        "user,name,role,department,jurisdiction,phone,email,on_duty\n"
        f"gw1,陈思宇,grid_worker,,{grid},1,,yes\n"
        "zhang,张伟,duty_officer,,500105,2,,yes\n"))
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    yield store, engine, clock, grid, notifier
    store.close()


def _app(store, engine, clock, user, tmp_path):
    backend = LocalBackend(store, user=user, clock=clock, engine=engine, sweep=False)
    return ConsoleApp(backend, keys_path=tmp_path / "no-keys.toml", tick_s=0.2)


@run_async
async def test_my_work_accept_arrive_done_and_acknowledge_from_the_inbox(world, tmp_path):
    from cqgov_tui.people.tasks import dispatch_to_person

    store, engine, clock, grid, notifier = world
    dispatcher = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")
    event = engine.report(category="garbage", title="垃圾堆放", code=grid)
    engine.act(event.id, "verify", dispatcher)
    _, task = dispatch_to_person(engine, event.id, "gw1", dispatcher)
    notifier.tick()  # the assignment reaches gw1's inbox
    me = User("gw1", "陈思宇", Role.GRID_WORKER, Tier.DISTRICT, "500105")
    app = _app(store, engine, clock, me, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.ready, "the console to be ready")
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, MyWorkScreen), "my work to open")
        tasks_table = app.screen.query_one("#work-tasks")
        inbox_table = app.screen.query_one("#work-inbox")
        await wait_for(pilot, lambda: tasks_table.row_count == 1 and inbox_table.row_count == 1, "my task and message")
        for key, status in (("s", "accepted"), ("o", "on_scene"), ("x", "disposed")):
            await pilot.press(key)
            await wait_for(pilot, lambda: store.get_event(event.id).status == status, f"the event to be {status}")
        await wait_for(pilot, lambda: tasks_table.row_count == 0, "the finished task to leave my work")
        inbox_table.focus()
        await pilot.press("k")
        await wait_for(pilot, lambda: all(n.acked_by == "gw1" for n in store.notifications(recipient="gw1")),
                       "the message to be acknowledged")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, MyWorkScreen), "back to the command centre")


@run_async
async def test_event_detail_lists_people_on_duty_nearby_and_dispatches_to_one(world, tmp_path):
    store, engine, clock, grid, _ = world
    me = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")
    event = engine.report(category="garbage", title="垃圾堆放", code=grid)
    engine.act(event.id, "verify", me)
    app = _app(store, engine, clock, me, tmp_path)
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_for(pilot, lambda: app.ready, "the console to be ready")
        app.open_event(event.id)
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail to open")
        await wait_for(pilot, lambda: [p.user for p in getattr(app.screen, "nearby", [])] == ["gw1"],
                       "gw1 listed as on duty nearby")
        await pilot.press("t")
        await wait_for(pilot, lambda: not isinstance(app.screen, EventDetailScreen), "the person prompt")
        await pilot.press("enter")  # the prompt offers the nearest person first
        await wait_for(pilot, lambda: store.tasks(event_id=event.id), "a task for the person")
        assert store.tasks(event_id=event.id)[0].assignee == "gw1"
        assert store.get_event(event.id).status == "dispatched"
