"""Federation: street → district → city for events, city → streets for directives, receipts back up.

The tiers run in-process: each tier server is the real ASGI app over its own
store, and each lower tier's ``SyncClient`` talks to the app above through a
Starlette ``TestClient`` (an ``httpx.Client``) wrapped to cut the link at
will — a partition refuses requests, a lost reply drops the answer after
the server committed. Background threads are off; the test drives pulls,
pushes and the scheduler's ticks itself, so every run is repeatable per seed.
"""

from __future__ import annotations

import random

import httpx
import pytest
from starlette.testclient import TestClient

from cqgov_tui.clock import SimClock
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.server.federation import city_must_see
from cqgov_tui.store import init_store, replica
from cqgov_tui.sync import changelog
from cqgov_tui.sync.client import SyncClient

SECRET = b"federation-test-secret-0123456789abcdef"
LAYOUT = {"500108": ["500108001", "500108002"], "500112": ["500112001"]}


class Link(TestClient):
    """An httpx client to an in-process app whose link can be partitioned or lose replies."""

    def __init__(self, app, rng: random.Random | None = None):
        super().__init__(app, base_url="http://upper")
        self.up = True
        self.rng = rng
        self.lose_reply = 0.0

    def send(self, request, **kwargs):
        if not self.up:
            raise httpx.ConnectError("partitioned", request=request)
        response = super().send(request, **kwargs)
        if self.rng is not None and self.lose_reply and self.rng.random() < self.lose_reply:
            raise httpx.ReadError("reply lost", request=request)
        return response


class Tiers:
    def __init__(self, tmp_path, rng: random.Random | None = None):
        self.clock = SimClock()
        self.authority = TokenAuthority(SECRET)
        self.servers: dict[str, TierServer] = {}
        self.links: dict[str, Link] = {}
        self.clients: dict[str, SyncClient] = {}
        self.apps = {}
        self._add(tmp_path, "city", "500000", None, rng)
        for d, streets in LAYOUT.items():
            self._add(tmp_path, "district", d, "500000", rng)
            for s in streets:
                self._add(tmp_path, "street", s, d, rng)

    def _add(self, tmp_path, tier, code, upper, rng):
        store = init_store(str(tmp_path / f"{tier}-{code}.duckdb"), tier, code, clock=self.clock)

        def factory(st, url, token, clock, upper=upper):
            link = Link(self.apps[upper], rng)
            self.links[code] = link
            client = SyncClient(st, url, token, clock, http=link, wait=0.0, backoff_base=0.0, backoff_cap=0.0)
            self.clients[code] = client
            return client

        token = None
        if upper:
            token = self.authority.issue(user=f"node:{tier}-{code}", role="admin", tier=tier, scope=code,
                                         now=self.clock.now(), ttl=1e7, peer=True)
        server = TierServer(store, self.authority, clock=self.clock, upstream="http://upper" if upper else None,
                            upstream_token=token, sync_client_factory=factory if upper else None)
        self.servers[code] = server
        self.apps[code] = create_app(server, start_background=False)
        assert server.prime()  # what the lifespan does before the server accepts its lower tier

    def token(self, code: str, role: str = "admin", department: str | None = None) -> str:
        tier = self.servers[code].store.tier.value
        return self.authority.issue(user=f"u-{code}", role=role, tier=tier, scope=code, now=self.clock.now(), ttl=1e7,
                                    department=department)

    def command(self, code: str, ctype: str, body: dict, role: str = "admin", department: str | None = None) -> dict:
        http = TestClient(self.apps[code])  # not entered: no lifespan, so background threads stay off
        r = http.post("/v1/commands", json={"commands": [{"id": f"cmd-{random.getrandbits(64):x}", "type": ctype,
                                                          "body": body}]},
                      headers={"Authorization": f"Bearer {self.token(code, role, department)}"})
        assert r.status_code == 200, r.text
        return r.json()

    def step(self, code: str, rng: random.Random | None = None) -> None:
        """One round for one lower server: pump, push, pull (each may fail on a cut link)."""
        server = self.servers[code]
        server.scheduler.tick(force_sweep=rng is not None and rng.random() < 0.2)
        client = self.clients.get(code)
        if client is None:
            return
        for op in (client.push_once, client.pull_once):
            try:
                op()
            except Exception as exc:  # a cut link: the outbox and cursor keep everything for later
                assert type(exc).__name__ in ("SyncError", "ConnectError", "ReadError"), repr(exc)
        server.scheduler.tick()

    def settle(self, rounds: int = 12) -> None:
        """Heal every link and run rounds until a whole round changes no store (at most ``rounds``)."""
        for link in self.links.values():
            link.up = True
            link.lose_reply = 0.0
        order = [c for c in self.servers if len(c) == 9] + [c for c in self.servers if len(c) == 6 and c != "500000"]
        heads = None
        for _ in range(rounds):
            for code in order + order[::-1]:
                self.step(code)
            self.servers["500000"].scheduler.tick()
            now = {c: (s.store.head(), s.pump.backlog(), self._pending(c)) for c, s in self.servers.items()}
            if now == heads:
                return
            heads = now

    def _pending(self, code: str) -> int:
        client = self.clients.get(code)
        return len(client.outbox.pending()) if client is not None else 0

    def close(self):
        for s in self.servers.values():
            s.store.close()


