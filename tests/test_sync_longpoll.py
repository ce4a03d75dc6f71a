"""Long-polls parked on the store's next commit: they wake when a change commits, end when the server
begins to stop, many wake together, a caught-up reply is a bare 204 with the cursor, and the client
cuts its own long-poll when it stops.

Real uvicorn servers on 127.0.0.1 (``synchost``). No fixed sleeps: every wait is a condition polled
under a deadline, and the bounds are generous (a long-poll's wait is 20 s or more; "promptly" means
well inside it), so a slow machine can only make a test slower, never make it fail.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.store import init_store
from cqgov_tui.sync import wire
from cqgov_tui.sync.client import SyncClient

from synchost import ADMIN, SyncTestHost, report_body, serve_in_thread

LONG_WAIT = 20  # seconds a test long-poll may be held: far longer than any bound below
WELL_BEFORE = 10.0  # "promptly": the reply must come within this, half the wait
YUZHONG = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500103")


class StoppableHost(SyncTestHost):
    """The test host with the tier server's ``stopping`` signal."""

    def __init__(self, store, **kw):
        super().__init__(store, **kw)
        self.stopping = threading.Event()


@pytest.fixture
def served(tmp_path):
    store = init_store(str(tmp_path / "city.duckdb"), "city", "500000")
    host = StoppableHost(store, tokens={"yuzhong": YUZHONG})
    rng = random.Random(5)
    for i in range(3):
        host.engine.report(**report_body(rng, i, "500108"))
    with serve_in_thread(host) as server:
        yield store, host, server
    store.close()


def _until(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.01)


def _cursor(store) -> str:
    return wire.format_cursor(store.epoch, store.head())


