"""Authorization at the edge, against real tier servers on 127.0.0.1 (issue 11, items 1, 2 and 4).

* federation: every peer × every owner of a row × take-over variants, at a district and at the city —
  a copy is accepted only from the owner's side, inside the owner's jurisdiction, never over a row
  the receiver owns (the issue's take-over first); the same rule on the way down (replica guard);
* the role × tier × own/sibling/parent/other jurisdiction × read/command matrix at the city: reads
  show nothing outside the caller's subtree, refusals name nothing but what was sent, nothing
  outside the scope changes;
* departments act only on their own work; a token's tier matches its scope's level;
* denials are audited once per caller and minute with a count; past the limit the caller gets 429.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import httpx
import pytest
from click.testing import CliRunner

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role
from cqgov_tui.domain.schema import to_row
from cqgov_tui.server.auth import TokenAuthority
from factories import make_event
from synchost import TierServing

SECRET = b"security-matrix-secret-0123456789abcdef"
OWN, SIBLING, DISTRICT_LEVEL, OTHER = "500108001", "500108002", "500108", "500112001"
_ids = itertools.count()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def post(http: httpx.Client, token: str, ctype: str, body: dict) -> dict:
    """One command; returns ('accepted', result) or ('rejected', reason)."""
    r = http.post("/v1/commands", headers=bearer(token),
                  json={"commands": [{"id": f"cmd-{next(_ids):08d}", "type": ctype, "body": body}]})
    assert r.status_code == 200, r.text
    doc = r.json()
    if doc["accepted"]:
        return {"ok": True, "result": doc["accepted"][0]["result"]}
    return {"ok": False, "reason": doc["rejected"][0]["reason"]}


def post_many(http: httpx.Client, token: str, commands: list[tuple[str, dict]]) -> list[dict]:
    """Several commands in one batch (each applied or refused on its own); replies in order, as ``post``'s."""
    ids = [f"cmd-{next(_ids):08d}" for _ in commands]
    r = http.post("/v1/commands", headers=bearer(token),
                  json={"commands": [{"id": i, "type": t, "body": b} for i, (t, b) in zip(ids, commands)]})
    assert r.status_code == 200, r.text
    doc = r.json()
    out = {a["id"]: {"ok": True, "result": a["result"]} for a in doc["accepted"]}
    out.update({x["id"]: {"ok": False, "reason": x["reason"]} for x in doc["rejected"]})
    return [out[i] for i in ids]


def peer_token(authority: TokenAuthority, clock, tier: str, code: str) -> str:
    return authority.issue(user=f"node:{tier}-{code}", role="admin", tier=tier, scope=code, now=clock.now(), ttl=1e6,
                           peer=True)


def rows(store) -> dict[str, dict]:
    from cqgov_tui.store.replica import event_rows

    return {k: v for k, v in event_rows(store, store.event_ids()).items() if v is not None}


def place(tier_code: str) -> dict:
    """Location fields of an event at a street (its first grid) or at district level."""
    if len(tier_code) == 9:
        return dict(district_code=tier_code[:6], street_code=tier_code, grid_code=tier_code + "001")
    return dict(district_code=tier_code, street_code=None, grid_code=None)


# ------------------------------------------------------------------ federation (item 1)


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    with TierServing(tmp_path_factory.mktemp("district"), "district", "500108", SECRET, token_ttl=1e6) as d:
        with httpx.Client(base_url=d.url, timeout=30) as http:
            yield d, http