@pytest.fixture
def tiers(tmp_path):
    t = Tiers(tmp_path)
    yield t
    t.close()


def _report(t: Tiers, street: str, colour: str, rng=None) -> str:
    reply = t.command(street, "report", {"category": "manhole_cover", "code": street, "colour": colour,
                                         "title": "井盖缺失"})
    assert reply["accepted"], reply
    return reply["accepted"][0]["result"]["event_id"]


def test_red_street_event_reaches_the_city_once_and_yellow_stays_in_the_district(tiers):
    red = _report(tiers, "500108001", "red")
    yellow = _report(tiers, "500108002", "yellow")
    tiers.settle()
    city, district = tiers.servers["500000"].store, tiers.servers["500108"].store
    assert district.get_event(red) is not None and district.get_event(yellow) is not None
    copy = city.get_event(red)
    assert copy is not None and copy.origin_node == "street-500108001" and copy.origin_tier == "street"
    assert city.get_event(yellow) is None
    assert tiers.servers["500112"].store.get_event(red) is None  # the other district never sees it
    # a later transition at the street follows the event up, as the same row
    tiers.command("500108001", "act", {"event": red, "action": "verify"})
    tiers.settle()
    assert city.get_event(red).status == tiers.servers["500108001"].store.get_event(red).status
    assert city.duplicate_event_ids() == 0
    # the copy never echoes back into the street as a foreign row
    assert tiers.servers["500108001"].store.get_event(red).origin_node == "street-500108001"


def test_upper_tier_may_not_change_a_federated_event_but_may_supervise_it(tiers):
    red = _report(tiers, "500108001", "red")
    tiers.settle()
    refused = tiers.command("500000", "act", {"event": red, "action": "verify"})
    assert refused["rejected"] and "owned by street-500108001" in refused["rejected"][0]["reason"]
    sup = tiers.command("500000", "supervise", {"event": red, "note": "加快处置"})
    assert sup["accepted"]
    tiers.settle()
    street = tiers.servers["500108001"].store
    got = [d for d in street.directives() if d.title.startswith("督办")]
    assert len(got) == 1 and got[0].targets == ["500108001"]
    receipts = street.receipts(got[0].id)
    assert [r.state for r in receipts] == ["delivered"]


def test_directive_from_the_city_reaches_every_street_and_receipts_come_back(tiers):
    streets = [s for ss in LAYOUT.values() for s in ss]
    sent = tiers.command("500000", "directive.send", {"targets": streets, "text": "防汛值守", "deadline": "2h"},
                         role="duty_officer")
    d_id = sent["accepted"][0]["result"]["directive_id"]
    tiers.settle()
    for s in streets:
        r = tiers.servers[s].store.receipts(d_id)
        assert [x.state for x in r] == ["delivered"], s
    for s in streets:
        for state in ("read", "acknowledged"):
            reply = tiers.command(s, "receipt", {"directive": d_id, "state": state}, role="duty_officer")
            assert reply["accepted"], reply
    tiers.settle()
    http = TestClient(tiers.apps["500000"])
    status = http.get(f"/v1/directives/{d_id}", headers={"Authorization": f"Bearer {tiers.token('500000')}"}).json()
    assert status["expected"] == len(streets)
    assert status["counts"] == {"delivered": 3, "read": 3, "acknowledged": 3, "executed": 0}
    assert status["complete"] and status["missing"]["executed"] == streets
    city_receipts = {r.jurisdiction_code: r for r in tiers.servers["500000"].store.receipts(d_id)}
    assert all(city_receipts[s].delivered_at <= city_receipts[s].read_at <= city_receipts[s].acknowledged_at
               for s in streets)