def _long_poll_in_thread(url: str, params: dict, out: dict, headers: dict | None = None) -> threading.Thread:
    def run():
        try:
            out["response"] = httpx.get(url + "/v1/changes", params=params, headers=headers or {},
                                        timeout=LONG_WAIT + 10)
        except httpx.HTTPError as exc:
            out["error"] = repr(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_long_poll_returns_as_soon_as_a_change_commits(served):
    store, host, server = served
    waiters = host.router.commit_waiters
    out: dict = {}
    poll = _long_poll_in_thread(server.url, {"cursor": _cursor(store), "wait": LONG_WAIT}, out)
    _until(lambda: waiters.waiting == 1, "the long-poll to be parked")
    host.engine.report(category="garbage", title="提交即醒", code="500108002")
    poll.join(WELL_BEFORE)
    assert not poll.is_alive(), "the long-poll was still held well after the change committed"
    msg = wire.decode(out["response"].content)
    assert [c.data.get("title") for c in msg.changes if c.entity == "event"] == ["提交即醒"]
    assert waiters.waiting == 0


def test_a_long_poll_ends_when_the_server_begins_to_stop(served):
    store, host, server = served
    waiters = host.router.commit_waiters
    out: dict = {}
    poll = _long_poll_in_thread(server.url, {"cursor": _cursor(store), "wait": LONG_WAIT}, out)
    _until(lambda: waiters.waiting == 1, "the long-poll to be parked")
    host.stopping.set()
    poll.join(WELL_BEFORE)
    assert not poll.is_alive(), "the long-poll was still held after the server began to stop"
    r = out["response"]
    assert r.status_code == 200 and r.headers["x-cqgov-has-more"] == "0"
    assert wire.decode(r.content).changes == []  # an ordinary empty delta: the caller pulls again later
    # while stopping, a new long-poll is answered at once instead of being parked
    r2 = httpx.get(server.url + "/v1/changes", params={"cursor": _cursor(store), "wait": LONG_WAIT},
                   timeout=WELL_BEFORE)
    assert r2.status_code == 200 and waiters.waiting == 0


def test_a_change_outside_the_callers_scope_does_not_end_its_long_poll(served):
    store, host, server = served
    waiters = host.router.commit_waiters
    out: dict = {}
    poll = _long_poll_in_thread(server.url, {"cursor": _cursor(store), "wait": LONG_WAIT, "empty": "204"}, out,
                                headers={"Authorization": "Bearer yuzhong"})
    _until(lambda: waiters.waiting == 1, "the long-poll to be parked")
    host.engine.report(category="garbage", title="南岸的事", code="500108002")  # not 渝中's business
    _until(lambda: waiters.parks >= 2 and waiters.waiting == 1, "the long-poll to wake and park again")
    assert poll.is_alive()  # it woke, found nothing visible to 渝中, and was parked again
    host.engine.report(category="garbage", title="渝中的事", code="500103001")
    poll.join(WELL_BEFORE)
    assert not poll.is_alive()
    msg = wire.decode(out["response"].content)
    assert [c.data.get("title") for c in msg.changes if c.entity == "event"] == ["渝中的事"]


def test_a_caught_up_reply_is_a_bare_204_with_the_cursor_and_old_callers_still_get_a_delta(served):
    store, host, server = served
    cursor = _cursor(store)
    small = httpx.get(server.url + "/v1/changes", params={"cursor": cursor, "empty": "204"})
    assert small.status_code == 204 and small.content == b""
    assert small.headers["x-cqgov-cursor"] == cursor
    assert "content-type" not in small.headers and "x-cqgov-has-more" not in small.headers
    # a caller that did not ask for 204 gets the Arrow empty delta as before
    full = httpx.get(server.url + "/v1/changes", params={"cursor": cursor})
    assert full.status_code == 200 and full.headers["x-cqgov-has-more"] == "0"
    assert wire.decode(full.content).cursor == cursor
    # and JSON callers get JSON
    as_json = httpx.get(server.url + "/v1/changes", params={"cursor": cursor},
                        headers={"Accept": "application/json"})
    assert as_json.json()["changes"] == [] and as_json.json()["meta"]["cqgov.cursor"] == cursor
    # with something new the reply is a delta, 204 asked for or not
    host.engine.report(category="garbage", title="新事件", code="500108003")
    fresh = httpx.get(server.url + "/v1/changes", params={"cursor": cursor, "empty": "204"})
    assert fresh.status_code == 200 and len(wire.decode(fresh.content).changes) >= 1


def test_the_client_takes_204s_and_keeps_its_cursor_moving_past_rows_outside_its_scope(served, tmp_path):
    store, host, server = served
    rep = init_store(str(tmp_path / "yuzhong.duckdb"), "district", "500103", node="console-yuzhong")
    client = SyncClient(rep, server.url, token="yuzhong", wait=0)
    try:
        first = client.pull_until_caught_up()
        assert first.caught_up
        seq0 = client.cursor().seq
        caught = client.pull_once(wait=0)
        assert caught.caught_up and caught.rows == 0 and client.cursor().seq == seq0
        host.engine.report(category="garbage", title="南岸的事", code="500108002")  # invisible to 渝中
        moved = client.pull_once(wait=0)
        assert moved.caught_up and moved.rows == 0
        assert client.cursor().seq == store.head() > seq0  # past the invisible rows, with no body
        host.engine.report(category="garbage", title="渝中的事", code="500103001")
        got = client.pull_once(wait=0)
        assert got.rows >= 1 and client.cursor().seq == store.head()
        assert [e.title for e in rep.all_events()] == ["渝中的事"]
        assert client.status().state == "live"
    finally:
        client.close()
        rep.close()


def test_a_thousand_waiters_all_wake_on_one_commit(served):
    store, host, server = served
    waiters = host.router.commit_waiters
    n = 300  # enough to show they share one wake-up; the benchmark runs 1,000
    cursor = _cursor(store)

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=LONG_WAIT + 20) as http:
            polls = [asyncio.create_task(http.get("/v1/changes", params={
                "cursor": cursor, "wait": LONG_WAIT, "node": f"street-{i}", "empty": "204"})) for i in range(n)]
            deadline = time.monotonic() + 30
            while waiters.waiting < n and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert waiters.waiting == n, f"only {waiters.waiting} of {n} long-polls were parked"
            await asyncio.to_thread(host.engine.report, category="garbage", title="人人都醒", code="500108004")
            done, pending = await asyncio.wait(polls, timeout=WELL_BEFORE)
            for p in pending:
                p.cancel()
            assert not pending, f"{len(pending)} of {n} waiters were still held after the commit"
            return [p.result() for p in done]

    replies = asyncio.run(main())
    assert {r.status_code for r in replies} == {200}
    bodies = {r.content for r in replies}
    assert len(bodies) == 1  # one delta, built once, for every caller
    assert [c.data.get("title") for c in wire.decode(bodies.pop()).changes if c.entity == "event"] == ["人人都醒"]


def test_stopping_the_client_cuts_its_long_poll(served, tmp_path):
    store, host, server = served
    waiters = host.router.commit_waiters
    rep = init_store(str(tmp_path / "rep.duckdb"), "city", "500000", node="console-rep")
    client = SyncClient(rep, server.url, wait=55)  # the default long wait
    try:
        client.pull_until_caught_up()
        client.start()
        _until(lambda: waiters.waiting == 1, "the client's long-poll to be parked")
        threads = list(client._threads)
        client.stop(timeout=WELL_BEFORE)
        assert not any(t.is_alive() for t in threads), "stop() waited for the long-poll instead of cutting it"
        assert client.status().offline_since is None  # stopping is not an outage
        _until(lambda: waiters.waiting == 0, "the server to let go of the cut long-poll")
    finally:
        client.close()
        rep.close()


def test_a_caught_up_client_stays_live_through_a_wait_longer_than_live_within(served, tmp_path):
    store, host, server = served
    waiters = host.router.commit_waiters
    clock = SimClock(1_800_000_000.0)
    rep = init_store(str(tmp_path / "rep.duckdb"), "city", "500000", node="console-rep", clock=clock)
    client = SyncClient(rep, server.url, clock=clock, wait=LONG_WAIT, live_within=5.0)
    try:
        client.pull_until_caught_up()
        client.start()
        _until(lambda: waiters.waiting == 1, "the client's long-poll to be parked")
        clock.advance(60.0)  # long past live_within since the last reply: the server is holding our poll
        assert client.status().state == "live"
    finally:
        client.close()
        rep.close()