def test_the_issue_take_over_is_refused_and_changes_nothing(district):
    """A street's peer token sends federate.event for its sibling's event and for a district-owned event,
    with a higher version, its own street_code, status closed and itself as origin_node: refused."""
    d, http = district
    clock, auth = d.clock, d.server.authority
    own_peer, sibling_peer = peer_token(auth, clock, "street", OWN), peer_token(auth, clock, "street", SIBLING)
    sibling_event = make_event(now=clock.now(), origin_tier="street", origin_node=f"street-{SIBLING}", **place(SIBLING))
    assert post(http, sibling_peer, "federate.event", {"event": to_row(sibling_event)})["ok"]
    # (garbage: no smart plan auto-dispatches it at any hour, so the verify below is legal day and night)
    reported = post(http, d.token, "report", {"category": "garbage", "code": SIBLING})
    district_event = d.store.get_event(reported["result"]["event_id"])
    before = rows(d.store)

    for victim in (sibling_event, district_event):
        forged = dataclasses.replace(victim, version=victim.version + 5, status="closed", origin_tier="street",
                                     origin_node=f"street-{OWN}", **place(OWN))
        reply = post(http, own_peer, "federate.event", {"event": to_row(forged)})
        assert not reply["ok"] and reply["reason"].startswith(f"federate.event {victim.id} refused")
        # the owner's own claim, sent by someone else: refused (the district's own row: a no-op, as an echo is)
        honest = dataclasses.replace(victim, version=victim.version + 5, status="closed")
        reply = post(http, own_peer, "federate.event", {"event": to_row(honest)})
        assert not reply["ok"] or reply["result"]["applied"] is False
    assert rows(d.store) == before  # 0 cross-scope overwrites
    # ... and the district still acts on its own event
    assert post(http, d.token, "act", {"event": district_event.id, "action": "verify"})["ok"]


SENDERS = {"own street": ("street", OWN), "sibling street": ("street", SIBLING), "other street": ("street", OTHER),
           "the district itself": ("district", "500108"), "a district below the city": ("district", "500112")}
OWNERS = {"the sender": None, "its sibling": f"street-{SIBLING}", "the district": "district-500108",
          "the city": "city-500000", "another district's street": f"street-{OTHER}"}


@pytest.mark.parametrize("sender", SENDERS)
def test_district_federation_matrix(district, sender):
    """Every sender × every owner × new/over-existing rows at a district: only the sender's own rows, in place."""
    d, http = district
    tier, code = SENDERS[sender]
    token = peer_token(d.server.authority, d.clock, tier, code)
    if code in (OTHER, "500112"):
        r = http.post("/v1/commands", headers=bearer(token), json={"commands": []})
        assert r.status_code == 403  # not this server's subtree at all
        return
    me = f"{tier}-{code}"
    for label, owner in OWNERS.items():
        owner = owner or me
        where = owner.split("-", 1)[1] if owner.startswith("street-") else OWN  # a street's row lies in it
        fresh = make_event(now=d.clock.now(), origin_tier=owner.split("-")[0], origin_node=owner, **place(where))
        before = rows(d.store)
        reply = post(http, token, "federate.event", {"event": to_row(fresh)})
        legit = tier == "street" and owner == me
        # refused, or (a row naming this district as its owner) taken as an echo of its own: never written
        written = reply["ok"] and reply["result"]["applied"]
        assert written == legit, (sender, label, reply)
        after = rows(d.store)
        if legit:
            assert set(after) - set(before) == {fresh.id}
        else:
            assert after == before
    # a row placed outside its owner (the street's own node, the sibling's street) is refused
    misplaced = make_event(now=d.clock.now(), origin_tier=tier, origin_node=me, **place(SIBLING if code == OWN else OWN))
    assert not post(http, token, "federate.event", {"event": to_row(misplaced)})["ok"]