def test_a_directive_to_departments_and_roles_reaches_their_streets_and_only_they_answer(tiers):
    # 城管 and the grid workers of 500108's streets: typed the way a dispatcher types them.
    sent = tiers.command("500000", "directive.send", {"targets": ["500108", "城管", "网格员"], "text": "渣土车夜查",
                                                      "deadline": "2h"}, role="duty_officer")
    result = sent["accepted"][0]["result"]
    assert result["targets"] == ["500108", "dept:cgj", "role:grid_worker"]
    assert result["recipients"] == len(get_registry().children("500108"))  # every street of the district
    d_id = result["directive_id"]
    tiers.settle()
    assert [r.state for r in tiers.servers["500108001"].store.receipts(d_id)] == ["delivered"]
    assert tiers.servers["500112001"].store.get_directive(d_id) is None  # the audience does not widen the reach
    assert tiers.servers["500112"].store.get_directive(d_id) is None

    refused = tiers.command("500108001", "receipt", {"directive": d_id, "state": "acknowledged"}, role="dispatcher")
    assert not refused["accepted"] and "addressed to 城管 · 网格员" in refused["rejected"][0]["reason"]
    other_dept = tiers.command("500108001", "receipt", {"directive": d_id, "state": "read"}, role="department",
                               department="yjj")
    assert not other_dept["accepted"]
    assert [r.state for r in tiers.servers["500108001"].store.receipts(d_id)] == ["delivered"]  # refusals changed nothing

    assert tiers.command("500108001", "receipt", {"directive": d_id, "state": "acknowledged"}, role="grid_worker")["accepted"]
    assert tiers.command("500108002", "receipt", {"directive": d_id, "state": "acknowledged"}, role="department",
                         department="cgj")["accepted"]
    tiers.settle()
    http = TestClient(tiers.apps["500000"])
    status = http.get(f"/v1/directives/{d_id}", headers={"Authorization": f"Bearer {tiers.token('500000')}"}).json()
    assert status["audience"] == {"departments": ["cgj"], "roles": ["grid_worker"]}
    assert status["counts"]["acknowledged"] == 2


@pytest.mark.parametrize("targets, says", [
    (["城管"], None),
    (["500108", "交警大队"], "unknown target '交警大队'"),
    (["500108", "role:emperor"], "unknown role"),
    (["500108", "dept:nope"], "unknown department 'nope'"),
])
def test_bad_directive_audiences_are_refused_with_a_reason(tiers, targets, says):
    reply = tiers.command("500108", "directive.send", {"targets": targets, "text": "x", "deadline": "1h"},
                          role="duty_officer")
    if targets == ["城管"]:  # a district addressing its own departments: every street of the district
        assert reply["accepted"] and reply["accepted"][0]["result"]["targets"] == ["500108", "dept:cgj"]
        return
    assert not reply["accepted"] and says in reply["rejected"][0]["reason"], reply


ROUNDS = 10  # partitioned rounds per seed; each reports at ~40 % of the streets and cuts ~35 % of the links


@pytest.mark.parametrize("seed", range(20))
def test_partitions_lose_and_duplicate_nothing(tmp_path, seed):
    """SYNC.md test 9: street → district → city under random partitions and lost replies."""
    rng = random.Random(seed)
    t = Tiers(tmp_path, rng)
    try:
        streets = [s for ss in LAYOUT.values() for s in ss]
        lower = streets + list(LAYOUT)
        directive_ids = []
        for round_ in range(ROUNDS):
            for code, link in t.links.items():
                link.up = rng.random() > 0.35
                link.lose_reply = 0.2
            for s in streets:
                if rng.random() < 0.4:
                    _report(t, s, rng.choice(["red", "orange", "yellow", "blue"]))
            if round_ in (2, ROUNDS - 4):
                sent = t.command("500000", "directive.send", {"targets": rng.sample(streets, 2) + ["500112"],
                                                              "text": f"指令 {round_}", "deadline": "1h"},
                                 role="duty_officer")
                directive_ids.append(sent["accepted"][0]["result"]["directive_id"])
            t.clock.advance(rng.uniform(5, 90))
            for code in rng.sample(lower, len(lower)):
                t.step(code, rng)
        t.settle(rounds=16)
        city = t.servers["500000"].store
        expected = set()
        for d in LAYOUT:
            for e in t.servers[d].store.all_events():
                if city_must_see(t.servers[d].store, e):
                    expected.add((e.id, e.version))
        at_city = {(e.id, e.version) for e in city.all_events()}
        lost = expected - at_city
        detail = []
        for event_id, version in sorted(lost):
            d = next(d for d in LAYOUT if t.servers[d].store.get_event(event_id))
            ds = t.servers[d].store
            detail.append((event_id, version, getattr(city.get_event(event_id), "version", None),
                           ds.meta("federation:sent_event:" + event_id),
                           [(r["seq"], r["origin"], r["data"].get("version")) for r in ds.changes_after(0, 100_000)
                            if r["key"] == event_id]))
        assert not lost, f"lost at the city: {detail}"
        assert city.duplicate_event_ids() == 0
        applied = [a for a in city.audit_entries() if a.action == "federate"]
        versions = [(a.event_id, a.note.split(" v")[1].split(" ")[0]) for a in applied]
        assert len(versions) == len(set(versions)), "an event version was applied twice at the city"
        for d_id in directive_ids:
            d = city.get_directive(d_id)
            in_scope = [s for s in streets if any(s.startswith(x) for x in d.targets)]
            for s in streets:
                store = t.servers[s].store
                delivered = [a for a in store.audit_entries(d_id) if a.action == "directive.delivered"]
                assert len(delivered) == (1 if s in in_scope else 0), (s, d.targets)
            at_city_receipts = {r.jurisdiction_code for r in city.receipts(d_id) if r.state != "pending"}
            assert set(in_scope) <= at_city_receipts
    finally:
        t.close()


