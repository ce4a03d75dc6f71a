"""POST /v1/commands: a batch applies in one store transaction; a refusal inside it changes nothing;
a refusal that wrote anyway, or an unexpected error, falls back to one transaction per command —
every command id recorded exactly once either way."""

from __future__ import annotations

import contextlib

from starlette.testclient import TestClient

from cqgov_tui.clock import SimClock
from cqgov_tui.errors import BadInput
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store

SECRET = b"batch-test-secret-0123456789abcdef0123"


def _setup(tmp_path):
    clock = SimClock()
    store = init_store(str(tmp_path / "street.duckdb"), "street", "500108001", clock=clock)
    server = TierServer(store, TokenAuthority(SECRET), clock=clock)
    token = server.authority.issue(user="li", role="admin", tier="street", scope="500108001", now=clock.now(), ttl=600)
    return store, server, TestClient(create_app(server, start_background=False)), {"Authorization": f"Bearer {token}"}


def _count_transactions(store) -> list[int]:
    """Wrap store.tx to count outermost transactions (nested ones join them)."""
    counted = [0]
    inner = store.tx

    @contextlib.contextmanager
    def tx():
        if not store._depth:
            counted[0] += 1
        with inner():
            yield store

    store.tx = tx
    return counted


def _report(i: int) -> dict:
    return {"id": f"report-{i:04d}", "type": "report",
            "body": {"category": "manhole_cover", "code": "500108001", "title": f"井盖 {i}"}}


def test_a_batch_is_one_transaction_and_a_refusal_in_it_changes_nothing(tmp_path):
    store, _server, http, auth = _setup(tmp_path)
    try:
        counted = _count_transactions(store)
        bad = {"id": "refused-0001", "type": "act", "body": {"event": "no-such-event", "action": "verify"}}
        batch = [_report(i) for i in range(10)] + [bad] + [_report(i) for i in range(10, 20)]
        r = http.post("/v1/commands", json={"commands": batch}, headers=auth).json()
        assert counted[0] == 1
        assert len(r["accepted"]) == 20 and [x["id"] for x in r["rejected"]] == ["refused-0001"]
        assert store.count_rows("events") == 20
        # a replay answers from the records: duplicates and the same refusal, nothing applied again
        again = http.post("/v1/commands", json={"commands": batch}, headers=auth).json()
        assert len(again["duplicate"]) == 20 and again["rejected"] == r["rejected"]
        assert store.count_rows("events") == 20 and store.verify_audit().ok
    finally:
        store.close()


def test_a_refusal_that_wrote_falls_back_to_one_transaction_per_command(tmp_path):
    store, server, http, auth = _setup(tmp_path)
    try:
        def writes_then_refuses(actor, body):
            store.append_audit(event_id="-", action="half-done", from_status=None, to_status=None, actor=actor.user,
                               role="admin", tier="street", note="must not survive")
            raise BadInput("refused after writing")

        server.handler.handlers["test.half"] = writes_then_refuses
        batch = [_report(1), {"id": "half-0001", "type": "test.half", "body": {}}, _report(2)]
        r = http.post("/v1/commands", json={"commands": batch}, headers=auth).json()
        assert [x["id"] for x in r["accepted"]] == ["report-0001", "report-0002"]
        assert r["rejected"] == [{"id": "half-0001", "reason": "refused after writing", "code": "bad_input"}]
        assert store.count_rows("events") == 2
        assert not [a for a in store.audit_entries() if a.action == "half-done"]
        again = http.post("/v1/commands", json={"commands": batch}, headers=auth).json()
        assert len(again["duplicate"]) == 2 and again["rejected"] == r["rejected"]
        assert store.count_rows("events") == 2
    finally:
        store.close()