def test_receipts_are_taken_only_from_the_street_that_answers_them(district):
    d, http = district
    clock, auth = d.clock, d.server.authority
    sent = post(http, d.token, "directive.send", {"targets": [OWN, SIBLING], "text": "防汛检查", "deadline": "2h"})
    d_id = sent["result"]["directive_id"]
    receipt = {"directive_id": d_id, "jurisdiction_code": SIBLING, "state": "executed", "delivered_at": clock.now(),
               "read_at": clock.now(), "acknowledged_at": clock.now(), "executed_at": clock.now(), "actor": "x",
               "renotified": 0, "version": 9}
    own_peer = peer_token(auth, clock, "street", OWN)
    for body in ({"receipt": receipt}, {"receipt": {**receipt, "jurisdiction_code": OWN}, "origin": f"street-{SIBLING}"},
                 {"receipt": {**receipt, "jurisdiction_code": OWN, "directive_id": "no-such-directive"}}):
        reply = post(http, own_peer, "federate.receipt", body)
        assert not reply["ok"] and "refused" in reply["reason"], body
    assert d.store.get_receipt(d_id, SIBLING) is None
    assert post(http, own_peer, "federate.receipt", {"receipt": {**receipt, "jurisdiction_code": OWN}})["ok"]
    assert d.store.get_receipt(d_id, OWN).state == "executed"


def test_city_federation_a_district_peer_sends_only_its_subtree(tmp_path):
    with TierServing(tmp_path, "city", "500000", SECRET, token_ttl=1e6) as c, \
            httpx.Client(base_url=c.url, timeout=30) as http:
        auth, clock = c.server.authority, c.clock
        nanan, yubei = peer_token(auth, clock, "district", "500108"), peer_token(auth, clock, "district", "500112")
        street_event = make_event(now=clock.now(), origin_tier="street", origin_node=f"street-{OWN}", **place(OWN))
        district_event = make_event(now=clock.now(), origin_tier="district", origin_node="district-500108",
                                    **place("500108"))
        for e in (street_event, district_event):  # a district relays its own and its streets' rows
            assert post(http, nanan, "federate.event", {"event": to_row(e)})["ok"]
        city_event = c.store.get_event(post(http, c.token, "report", {"category": "noise", "code": OWN})
                                       ["result"]["event_id"])
        street_peer = peer_token(auth, clock, "street", OWN)  # a street is not the city's lower tier
        before = rows(c.store)
        for sender in (yubei, street_peer):
            for victim in (street_event, district_event, city_event):
                for origin in (victim.origin_node, "district-500112"):
                    forged = dataclasses.replace(victim, version=victim.version + 3, status="closed",
                                                 origin_node=origin, origin_tier=origin.split("-")[0])
                    reply = post(http, sender, "federate.event", {"event": to_row(forged)})
                    assert not reply["ok"] or reply["result"]["applied"] is False  # (the city's own: an echo)
        # the city's own event, even from its owner's side of the map, is never overwritten
        forged = dataclasses.replace(city_event, version=city_event.version + 3, status="closed")
        reply = post(http, nanan, "federate.event", {"event": to_row(forged)})
        assert not reply["ok"] or reply["result"]["applied"] is False
        assert rows(c.store) == before
        newer = dataclasses.replace(street_event, version=2, status="verified")
        assert post(http, nanan, "federate.event", {"event": to_row(newer)})["result"]["applied"]


