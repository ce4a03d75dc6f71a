"""Tokens and scoping: forged, expired and malformed tokens; the role × jurisdiction × read/command matrix."""

from __future__ import annotations

import os
import stat

import pytest
from starlette.testclient import TestClient

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role
from cqgov_tui.errors import BadInput
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import AuthError, TokenAuthority, load_secret, visible
from cqgov_tui.store import init_store

SECRET = b"auth-test-secret-0123456789abcdef0123"


def test_token_round_trip_and_refusals():
    clock = SimClock()
    auth = TokenAuthority(SECRET)
    tok = auth.issue(user="li", role="dispatcher", tier="district", scope="500108", now=clock.now(), ttl=60)
    p = auth.verify(tok, clock.now())
    assert (p.user, p.role, p.scope_code, p.peer) == ("li", Role.DISPATCHER, "500108", False)
    payload, sig = tok.split(".")
    with pytest.raises(AuthError, match="signature"):
        auth.verify(payload[:-2] + "xx." + sig, clock.now())
    with pytest.raises(AuthError, match="signature"):
        TokenAuthority(b"another-secret-of-enough-length-000000").verify(tok, clock.now())
    with pytest.raises(AuthError, match="expired"):
        auth.verify(tok, clock.now() + 61)
    for bad in (None, "", "abc", "a.b.c", "x" * 5000):
        with pytest.raises(AuthError):
            auth.verify(bad, clock.now())
    with pytest.raises(BadInput):
        auth.issue(user="li", role="emperor", tier="district", scope="500108", now=0, ttl=60)


def test_secret_file_is_created_private_and_reused(tmp_path):
    path = str(tmp_path / "s.secret")
    first = load_secret(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(path) == first
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(BadInput, match="too short"):
        load_secret(str(tmp_path / "short"))


def test_visible_is_subtree_for_rows_and_addressed_for_directives():
    assert visible("500000", "500108001001")
    assert visible("500108", "500108001")
    assert not visible("500108", "500112001")
    assert not visible("500108001", "500108")  # a district-wide event is not inside a street's subtree
    assert visible("500108001", "500108", "directive")  # but a directive to the district is addressed to it
    assert not visible("500112001", "500108,500113", "directive")
    assert not visible("500108", "")


@pytest.fixture
def city(tmp_path):
    clock = SimClock()
    store = init_store(str(tmp_path / "city.duckdb"), "city", "500000", clock=clock)
    server = TierServer(store, TokenAuthority(SECRET), clock=clock)
    app = create_app(server, start_background=False)
    http = TestClient(app)
    admin = server.authority.issue(user="root", role="admin", tier="city", scope="500000", now=clock.now(), ttl=1e6)
    ids = {}
    for code in ("500108001", "500112001"):
        r = http.post("/v1/commands", json={"commands": [{"id": f"seed-{code}", "type": "report",
                                                          "body": {"category": "noise", "code": code}}]},
                      headers={"Authorization": f"Bearer {admin}"})
        ids[code[:6]] = r.json()["accepted"][0]["result"]["event_id"]
    yield server, http, ids, clock
    store.close()


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize("where", ["own", "other"])
def test_auth_matrix(city, role, where):
    """Each role, scoped to 南岸区 (500108): reads show only its subtree; commands outside it are refused and audited."""
    server, http, ids, clock = city
    tok = server.authority.issue(user=f"u-{role}", role=role, tier="district", scope="500108", now=clock.now(), ttl=600,
                                 department="cgj" if role == "department" else None)
    h = {"Authorization": f"Bearer {tok}"}
    target = "500108" if where == "own" else "500112"
    event_id = ids[target]

    # read: the event list, the change log (JSON form) and a snapshot
    listed = {e["id"] for e in http.get("/v1/events", headers=h).json()}
    changes = http.get(f"/v1/changes?cursor={server.store.epoch}:0&limit=5000",
                       headers={**h, "Accept": "application/json"})
    snap = http.get("/v1/snapshot", headers={**h, "Accept": "application/json"})
    assert changes.status_code == 200 and snap.status_code == 200
    if where == "own":
        assert event_id in listed and event_id in changes.text and event_id in snap.text
    else:
        assert event_id not in listed and event_id not in changes.text and event_id not in snap.text
    assert ids["500112"] not in listed  # never anything outside the scope, whatever was asked

    # command: report inside the target district and comment on its event
    before = server.store.count_rows("events")
    r = http.post("/v1/commands", json={"commands": [
        {"id": f"rep-{role}-{where}", "type": "report", "body": {"category": "noise", "code": f"{target}001"}},
        {"id": f"com-{role}-{where}", "type": "act", "body": {"event": event_id, "action": "comment", "note": "看"}},
    ]}, headers=h).json()
    server.handler.flush_denials(final=True)
    if where == "own":
        assert len(r["accepted"]) == 2, r
        assert server.store.count_rows("events") == before + 1
    else:
        assert len(r["rejected"]) == 2 and not r["accepted"], r
        assert "outside 500108" in r["rejected"][0]["reason"]
        assert r["rejected"][1]["reason"] == f"no event {event_id!r} in your jurisdiction"  # nothing of the event
        assert server.store.count_rows("events") == before
        denied = [a for a in server.store.audit_entries() if a.action == "denied" and a.actor == f"u-{role}"]
        assert len(denied) == 1 and denied[0].note.startswith("2 refused")  # one entry per caller and minute


def test_missing_expired_and_foreign_tokens_are_refused(city):
    server, http, ids, clock = city
    assert http.get("/v1/events").status_code == 401
    old = server.authority.issue(user="x", role="admin", tier="city", scope="500000", now=clock.now() - 100, ttl=10)
    assert http.get("/v1/events", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    forged = TokenAuthority(b"z" * 40).issue(user="x", role="admin", tier="city", scope="500000", now=clock.now(), ttl=60)
    r = http.post("/v1/commands", json={"commands": []}, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_a_token_for_another_district_cannot_use_a_district_server(tmp_path):
    clock = SimClock()
    store = init_store(str(tmp_path / "d.duckdb"), "district", "500108", clock=clock)
    server = TierServer(store, TokenAuthority(SECRET), clock=clock)
    http = TestClient(create_app(server, start_background=False))
    tok = server.authority.issue(user="y", role="admin", tier="district", scope="500112", now=clock.now(), ttl=60)
    assert http.get("/v1/events", headers={"Authorization": f"Bearer {tok}"}).status_code == 403
    store.close()


def test_federation_commands_need_a_peer_token_of_the_lower_tier(city):
    server, http, ids, clock = city
    user = server.authority.issue(user="d", role="admin", tier="district", scope="500108", now=clock.now(), ttl=60)
    r = http.post("/v1/commands", json={"commands": [{"id": "fed-00000001", "type": "federate.event",
                                                      "body": {"event": {}}}]},
                  headers={"Authorization": f"Bearer {user}"}).json()
    assert r["rejected"] and "not a district-tier server" in r["rejected"][0]["reason"]
