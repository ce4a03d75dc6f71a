"""The console against a real tier server on 127.0.0.1: every action goes through the replica's
outbox and the server's command handlers; what comes back arrives through the sync client.

One city server (the real ASGI app from ``cqgov_tui.server``) runs under uvicorn in a thread on
an ephemeral loopback port and is always stopped; each wait is bounded.
"""

from __future__ import annotations

import asyncio
import functools
import time

import httpx
import pytest

from cqgov_tui.console.session import open_backend
from cqgov_tui.domain.entities import Role, User
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store
from cqgov_screens.app import ConsoleApp
from cqgov_screens.views.compose import ComposeScreen
from cqgov_screens.views.event_detail import EventDetailScreen
from cqgov_screens.views.receipts import ReceiptsScreen
from cqgov_screens.widgets.event_queue import EventQueue
from cqgov_screens.widgets.status_bar import StatusBar

from factories import make_event
from synchost import ServerThread

SECRET = b"console-remote-test-secret-0123456789"
WAIT_S = 20.0


def run_async(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


class City:
    """A city tier server with one event it owns and one owned by a street server."""

    def __init__(self, tmp_path):
        self.store = init_store(str(tmp_path / "city.duckdb"), "city", "500000")
        self.authority = TokenAuthority(SECRET)
        self.server = TierServer(self.store, self.authority)
        admin = User("ops", "ops", Role.ADMIN, "city", "500000")
        self.own = self.server.engine.report(category="waterlogging", title="解放碑路面积水", code="500103001",
                                             actor=admin, apply_plans=False)
        now = self.store.clock.now()
        self.foreign = make_event(now=now, number="0108-00001", title="街道上报的井盖缺失", district_code="500108",
                                  street_code="500108001", grid_code="500108001001", category_code="manhole_cover",
                                  origin_tier="street", origin_node="street-500108001", due_at=now + 3600)
        self.store.upsert_event_copy(self.foreign, origin="street-500108001")
        self.http = ServerThread(create_app(self.server, start_background=False)).start()
        self.url = self.http.url

    def token(self, scope: str = "500000", tier: str = "city", role: str = "admin", user: str = "console") -> str:
        return self.authority.issue(user=user, role=role, tier=tier, scope=scope, now=time.time(), ttl=3600)

    def status_of(self, event_id: str) -> str:
        return self.store.get_event(event_id).status

    def command(self, token: str, ctype: str, body: dict) -> dict:
        r = httpx.post(f"{self.url}/v1/commands", json={"commands": [{"id": f"t-{time.time_ns()}", "type": ctype,
                                                                      "body": body}]},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def close(self):
        self.http.stop()
        self.store.close()


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """One server for the module (tests use different events, each console its own replica)."""
    c = City(tmp_path_factory.mktemp("city"))
    yield c
    c.close()


@pytest.fixture
def console(city, tmp_path):
    backend = open_backend(server_url=city.url, token=city.token(), db_path=str(tmp_path / "replica.duckdb"))
    app = ConsoleApp(backend, tick_s=0.2, keys_path=tmp_path / "no-keys.toml")
    yield app
    backend.stop()
    backend.store.close()


async def until(pilot, cond, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def queue_ids(app) -> set[str]:
    return {r.id for r in app._centre_screen().query_one(EventQueue).rows}


@run_async
async def test_event_walked_to_closed_through_the_outbox_and_a_refusal_shows_the_servers_reason(city, console):
    app = console
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: {city.own.id, city.foreign.id} <= queue_ids(app), "the replica's first events")
        bar = app.screen.query_one(StatusBar)
        await until(pilot, lambda: "在线" in str(bar.render()), "the status bar to say live")

        app.open_event(city.own.id)
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, EventDetailScreen)
        steps = (("v", "verified"), ("d", "dispatched"), ("s", "accepted"), ("o", "on_scene"), ("x", "disposed"),
                 ("f", "feedback"), ("z", "closed"))
        for key, status in steps:
            await pilot.press(key)
            if key == "d":  # the departments prompt, pre-filled from the category
                await pilot.pause()
                await pilot.press("enter")
            await until(pilot, lambda s=status: city.status_of(city.own.id) == s, f"server status {status}")
            await until(pilot, lambda s=status: app.backend.store.get_event(city.own.id).status == s,
                        f"replica status {status}")
            detail.reload()
        actions = [a.action for a in city.store.audit_entries(city.own.id)]
        assert actions[-7:] == ["verify", "dispatch", "accept", "arrive", "dispose", "feedback", "close"]
        assert {a.actor for a in city.store.audit_entries(city.own.id)[-7:]} == {"console"}
        await until(pilot, lambda: app.backend.status().outbox == 0, "an empty outbox")
        # The replica's timeline and stage clocks come from the server's (replicated) audit entries.
        await until(pilot, lambda: (detail.reload() or True) and
                    [e.action for e in detail.detail.timeline][-7:] == actions[-7:], "the replicated timeline")
        assert detail.detail.stages and all(st.reached_at is not None for st in detail.detail.stages)
        assert "close" in str(detail.query_one("#detail-timeline").render())

        await pilot.press("escape")
        app.open_event(city.foreign.id)
        await until(pilot, lambda: isinstance(app.screen, EventDetailScreen) and
                    any("street-500108001" in str(h.render()) for h in app.screen.query("#detail-head")),
                    "the foreign event's owner")
        detail = app.screen
        # The street owns it: no lifecycle action is offered (the city would refuse it), 督办 is.
        assert [a.action for a in detail.detail.actions] == ["comment", "supervise"]
        await pilot.press("u")
        await until(pilot, lambda: app.screen is not detail, "the supervision prompt")
        await pilot.press(*"请30分钟内到场处置", "enter")
        await until(pilot, lambda: any(d.title == f"督办 {city.foreign.number}" for d in city.store.directives()),
                    "the supervision directive at the server")
        # A lifecycle command sent anyway (an older console's outbox) is refused with a code, shown translated.
        outcome = app.backend.act(city.foreign.id, "verify")
        detail.pending = outcome.command_id
        bar = detail.query_one(StatusBar)
        await until(pilot, lambda: "被拒绝: 该事件由下级负责处置" in bar.message and "500108001" in bar.message,
                    "the server's refusal, in Chinese, in the status bar")
        assert app.backend.status().rejections[-1].code == "owned_elsewhere"
        assert city.status_of(city.foreign.id) == "reported"
        await until(pilot, lambda: app.backend.store.get_event(city.foreign.id).status == "reported",
                    "the local effect undone")
        await until(pilot, lambda: "refused" in str(bar.render()) or "被拒" in str(bar.render()),
                    "the refusal in the status bar")
        await pilot.press("ctrl+l")  # read: dismissed, and gone from the status bar
        await until(pilot, lambda: "被拒" not in str(bar.render()) and not app.backend.status().rejections,
                    "the refusal dismissed")


@run_async
async def test_directive_composed_sent_and_receipts_arrive(city, console):
    app = console
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: city.foreign.id in queue_ids(app), "the first sync")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ComposeScreen), "the compose screen")
        await pilot.press(*"防汛巡查")
        app.screen.query_one("#compose-extra").focus()
        await pilot.press(*"500108001,500108002")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ReceiptsScreen), "the receipts screen")
        receipts = app.screen
        await until(pilot, lambda: any(d.id == receipts.directive_id for d in city.store.directives()),
                    "the directive at the server")
        directive = next(d for d in city.store.directives() if d.id == receipts.directive_id)
        assert directive.id == receipts.directive_id and directive.title == "防汛巡查"
        assert sorted(directive.targets) == ["500108001", "500108002"]

        street = city.token(scope="500108001", tier="street", role="duty_officer", user="street-staff")
        city.command(street, "receipt", {"directive": directive.id, "code": "500108001", "state": "acknowledged"})
        head = receipts.query_one("#receipts-head")
        await until(pilot, lambda: "1/1/1/0" in str(head.render()), "the acknowledgement on screen")
        assert receipts.query_one("#receipts-table").row_count == 1