class _Undo(Exception):
    pass


def test_district_resync_keeps_what_its_streets_sent_and_drops_only_the_citys_rows(tiers):
    red = _report(tiers, "500108001", "red")
    yellow = _report(tiers, "500108002", "yellow")
    from_city = tiers.command("500000", "report", {"category": "manhole_cover", "code": "500108001",
                                                   "title": "市级巡查"})["accepted"][0]["result"]["event_id"]
    streets = LAYOUT["500108"]
    sent = tiers.command("500000", "directive.send", {"targets": streets, "text": "防汛值守", "deadline": "2h"},
                         role="duty_officer")
    d_id = sent["accepted"][0]["result"]["directive_id"]
    tiers.settle()
    for s in streets:
        assert tiers.command(s, "receipt", {"directive": d_id, "state": "acknowledged"}, role="duty_officer")["accepted"]
    tiers.settle()
    district = tiers.servers["500108"].store
    assert {red, yellow, from_city} <= set(district.event_ids())
    events_before = {(e.id, e.version) for e in district.all_events()}
    receipts_before = {(r.jurisdiction_code, r.state) for r in district.receipts(d_id)}
    assert receipts_before == {(s, "acknowledged") for s in streets}

    # What a snapshot clears, seen inside a transaction that is then undone: the city's rows only.
    with pytest.raises(_Undo):
        with district.tx():
            replica.clear_replicated(district)
            assert set(district.event_ids()) == {red, yellow}
            assert district.get_directive(d_id) is None
            assert {r.jurisdiction_code for r in district.receipts(d_id)} == set(streets)
            raise _Undo

    # The city is restored from a backup: the district's next pull is a 410 and it resyncs from a snapshot.
    changelog.new_epoch(tiers.servers["500000"].store)
    tiers.settle()
    assert tiers.clients["500108"].resyncs >= 1
    assert {(e.id, e.version) for e in district.all_events()} == events_before
    assert district.get_directive(d_id) is not None
    assert {(r.jurisdiction_code, r.state) for r in district.receipts(d_id)} == receipts_before
    # and the loop goes on afterwards: a later street transition still reaches the city
    tiers.command("500108001", "act", {"event": red, "action": "verify"})
    tiers.settle()
    assert tiers.servers["500000"].store.get_event(red).status == "verified"


def test_sla_sweep_at_a_district_escalates_its_own_events_not_the_streets_copies(tiers):
    from_street = _report(tiers, "500108001", "yellow")
    tiers.settle(rounds=2)
    own = tiers.command("500108", "report", {"category": "manhole_cover", "code": "500108002",
                                             "title": "区级巡查"})["accepted"][0]["result"]["event_id"]
    district = tiers.servers["500108"]
    copy_before = district.store.get_event(from_street)
    assert copy_before is not None and copy_before.origin_node == "street-500108001"
    tiers.clock.advance(6 * 3600)
    swept = district.engine.sweep(owned_only=True)
    assert swept.overdue == [own] and swept.escalated == [own]
    district.scheduler.tick(force_sweep=True)  # the server's own schedule uses the same filter
    copy_after = district.store.get_event(from_street)
    assert (copy_after.version, copy_after.escalation_level) == (copy_before.version, 0)
    assert district.store.get_event(own).escalation_level >= 1
    # the owner escalates its event, and the raised row travels up to the district
    tiers.servers["500108001"].scheduler.tick(force_sweep=True)
    tiers.settle(rounds=2)
    assert district.store.get_event(from_street).escalation_level == 1