def test_rows_from_above_are_taken_only_when_an_upper_tier_owns_them(tmp_path):
    """The pull side of the same rule, at a street server's store: only the upper tiers' own rows."""
    from cqgov_tui.store import init_store, replica
    from cqgov_tui.sync.wire import Change

    clock = SimClock()
    store = init_store(str(tmp_path / f"street-{OWN}.duckdb"), "street", OWN, clock=clock)
    try:
        mine = make_event(now=clock.now(), origin_tier="street", origin_node=f"street-{OWN}", **place(OWN))
        with store.tx():
            store.insert_event(mine)
        def change(seq, entity, key, data, origin="district-500108"):
            return Change(seq=seq, entity=entity, key=key, op="upsert", origin=origin, data=data)

        from_district = make_event(now=clock.now(), origin_tier="district", origin_node="district-500108", **place(OWN))
        sibling = make_event(now=clock.now(), origin_tier="street", origin_node=f"street-{SIBLING}", **place(OWN))
        other = make_event(now=clock.now(), origin_tier="district", origin_node="district-500112", **place(OWN))
        takeover = dataclasses.replace(mine, version=9, status="closed", origin_node="district-500108",
                                       origin_tier="district")
        good = {"id": "d-good", "number": "ZL-1", "origin_tier": "district", "origin_code": "500108", "title": "t",
                "text": "t", "priority": "normal", "targets": [OWN], "require_ack": True, "deadline_at": clock.now() + 60,
                "created_at": clock.now(), "created_by": "x", "version": 1}
        bad = {**good, "id": "d-bad", "origin_code": "500112"}
        with store.tx():
            result = replica.apply_changes(store, [
                change(1, "event", from_district.id, to_row(from_district)),
                change(2, "event", sibling.id, to_row(sibling)),
                change(3, "event", other.id, to_row(other)),
                change(4, "event", mine.id, to_row(takeover)),
                change(5, "directive", "d-good", good), change(6, "directive", "d-bad", bad),
            ])
        assert result.applied == 2 and result.skipped_owned == 4
        assert store.get_event(from_district.id) is not None
        assert store.get_event(sibling.id) is None and store.get_event(other.id) is None
        assert store.get_event(mine.id).status == mine.status and store.get_directive("d-bad") is None
        # a receipt this street answered is never set back by a copy from above (a re-notify is taken)
        base = {"directive_id": "d-good", "jurisdiction_code": OWN, "delivered_at": 1.0, "read_at": 2.0,
                "acknowledged_at": 3.0, "executed_at": None, "actor": "li", "renotified": 0}
        with store.tx():
            replica.apply_changes(store, [change(7, "receipt", f"d-good/{OWN}", {**base, "state": "acknowledged",
                                                                               "version": 3})])
        with store.tx():
            replica.apply_changes(store, [
                change(8, "receipt", f"d-good/{OWN}", {**base, "state": "delivered", "version": 7})])
        assert store.get_receipt("d-good", OWN).state == "acknowledged"
        with store.tx():
            replica.apply_changes(store, [change(9, "receipt", f"d-good/{OWN}", {**base, "state": "acknowledged",
                                                                               "renotified": 1, "version": 8})])
        assert store.get_receipt("d-good", OWN).renotified == 1
    finally:
        store.close()


# ------------------------------------------------------------------ the role × tier × jurisdiction matrix


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    with TierServing(tmp_path_factory.mktemp("city"), "city", "500000", SECRET, token_ttl=1e6) as c, \
            httpx.Client(base_url=c.url, timeout=30) as http:
        events = {}
        for where in (OWN, SIBLING, DISTRICT_LEVEL, OTHER):
            events[where] = c.store.get_event(post(http, c.token, "report", {"category": "noise", "code": where})
                                              ["result"]["event_id"])
        sent = post(http, c.token, "directive.send", {"targets": [OTHER], "text": "渝北区防汛", "deadline": "2h"})
        yield c, http, events, sent["result"]
        c.server.handler.flush_denials(final=True)


