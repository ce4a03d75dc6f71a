"""Fuzzed request bodies: never a 500, and a refused request changes no event, directive or receipt."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from cqgov_tui.clock import SimClock
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store

SECRET = b"fuzz-test-secret-0123456789abcdef0123456"
TYPES = ["report", "act", "supervise", "directive.send", "receipt", "federate.event", "federate.receipt", "nope"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(["category", "code", "lon", "lat", "event", "action", "targets", "text", "deadline",
                     "deadline_at", "directive", "state", "event_id", "receipt", "colour", "note", "x"]),
    json_values, max_size=6)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    clock = SimClock()
    store = init_store(str(tmp_path_factory.mktemp("fuzz") / "d.duckdb"), "district", "500108", clock=clock)
    srv = TierServer(store, TokenAuthority(SECRET), clock=clock)
    http = TestClient(create_app(srv, start_background=False), raise_server_exceptions=False)
    tok = srv.authority.issue(user="f", role="admin", tier="district", scope="500108", now=clock.now(), ttl=1e6,
                              peer=False)
    peer = srv.authority.issue(user="p", role="admin", tier="street", scope="500108001", now=clock.now(), ttl=1e6,
                               peer=True)
    yield srv, http, {"Authorization": f"Bearer {tok}"}, {"Authorization": f"Bearer {peer}"}
    store.close()


def _domain(store):
    return (store.count_rows("events"), store.count_rows("directives"), store.count_rows("receipts"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_raw_bytes_are_4xx_and_change_nothing(server, raw):
    srv, http, h, _ = server
    head = srv.store.head()
    r = http.post("/v1/commands", content=raw, headers={**h, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert srv.store.head() == head


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ctype=st.sampled_from(TYPES), body=bodies, as_peer=st.booleans())
def test_random_commands_never_500_and_change_no_rows(server, ctype, body, as_peer):
    srv, http, h, peer = server
    before = _domain(srv.store)
    # NaN and Infinity go out as the bare tokens Python's json accepts, so the server meets them too.
    payload = json.dumps({"commands": [{"id": f"fz{abs(hash((ctype, json.dumps(body, default=str))))}",
                                        "type": ctype, "body": body}]})
    r = http.post("/v1/commands", content=payload.encode(),
                  headers={**(peer if as_peer else h), "Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert not r.json()["accepted"], r.json()
    assert _domain(srv.store) == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/changes", "/v1/snapshot", "/v1/events", "/v1/directives", "/v1/directives/x",
                             "/v1/stats", "/v1/health"]),
       params=st.dictionaries(st.sampled_from(["cursor", "limit", "wait", "token", "include_closed", "node"]),
                              st.text(max_size=40), max_size=4))
def test_random_queries_never_500(server, path, params):
    srv, http, h, _ = server
    head = srv.store.head()
    if "wait" in params:
        params["wait"] = "0"
    r = http.get(path, params=params, headers=h)
    assert r.status_code < 500, r.text
    assert srv.store.head() == head


def test_oversize_body_is_413(server):
    srv, http, h, _ = server
    head = srv.store.head()
    r = http.post("/v1/commands", content=b"{" + b" " * (9 << 20) + b"}", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413 and srv.store.head() == head
