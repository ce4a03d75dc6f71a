"""People through a real tier server on 127.0.0.1 (issue 14): a methane alarm's plan notify step reaches the
district's duty officer by e-mail (aiosmtpd, started here) and by webhook (a receiver started here), escalates to
the next person of the rotation on a simulated clock, is acknowledged through the link in the message; dispatch
to a person, my work and task completion through the server and the CLI.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import re
import socket
import threading
import time
from email import policy

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI, Request

from cqgov_tui.cli import main
from cqgov_tui.clock import CST, SimClock
from cqgov_tui.notify.config import NotifyConfig
from synchost import ServerThread, _listen

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

DEADLINE_S = 30.0
T0 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=CST).timestamp()


def wait_for(condition, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Mailbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 OK"

    def to(self, address: str) -> list:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = aiosmtpd_controller.Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


@pytest.fixture
def webhook():
    got: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        got.append(await request.json())
        return {"ok": True}

    server = ServerThread(app).start()
    try:
        yield got, server.url + "/hook"
    finally:
        server.stop()


class Serving:
    """A district tier server with a notify config, on a simulated clock, under uvicorn on a loopback port."""

    def __init__(self, tmp_path, config: NotifyConfig, clock: SimClock):
        from cqgov_tui.server.app import TierServer, TierUvicorn, create_app
        from cqgov_tui.server.auth import TokenAuthority
        from cqgov_tui.store import init_store

        self.store = init_store(str(tmp_path / "district.duckdb"), "district", "500105", clock=clock)
        self.sock = _listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = TierServer(self.store, TokenAuthority(b"k" * 32), clock=clock, sweep_every=3600,
                                 notify_config=config, public_url=self.url)
        self.server.notifier.every_s = 0.1
        config_uv = uvicorn.Config(create_app(self.server), log_level="warning", lifespan="on",
                                   timeout_graceful_shutdown=1, access_log=False)
        self.uv = TierUvicorn(config_uv, self.server)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.clock = clock

    def token(self, user: str, role: str) -> str:
        return self.server.authority.issue(user=user, role=role, tier="district", scope="500105",
                                           now=self.clock.now(), ttl=30 * 86400)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.uv.started or not self.thread.is_alive(), "the tier server to start", 20)
        assert self.uv.started, "the tier server did not start"
        return self

    def __exit__(self, *exc):
        self.uv.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.store.close()


def command(url: str, token: str, ctype: str, body: dict) -> dict:
    from cqgov_tui.server.remote import Remote

    with Remote(url, token) as r:
        return r.command(ctype, body)


def _methane_sensor():
    from cqgov_tui.catalogue.loader import load_catalogue

    cat = load_catalogue()
    return next(s for s in sorted(cat.sensors.values(), key=lambda s: s.code)
                if s.kind == "methane" and cat.risk_points[s.risk_point_code].grid_code.startswith("500105"))


def test_methane_alarm_emails_the_duty_officer_webhooks_escalates_and_is_acknowledged_by_link(tmp_path, smtp,
                                                                                             webhook):
    box, smtp_port = smtp
    hooks, hook_url = webhook
    config = NotifyConfig(**{"email": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "sender": "cqgov@jb.example"},
                             "webhook": {"url": hook_url}, "escalation": {"ack_after": "5m"},
                             "retry": {"base_s": 1, "max_attempts": 3}})
    clock = SimClock(T0)
    with Serving(tmp_path, config, clock) as s:
        admin = s.token("admin", "admin")
        roster_csv = ("user,name,role,department,jurisdiction,phone,email,on_duty,rotation\n"
                      "zhang,张伟,duty_officer,,500105,13800000001,zhang@jb.example,yes,0\n"
                      "li,李娜,duty_officer,,500105,13800000002,li@jb.example,yes,1\n")
        assert command(s.url, admin, "roster.import", {"csv": roster_csv})["added"] == 2
        sensor = _methane_sensor()
        result = command(s.url, admin, "sensor.reading", {"readings": [[sensor.code, clock.now(), 31.0]]})
        event = result["opened_events"][0]
        # the duty officer of 江北区 from the roster gets the plan's notify step by e-mail …
        mail = wait_for(lambda: box.to("zhang@jb.example"), "the e-mail to the duty officer")[0]
        assert event["number"] in mail["Subject"]
        # … and the webhook gets the JSON
        first = wait_for(lambda: [h for h in hooks if h["recipient"] == "zhang"], "the webhook to zhang")[0]
        assert first["ref"] == event["event_id"] and first["needs_ack"] and first["ack_url"].startswith(s.url)
        # every attempt is on the event's timeline (recorded once the round's deliveries are done)
        wait_for(lambda: any(a.action == "notify.attempt" and "zhang@jb.example" in a.note
                             for a in s.store.event_audit(event["event_id"])), "the e-mail attempt on the timeline")
        assert not box.to("li@jb.example")
        # unacknowledged for 5 simulated minutes → the next person of the rotation
        clock.advance(301)
        mail_li = wait_for(lambda: box.to("li@jb.example"), "the escalation e-mail to li")[0]
        wait_for(lambda: [h for h in hooks if h["recipient"] == "li" and h["step"] == 1], "the webhook to li")
        assert any(a.action == "notify.escalate" and "li" in a.note for a in s.store.event_audit(event["event_id"]))
        # li acknowledges with the link in the message: the message stops for everyone
        link = re.search(r"(http://\S+/v1/notify/ack/\S+)", mail_li.get_content()).group(1)
        assert httpx.get(link.replace("k=", "k=forged"), timeout=10).status_code == 403
        resp = httpx.get(link, timeout=10)
        assert resp.status_code == 200 and "已确认" in resp.text
        rows = s.store.notifications(ref=event["event_id"], limit=100)
        assert rows and all(n.acked_by == "li" for n in rows if n.message_key == rows[0].message_key)
        assert httpx.get(link, timeout=10).status_code == 409  # once is enough
        clock.advance(600)
        assert s.server.notifier.escalate() == 0
        # exactly once per recipient, message and channel
        keys = [(n.message_key, n.recipient, n.channel) for n in s.store.notifications(limit=1000)]
        assert len(keys) == len(set(keys))


def test_webhook_failures_are_retried_with_backoff_and_each_attempt_is_audited(tmp_path):
    config = NotifyConfig(**{"webhook": {"url": f"http://127.0.0.1:{_free_port()}/nobody-listens"},
                             "retry": {"base_s": 10, "max_attempts": 3}})
    clock = SimClock(T0)
    with Serving(tmp_path, config, clock) as s:
        admin = s.token("admin", "admin")
        command(s.url, admin, "roster.import", {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty\n"
                                                       "zhang,张伟,duty_officer,,500105,1,,yes\n"})
        sensor = _methane_sensor()
        event = command(s.url, admin, "sensor.reading", {"readings": [[sensor.code, clock.now(), 31.0]]})[
            "opened_events"][0]

        def hook_row():
            rows = [n for n in s.store.notifications(ref=event["event_id"]) if n.channel == "webhook"]
            return rows[0] if rows and rows[0].attempts >= 1 else None

        row = wait_for(hook_row, "the first webhook attempt")
        assert row.state == "pending" and row.next_attempt_at == pytest.approx(clock.now() + 10)
        clock.advance(10)
        row = wait_for(lambda: (r := hook_row()) and r.attempts >= 2 and r, "the second attempt")
        assert row.next_attempt_at == pytest.approx(clock.now() + 20)  # backoff doubles
        clock.advance(20)
        row = wait_for(lambda: (r := hook_row()) and r.state == "failed" and r, "giving up")
        assert row.attempts == 3
        attempts = [a for a in s.store.event_audit(event["event_id"]) if a.action == "notify.attempt"
                    and "webhook" in a.note]
        assert len(attempts) == 3 and "giving up" in attempts[-1].note


def test_dispatch_to_a_person_my_work_and_completion_through_the_server_and_the_cli(tmp_path):
    from cqgov_tui.geo.registry import get_registry

    clock = SimClock(T0)
    grid = get_registry().grid_codes(get_registry().children("500105")[0].code)[0]
    with Serving(tmp_path, NotifyConfig(), clock) as s:
        admin = s.token("admin", "admin")
        dispatcher = s.token("disp", "dispatcher")
        worker = s.token("gw1", "grid_worker")
        command(s.url, admin, "roster.import", {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty\n"
                                                       f"gw1,陈思宇,grid_worker,,{grid},1,,yes\n"})
        ev = command(s.url, dispatcher, "report", {"category": "garbage", "code": grid, "title": "垃圾堆放"})
        command(s.url, dispatcher, "act", {"event": ev["event_id"], "action": "verify"})
        with pytest.raises(Exception, match="may not dispatch"):
            command(s.url, worker, "dispatch.person", {"event": ev["event_id"], "to": "gw1"})
        with pytest.raises(Exception, match="to: "):
            command(s.url, dispatcher, "dispatch.person", {"event": ev["event_id"], "to": ""})
        out = command(s.url, dispatcher, "dispatch.person", {"event": ev["event_id"], "to": "gw1"})
        assert out["status"] == "dispatched" and out["assignee"] == "gw1"
        # the worker is told (inbox) and finds the task in my work, through the server and the CLI
        wait_for(lambda: s.store.notifications(recipient="gw1"), "gw1's inbox notification")
        runner = CliRunner()
        r = runner.invoke(main, ["tasks", "mine", "--server", s.url, "--token", worker, "--json"])
        assert r.exit_code == 0, r.output
        assert [t["id"] for t in json.loads(r.output)["tasks"]] == [out["task_id"]]
        for action in ("accept", "arrive", "done"):
            r = runner.invoke(main, ["tasks", "act", "--server", s.url, "--token", worker, out["task_id"], action])
            assert r.exit_code == 0, r.output
        assert s.store.get_event(ev["event_id"]).status == "disposed"
        r = runner.invoke(main, ["tasks", "mine", "--server", s.url, "--token", worker, "--json"])
        assert json.loads(r.output)["tasks"] == []
        # ack from the CLI through the server
        inbox = s.store.notifications(recipient="gw1")[0]
        r = runner.invoke(main, ["notify", "ack", "--server", s.url, "--token", worker, inbox.id])
        assert r.exit_code == 0, r.output
        r = runner.invoke(main, ["notify", "ack", "--server", s.url, "--token", worker, inbox.id])
        assert r.exit_code != 0 and "already acknowledged" in r.output
        r = runner.invoke(main, ["roster", "who-is-on", "--server", s.url, "--token", admin, "--json"])
        assert [p["user"] for p in json.loads(r.output)["people"]] == ["gw1"]


def test_roster_tasks_and_notifications_replicate_scoped_by_jurisdiction(tmp_path):
    from cqgov_tui.geo.registry import get_registry
    from cqgov_tui.store import init_store
    from cqgov_tui.sync.client import SyncClient

    registry = get_registry()
    streets = [s.code for s in registry.children("500105")[:2]]
    grids = [registry.grid_codes(s)[0] for s in streets]
    clock = SimClock(T0)
    with Serving(tmp_path, NotifyConfig(), clock) as s:
        admin = s.token("admin", "admin")
        command(s.url, admin, "roster.import", {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty\n"
                                                       f"a1,甲,grid_worker,,{grids[0]},1,,yes\n"
                                                       f"b1,乙,grid_worker,,{grids[1]},2,,yes\n"})
        for code in grids:
            command(s.url, admin, "task.create", {"code": code, "title": "排查隐患"})
        replica = init_store(str(tmp_path / "replica.duckdb"), "street", streets[0], clock=clock, node="console-a1")
        token = s.server.authority.issue(user="a1", role="grid_worker", tier="street", scope=streets[0],
                                         now=clock.now(), ttl=86400)
        client = SyncClient(replica, s.url, token, clock, wait=0.0)
        try:
            assert client.pull_until_caught_up().caught_up
            assert [p.user for p in replica.people()] == ["a1"]
            assert [t.grid_code for t in replica.tasks()] == [grids[0]]
            # a status report at the server reaches the replica as the next delta
            command(s.url, admin, "person.status", {"user": "a1", "status": "busy", "lon": 106.6, "lat": 29.6})
            assert client.pull_until_caught_up().caught_up
            assert replica.get_person("a1").status == "busy"
        finally:
            client.close()
            replica.close()