# (tier, scope) of each caller, and which of the four places is own / sibling / parent / other to it
CALLERS = {
    "street": (OWN, {OWN: "own", SIBLING: "sibling", DISTRICT_LEVEL: "parent", OTHER: "other"}),
    "district": ("500108", {OWN: "own", SIBLING: "own", DISTRICT_LEVEL: "own", OTHER: "other"}),
    "city": ("500000", {OWN: "own", SIBLING: "own", DISTRICT_LEVEL: "own", OTHER: "own"}),
}


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize("tier", CALLERS)
def test_role_tier_jurisdiction_matrix(city, role, tier):
    c, http, events, directive = city
    scope, relation = CALLERS[tier]
    user = f"m-{tier}-{role}"
    token = c.server.authority.issue(user=user, role=role, tier=tier, scope=scope, now=c.clock.now(), ttl=1e6,
                                     department="cgj" if role == "department" else None)
    h = bearer(token)
    hidden = [e for where, e in events.items() if relation[where] != "own"]

    # read: queue, change log, snapshot, directives — nothing outside the subtree, everything inside
    listed = http.get("/v1/events", headers=h).text
    changes = http.get(f"/v1/changes?cursor={c.store.epoch}:0&limit=5000",
                       headers={**h, "Accept": "application/json"}).text
    snap = http.get("/v1/snapshot", headers={**h, "Accept": "application/json"}).text
    directives = http.get("/v1/directives", headers=h).text
    status = http.get(f"/v1/directives/{directive['directive_id']}", headers=h)
    for e in hidden:
        for text in (listed, changes, snap):
            assert e.id not in text and e.number not in text, (tier, role, e.number)
    for where, e in events.items():
        if relation[where] == "own":
            assert e.id in listed and e.id in changes and e.id in snap
    if relation[OTHER] == "own":
        assert status.status_code == 200 and directive["directive_id"] in directives
    else:
        assert status.status_code == 404 and directive["directive_id"] not in directives
        assert status.json()["detail"] == f"no directive {directive['directive_id']!r} in your jurisdiction"

    # command: comment (every role may), 督办 and a state change on each place, by id and by number
    before = {e.id: row for e in hidden if (row := rows(c.store).get(e.id)) is not None}
    asked = [(where, ref) for where, e in events.items() for ref in (e.id, e.number)]
    replies = post_many(http, token, [cmd for _, ref in asked for cmd in (
        ("act", {"event": ref, "action": "comment", "note": "看"}), ("supervise", {"event": ref, "note": "督办"}),
        ("act", {"event": ref, "action": "verify"}))])
    for n, (where, ref) in enumerate(asked):
        comment, supervise, verify = replies[3 * n:3 * n + 3]
        if relation[where] == "own":
            assert comment["ok"], (tier, role, where, comment)
        else:
            for reply in (comment, supervise, verify):
                # one answer, naming only what was sent: no number, owner or status of the event
                assert reply == {"ok": False, "reason": f"no event {ref!r} in your jurisdiction"}
    # federate: no user token of any role or tier may send rows as a server
    for e in events.values():
        forged = dataclasses.replace(e, version=e.version + 9, status="closed")
        reply = post(http, token, "federate.event", {"event": to_row(forged)})
        assert not reply["ok"] and "server" in reply["reason"] and e.number not in reply["reason"]
    # a report outside the scope names only the caller's own scope
    outside = [w for w in (OTHER, SIBLING) if relation[w] != "own"]
    for where in outside:
        reply = post(http, token, "report", {"category": "noise", "code": where})
        assert not reply["ok"] and where not in reply["reason"]
    # nothing outside the caller's subtree changed
    assert {e.id: rows(c.store)[e.id] for e in hidden} == before


def test_exact_references_only_the_prefix_walk_and_id_oracles_fail(city):
    c, http, events, _ = city
    street = c.server.authority.issue(user="walker", role="admin", tier="street", scope=OWN, now=c.clock.now(),
                                      ttl=1e6)
    theirs, mine = events[OTHER], events[OWN]
    for ref in (theirs.id[:8], theirs.id[:20], theirs.id[:-1], mine.id[:8], mine.id[:-1], "0" * 8, theirs.id):
        assert post(http, street, "act", {"event": ref, "action": "comment", "note": "?"}) == \
            {"ok": False, "reason": f"no event {ref!r} in your jurisdiction"}
    # a taken id: the same answer whoever holds it (never "already exists" for another street's event)
    answers = {post(http, street, "report", {"category": "noise", "code": OWN, "event_id": e.id})["reason"]
               .replace(e.id, "ID") for e in (theirs, mine)}
    assert len(answers) == 1 and "already exists" not in answers.pop()


# ------------------------------------------------------------------ departments and claims (item 2)


