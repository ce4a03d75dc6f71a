"""Sync protocol on a real loopback server: idempotent commands, scoping, 410s, snapshots, cache, rejections."""

from __future__ import annotations

import json
import random
import threading

import httpx
import pytest

from cqgov_tui.domain.entities import Directive, Receipt, Role, Tier, User
from cqgov_tui.scope import change_visible, covers
from cqgov_tui.store import init_store
from cqgov_tui.sync import changelog, wire
from cqgov_tui.sync.client import SyncClient
from cqgov_tui.ids import uuid7

from synchost import ADMIN, SyncTestHost, events_hash, report_body, serve_in_thread

STREET_USER = User("grid1", "网格员", Role.GRID_WORKER, Tier.STREET, "500108001")
DISTRICT_USER = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500103")


@pytest.fixture
def city(tmp_path):
    store = init_store(str(tmp_path / "city.duckdb"), "city", "500000")
    host = SyncTestHost(store, tokens={"street": STREET_USER, "district": DISTRICT_USER, "admin": ADMIN})
    rng = random.Random(7)
    for i in range(6):
        host.engine.report(**report_body(rng, i, "500108"))
    for i in range(4):
        host.engine.report(**report_body(rng, i, "500103"))
    host.engine.report(category="garbage", title="南坪街道垃圾", code="500108001")
    store.put_directive(Directive("d-south", "D-1", "city", "500000", "南岸防汛", "注意防汛", "urgent", ["500108"], True,
                                  9e9, 1.0, "admin", 1))
    store.put_directive(Directive("d-yuzhong", "D-2", "city", "500000", "渝中巡查", "巡查", "normal", ["500103"], False,
                                  9e9, 1.0, "admin", 1))
    store.put_receipt(Receipt("d-south", "500108001", "delivered", 2.0, None, None, None, None, 0, 1))
    with serve_in_thread(host) as server:
        yield store, host, server
    store.close()


