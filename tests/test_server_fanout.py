"""Directive fan-out: each receipt coming back costs one keyed read, never a read of all its directive's receipts."""

from __future__ import annotations

from starlette.testclient import TestClient

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Receipt
from cqgov_tui.domain.schema import to_row
from cqgov_tui.engine import directives
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store

SECRET = b"fanout-test-secret-0123456789abcdef0123"


def test_receipts_from_every_street_of_a_district_each_read_only_their_own_row(tmp_path, monkeypatch):
    clock = SimClock()
    store = init_store(str(tmp_path / "district.duckdb"), "district", "500108", clock=clock)
    try:
        server = TierServer(store, TokenAuthority(SECRET), clock=clock)
        http = TestClient(create_app(server, start_background=False))
        now = clock.now()
        duty = server.authority.issue(user="duty", role="duty_officer", tier="district", scope="500108", now=now, ttl=600)
        streets = [j.code for j in server.engine.registry.children("500108")]
        sent = http.post("/v1/commands", headers={"Authorization": f"Bearer {duty}"}, json={"commands": [
            {"id": "directive-0001", "type": "directive.send",
             "body": {"targets": streets, "text": "防汛值守", "deadline": "1h"}}]}).json()
        d_id = sent["accepted"][0]["result"]["directive_id"]
        assert directives.recipients(server.engine.registry, streets) == sorted(streets)
        assert len(streets) > 5

        def whole_list(_directive_id):
            raise AssertionError("a receipt read every receipt of its directive")

        monkeypatch.setattr(store, "receipts", whole_list)
        for i, code in enumerate(streets):
            peer = server.authority.issue(user=f"node:street-{code}", role="admin", tier="street", scope=code, now=now,
                                          ttl=600, peer=True)
            body = [{"id": f"r-{i:04d}-{state}", "type": "federate.receipt", "body": {"receipt": to_row(
                Receipt(d_id, code, state, now, now if state == "acknowledged" else None,
                        now if state == "acknowledged" else None, None, code, 0, v))}}
                for v, state in ((1, "delivered"), (2, "acknowledged"))]
            r = http.post("/v1/commands", headers={"Authorization": f"Bearer {peer}"}, json={"commands": body}).json()
            assert len(r["accepted"]) == 2, r
        monkeypatch.undo()
        status = directives.status(store, server.engine.registry, d_id)
        assert status["complete"] and status["counts"]["acknowledged"] == len(streets)
        # a copy for a directive this server never had is refused, and writes nothing
        peer = server.authority.issue(user=f"node:street-{streets[0]}", role="admin", tier="street", scope=streets[0],
                                      now=now, ttl=600, peer=True)
        stray = to_row(Receipt("no-such-directive", streets[0], "delivered", now, None, None, None, "x", 0, 1))
        r = http.post("/v1/commands", headers={"Authorization": f"Bearer {peer}"},
                      json={"commands": [{"id": "stray-0001", "type": "federate.receipt", "body": {"receipt": stray}}]}).json()
        assert r["rejected"] and "no directive" in r["rejected"][0]["reason"]
        assert store.get_receipt("no-such-directive", streets[0]) is None
    finally:
        store.close()