def test_a_department_acts_only_on_work_assigned_to_it(district):
    d, http = district
    reported = post(http, d.token, "report", {"category": "gas_leak", "code": OWN})
    event = d.store.get_event(reported["result"]["event_id"])
    for action in ("verify", "dispatch"):
        if event.status in ("reported", "verified"):
            post(http, d.token, "act", {"event": event.id, "action": action, "departments": ["rqgs"]})
            event = d.store.get_event(event.id)
    work = {*event.departments, event.assignee}
    assert event.status == "dispatched" and "mzj" not in work  # 民政 has nothing to do with a gas leak
    theirs = event.assignee or event.departments[0]

    def dept(code):
        return d.server.authority.issue(user=f"dept-{code}", role="department", tier="street", scope=OWN,
                                        now=d.clock.now(), ttl=600, department=code)
    refused = post(http, dept("mzj"), "act", {"event": event.id, "action": "accept"})
    assert not refused["ok"] and "not assigned to department mzj" in refused["reason"]
    assert d.store.get_event(event.id).status == "dispatched"
    assert post(http, dept(theirs), "act", {"event": event.id, "action": "accept"})["ok"]


def test_a_token_tier_must_match_its_scope_at_create_and_at_the_server(district, tmp_path):
    from cqgov_tui.cli import main

    d, http = district
    secret = tmp_path / "s.secret"
    secret.write_bytes(SECRET)
    for args, expected in ((["--tier", "city", "--scope", "500108001", "--role", "admin"], "tier city does not match"),
                           (["--tier", "street", "--scope", "500108", "--role", "admin"], "tier street does not match"),
                           (["--tier", "street", "--scope", OWN, "--role", "department"], "must name the department")):
        res = CliRunner().invoke(main, ["token", "create", "--secret-file", str(secret), "--user", "u", *args])
        assert res.exit_code == 2 and expected in res.output and len(res.output.strip().splitlines()) == 1, res.output
    # a token signed with the secret but with disagreeing claims (as another tool might make) is refused
    import base64

    claims = {"u": "x", "n": "x", "r": "admin", "t": "city", "s": "500108", "iat": 0, "exp": d.clock.now() + 60}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{payload}.{d.server.authority._sign(payload)}"
    r = http.get("/v1/events", headers=bearer(forged))
    assert r.status_code == 401 and "tier city does not match scope 500108" in r.json()["detail"]


# ------------------------------------------------------------------ denials (item 4)


def test_denials_are_audited_once_per_caller_and_minute_and_past_the_limit_answered_429(tmp_path):
    clock = SimClock()
    with TierServing(tmp_path, "district", "500108", SECRET, clock=clock, token_ttl=1e6) as d, \
            httpx.Client(base_url=d.url, timeout=30) as http:
        stranger = d.server.authority.issue(user="prober", role="admin", tier="street", scope=OWN, now=clock.now(),
                                            ttl=1e6)
        theirs = post(http, d.token, "report", {"category": "noise", "code": SIBLING})["result"]["event_id"]
        d.server.handler.flush_denials(final=True)
        head, audits = d.store.head(), d.store.count_rows("audit_log")
        batch = [{"id": f"deny-{i:06d}", "type": "act", "body": {"event": theirs, "action": "comment", "note": "x"}}
                 for i in range(500)]
        r = http.post("/v1/commands", headers=bearer(stranger), json={"commands": batch})
        assert r.status_code == 200 and len(r.json()["rejected"]) == 500
        # past the limit (120 a minute): answered 429 with when to come back, on every endpoint
        for path in ("/v1/events", "/v1/directives"):
            late = http.get(path, headers=bearer(stranger))
            assert late.status_code == 429 and 1 <= int(late.headers["Retry-After"]) <= 60
        assert http.get("/v1/events", headers=bearer(d.token)).status_code == 200  # others are heard
        # nothing audited inside the minute; once it is over, one entry with the count
        d.server.handler.flush_denials()
        assert d.store.count_rows("audit_log") == audits
        clock.advance(61)
        d.server.handler.flush_denials()
        denied = [a for a in d.store.audit_entries() if a.action == "denied" and a.actor == "prober"]
        assert len(denied) == 1 and denied[0].note.startswith("500 refused") and "act ×500" in denied[0].note
        assert d.store.count_rows("audit_log") == audits + 1 and d.store.head() == head + 1
        assert http.get("/v1/events", headers=bearer(stranger)).status_code == 200  # a new minute
        assert d.store.verify_audit().ok