def _post(url, commands, token=None, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is not None:
        return httpx.post(url + "/v1/commands", content=raw, headers={**headers, "Content-Type": "application/json"})
    return httpx.post(url + "/v1/commands", json={"commands": commands}, headers=headers)


def _replica(tmp_path, name="replica"):
    return init_store(str(tmp_path / f"{name}.duckdb"), "city", "500000", node=f"console-{name}")


def test_same_id_different_body_is_refused_and_replay_gets_the_same_answer(city):
    store, host, server = city
    event = store.queue()[0]
    cid = uuid7()
    cmd = {"id": cid, "type": "act", "body": {"ref": event.id, "action": "comment", "note": "第一次"}}
    first = _post(server.url, [cmd]).json()
    assert [a["id"] for a in first["accepted"]] == [cid]
    audit_after_first = len(store.audit_entries(event.id))
    replay = _post(server.url, [cmd]).json()
    assert replay["duplicate"] == [{"id": cid, "result": first["accepted"][0]["result"]}]
    forged = {**cmd, "body": {**cmd["body"], "note": "改过的"}}
    refused = _post(server.url, [forged]).json()
    assert refused["rejected"] == [{"id": cid, "reason": "id reused with a different body", "code": "bad_input"}]
    assert len(store.audit_entries(event.id)) == audit_after_first  # applied exactly once
    # a refusal is also answered the same way on replay, and is not re-executed
    bad = {"id": uuid7(), "type": "act", "body": {"ref": event.id, "action": "close"}}
    r1 = _post(server.url, [bad]).json()["rejected"][0]
    r2 = _post(server.url, [bad]).json()["rejected"][0]
    assert r1 == r2 and "cannot close" in r1["reason"]


def test_malformed_unknown_and_oversized_batches_change_nothing(city):
    store, host, server = city
    head = store.head()
    count = lambda: store.conn.execute("SELECT count(*) FROM applied_commands").fetchone()[0]  # noqa: E731
    before = count()
    assert _post(server.url, None, raw=b"{not json").status_code == 400
    assert _post(server.url, None, raw=b'{"commands": {}}').status_code == 400
    assert _post(server.url, [{"id": "short", "type": "act", "body": {}}]).status_code == 400
    good = {"id": uuid7(), "type": "act", "body": {"ref": store.queue()[0].id, "action": "comment", "note": "x"}}
    r = _post(server.url, [good, {"id": uuid7(), "type": "launch_rocket", "body": {}}])
    assert r.status_code == 422 and "unknown command type" in r.json()["detail"]
    big = json.dumps({"commands": [{"id": uuid7(), "type": "act", "body": {"note": "x" * (1 << 20)}}]}).encode()
    assert _post(server.url, None, raw=big).status_code == 413
    assert store.head() == head and count() == before


def test_scope_every_pulled_row_is_inside_the_callers_subtree(city, tmp_path):
    store, host, server = city
    for token, user in (("street", STREET_USER), ("district", DISTRICT_USER)):
        rep = _replica(tmp_path, token)
        client = SyncClient(rep, server.url, token=token, backoff_base=0.01)
        client.pull_until_caught_up()
        host.engine.report(category="garbage", title="新事件", code=user.scope_code if len(user.scope_code) > 6 else "500103001")
        client.pull_until_caught_up()
        events = rep.all_events()
        assert events, token
        assert all(covers(user.scope_code, e.grid_code or e.street_code or e.district_code) for e in events)
        n_in_scope = sum(1 for e in store.all_events()
                         if covers(user.scope_code, e.grid_code or e.street_code or e.district_code))
        assert len(events) == n_in_scope
        directives = {d.id for d in rep.directives()}
        assert directives == ({"d-south"} if token == "street" else {"d-yuzhong"})
        # every change the replica logged came from the server and is visible to the caller
        for ch in rep.changes_after(0, 100_000):
            assert change_visible(user.scope_code, ch["entity"], ch["scope"]), ch
        client.close()
        rep.close()


def test_change_visible_rules():
    assert change_visible("500108001", "directive", "500108")  # inside a target's subtree
    assert change_visible("500000", "directive", "500108001")  # the issuer above sees it
    assert not change_visible("500103", "directive", "500108")
    # An audience says who answers inside the jurisdictions; it never widens who sees the directive.
    assert not change_visible("500103", "directive", "500108,dept:cgj,role:grid_worker")
    assert change_visible("500108002", "directive", "500108,dept:cgj,role:grid_worker")
    assert change_visible("500108", "event", "500108001002")
    assert not change_visible("500108001", "event", "500108002001")
    assert not change_visible("500108", "audit", "")


def test_410_for_unknown_epoch_past_head_and_compacted_cursor(city):
    store, host, server = city
    url = server.url + "/v1/changes"
    ok = httpx.get(url, params={"cursor": f"{store.epoch}:0"})
    assert ok.status_code == 200 and ok.headers["content-type"] == wire.MEDIA_TYPE
    unknown = httpx.get(url, params={"cursor": "someone-else:3"})
    assert unknown.status_code == 410 and "unknown epoch" in unknown.json()["detail"]
    past = httpx.get(url, params={"cursor": f"{store.epoch}:{store.head() + 5}"})
    assert past.status_code == 410 and "past the head" in past.json()["detail"]
    changelog.compact(store, store.head() - 3)
    old = httpx.get(url, params={"cursor": f"{store.epoch}:1"})
    assert old.status_code == 410 and "compacted" in old.json()["detail"]
    assert httpx.get(url, params={"cursor": "garbage"}).status_code == 400
    assert httpx.get(url, params={"cursor": f"{store.epoch}:0", "limit": "-1"}).status_code in (400, 410)


def test_snapshot_in_small_pages_resumes_and_equals_the_server(city, tmp_path):
    store, host, server = city
    rep = _replica(tmp_path)
    client = SyncClient(rep, server.url, snapshot_limit=3, backoff_base=0.01)
    client.pull_once()  # first page only: the cursor says "snapshot" with a page token
    state = client.cursor()
    assert state.phase == "snapshot" and state.snap_token
    client.close()
    rep.close()
    from cqgov_tui.store import open_store

    rep = open_store(str(tmp_path / "replica.duckdb"))  # a restart mid-snapshot resumes from the token
    client = SyncClient(rep, server.url, snapshot_limit=3, backoff_base=0.01)
    host.engine.report(category="garbage", title="快照期间的新事件", code="500108002")
    result = client.pull_until_caught_up()
    assert result.caught_up and client.cursor().phase == "live"
    assert events_hash(rep) == events_hash(store)
    assert {d.id for d in rep.directives()} == {d.id for d in store.directives()}
    assert rep.conn.execute("SELECT count(*) FROM audit_remote").fetchone()[0] == len(store.audit_entries())
    client.close()


def test_same_delta_to_many_pullers_is_encoded_once(city):
    store, host, server = city
    delta_cache = host.router.delta_cache
    hits0, misses0 = delta_cache.hits, delta_cache.misses
    params = {"cursor": f"{store.epoch}:0", "limit": 50}
    bodies = [httpx.get(server.url + "/v1/changes", params=params).content for _ in range(5)]
    assert len(set(bodies)) == 1
    assert delta_cache.misses - misses0 == 1 and delta_cache.hits - hits0 == 4
    # a new change moves the head: the same cursor is built afresh and includes it
    host.engine.report(category="garbage", title="缓存之后", code="500108003")
    fresh = wire.decode(httpx.get(server.url + "/v1/changes", params=params).content)
    assert fresh.changes[-1].seq == store.head() or fresh.has_more


def test_long_poll_returns_a_change_made_while_waiting(city):
    store, host, server = city
    cursor = f"{store.epoch}:{store.head()}"
    timer = threading.Timer(0.3, lambda: host.engine.report(category="garbage", title="长轮询", code="500108004"))
    timer.start()
    try:
        r = httpx.get(server.url + "/v1/changes", params={"cursor": cursor, "wait": 20}, timeout=30)
    finally:
        timer.join()
    msg = wire.decode(r.content)
    assert any(c.entity == "event" and c.data.get("title") == "长轮询" for c in msg.changes)


def test_json_for_humans(city):
    store, host, server = city
    r = httpx.get(server.url + "/v1/changes", params={"cursor": f"{store.epoch}:0", "limit": 2},
                  headers={"Accept": "application/json"})
    doc = r.json()
    assert r.headers["content-type"].startswith("application/json")
    assert len(doc["changes"]) == 2 and doc["meta"]["cqgov.epoch"] == store.epoch


def test_rejected_command_is_kept_shown_and_its_local_effect_undone(city, tmp_path):
    store, host, server = city
    rep = _replica(tmp_path)
    client = SyncClient(rep, server.url, backoff_base=0.01)
    client.pull_until_caught_up()
    event = rep.queue()[0]
    host.engine.act(event.id, "verify", ADMIN)  # the server moves on; the replica has not pulled yet
    cid = client.enqueue("act", {"ref": event.id, "action": "verify", "note": "现场核实"})
    assert rep.get_event(event.id).status == "verified"  # local effect at once
    result = client.push_until_drained()
    assert result.rejected == 1
    status = client.status()
    assert status.outbox == 0 and status.rejected == 1
    assert status.recent_rejections[0]["id"] == cid and "cannot verify" in status.recent_rejections[0]["reason"]
    assert rep.get_event(event.id).status == "reported"  # pre-image restored
    client.pull_until_caught_up()
    assert rep.get_event(event.id).status == "verified"  # the server's truth arrives
    assert client.outbox.dismiss(cid) and client.status().rejected == 0
    client.close()


def test_report_appears_locally_then_the_servers_row_replaces_it(city, tmp_path):
    store, host, server = city
    rep = _replica(tmp_path)
    client = SyncClient(rep, server.url, backoff_base=0.01)
    client.pull_until_caught_up()
    client.enqueue("report", report_body(random.Random(3), 99))
    local = [e for e in rep.all_events() if e.number == "待同步"]
    assert len(local) == 1
    assert client.push_until_drained().accepted == 1
    client.pull_until_caught_up()
    remote = rep.get_event(local[0].id)
    assert remote.number != "待同步" and remote == store.get_event(local[0].id)
    assert events_hash(rep) == events_hash(store)
    client.close()


def test_district_replica_re_serves_to_its_streets_without_echo(city, tmp_path):
    store, host, server = city
    district = init_store(str(tmp_path / "district.duckdb"), "district", "500108", node="district-500108")
    up = SyncClient(district, server.url, token="admin", backoff_base=0.01)
    up.pull_until_caught_up()
    dhost = SyncTestHost(district, default_user=STREET_USER)
    with serve_in_thread(dhost) as dserver:
        street = init_store(str(tmp_path / "street.duckdb"), "street", "500108001", node="street-500108001")
        down = SyncClient(street, dserver.url, backoff_base=0.01)
        down.pull_until_caught_up()
        expected = [e for e in store.all_events() if covers("500108001", e.grid_code or e.street_code)]
        assert sorted(e.id for e in street.all_events()) == sorted(e.id for e in expected)
        assert {ch["origin"] for ch in street.changes_after(0, 10_000)} == {"city-500000"}  # origin preserved
        # the city pulling from the district gets nothing back that came from the city
        r = httpx.get(dserver.url + "/v1/changes", params={"cursor": f"{district.epoch}:0", "node": "city-500000"})
        assert wire.decode(r.content).changes == []
        down.close()
    up.close()
