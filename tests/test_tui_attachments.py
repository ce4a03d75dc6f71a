"""Pilot test (issue 14 item 6): the event detail lists the event's attachments and ``p`` opens one with the
system viewer — the test checks the command that would run (the app's ``launch_viewer`` hook), not a viewer."""

from __future__ import annotations

from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.people import attachments
from cqgov_screens.views.event_detail import EventDetailScreen
from factories import wait_for
from test_attachments import png
from test_tui_people import _app, run_async, world  # noqa: F401 - the fixture


@run_async
async def test_event_detail_lists_attachments_and_opens_one_with_the_system_viewer(world, tmp_path):  # noqa: F811
    store, engine, clock, grid, _ = world
    me = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")
    event = engine.report(category="garbage", title="垃圾堆放", code=grid)
    first = attachments.attach(store, me, event.number, png(1), "现场1.png")
    second = attachments.attach(store, me, event.number, png(2), "现场2.png")
    app = _app(store, engine, clock, me, tmp_path)
    ran: list[list[str]] = []
    app.launch_viewer = ran.append
    async with app.run_test(size=(120, 60)) as pilot:
        await wait_for(pilot, lambda: app.ready, "the console to be ready")
        app.open_event(event.id)
        await wait_for(pilot, lambda: isinstance(app.screen, EventDetailScreen), "the detail to open")
        detail = app.screen
        await wait_for(pilot, lambda: {f.sha256 for f in getattr(detail, "files", [])} == {first.sha256, second.sha256},
                       "both attachments listed")
        n = next(f.n for f in detail.files if f.sha256 == second.sha256)
        await pilot.press("p")
        await wait_for(pilot, lambda: not isinstance(app.screen, EventDetailScreen), "the attachment prompt")
        await pilot.press("backspace", str(n), "enter")
        await wait_for(pilot, lambda: ran, "the viewer command")
        assert ran[0][0] == "xdg-open" and ran[0][1].endswith(f"{second.sha256}.png")
        with open(ran[0][1], "rb") as f:
            assert f.read() == png(2)