def test_a_peer_token_carries_federation_only(district):
    d, http = district
    peer = peer_token(d.server.authority, d.clock, "street", OWN)
    before = rows(d.store)
    for ctype, body in (("report", {"category": "noise", "code": OWN}),
                        ("directive.send", {"targets": [OWN], "text": "x", "deadline": "1h"})):
        reply = post(http, peer, ctype, body)
        assert reply == {"ok": False, "reason": f"node:street-{OWN} is a peer token: it may send federate.* commands only"}
    assert rows(d.store) == before


# ------------------------------------------------------------------ the rules as properties (hypothesis)

from hypothesis import given, settings, strategies as st  # noqa: E402

from cqgov_tui import ownership  # noqa: E402
from cqgov_tui.server.auth import AuthError  # noqa: E402

NODES = ["city-500000", "district-500108", "district-500112", f"street-{OWN}", f"street-{SIBLING}", f"street-{OTHER}",
         "street-500108", "district-5001", "city-500108", "x-500108001", "", "street-500108001 "]
PLACES = [OWN, OWN + "001", SIBLING, SIBLING + "002", "500108", OTHER, "500112", "500000", "", "5001080", "abc"]


@settings(max_examples=400, deadline=None)
@given(receiver=st.sampled_from(NODES), sender=st.sampled_from(NODES), owner=st.sampled_from(NODES),
       place=st.sampled_from(PLACES), stored=st.one_of(st.none(), st.sampled_from(NODES)), above=st.booleans())
def test_a_copy_is_taken_only_from_the_owners_side_inside_its_jurisdiction(receiver, sender, owner, place, stored,
                                                                           above):
    """Whatever is claimed: an accepted copy is never the receiver's own row, never over another owner's row,
    lies inside its owner's jurisdiction, and comes from below only inside the sender's subtree, from above
    only from a strict ancestor (and inside the receiver's subtree)."""
    if ownership.copy_refusal(receiver, sender, owner, place, stored, from_above=above) is not None:
        return
    me, who = ownership.parse_node(receiver), ownership.parse_node(owner)
    assert me is not None and who is not None and who != me and stored in (None, owner)
    assert ownership.scope_tier(place) is not None and (who.code == "500000" or place.startswith(who.code))
    if above:
        assert who.above(me) and (me.code == "500000" or place.startswith(me.code))
    else:
        peer = ownership.parse_node(sender)
        assert peer is not None and me.above(peer) and peer.covers(who)


@settings(max_examples=300, deadline=None)
@given(token=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                       st.builds(lambda claims: _signed(claims), st.dictionaries(
                           st.sampled_from(["u", "n", "r", "t", "s", "iat", "exp", "p", "d", "nd", "zz"]),
                           st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
                                     st.sampled_from(["admin", "department", "city", "street", "500108001", "500000",
                                                      "street-500108001", "cgj"]))))))
def test_any_token_is_either_a_principal_whose_claims_agree_or_a_401(token):
    authority = TokenAuthority(SECRET)
    try:
        p = authority.verify(token, 0.0)
    except AuthError:
        return
    from cqgov_tui.server.auth import claims_problem

    assert claims_problem(p.role, p.tier, p.scope_code, peer=p.peer, department=p.department, node=p.node) is None


def _signed(claims: dict) -> str:
    import base64

    payload = base64.urlsafe_b64encode(json.dumps(claims, default=str).encode()).rstrip(b"=").decode()
    return f"{payload}.{TokenAuthority(SECRET)._sign(payload)}"
