"""Property tests of the event state machine: random actions by random roles at random tiers.

Whatever happens, every event is in a state the RULES table can reach, every
accepted action wrote exactly one audit entry for its event with the right
from/to, a refused one changed nothing at all, and the audit chain verifies.
"""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Status, Tier, User
from cqgov_tui.engine import Engine, lifecycle
from cqgov_tui.errors import CqgovError
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.store import init_store

CAT = load_catalogue()
REG = get_registry()
ACTIONS = sorted(lifecycle.RULES) + ["on_scene", "sign", "bogus"]
NOTES = ["", "  ", "现场核实"]
# No smart plan matches these categories at the test's hour, so every state change comes from the test.
CATEGORIES = ["dispute", "garbage", "manhole_cover"]
STREETS = ["500108001", "500108002"]

# Reachability: states the RULES table can reach from "reported" (the roll-up uses the same rules).
_REACHABLE = {Status.REPORTED}
_frontier = [Status.REPORTED]
while _frontier:
    s = _frontier.pop()
    for r in lifecycle.RULES.values():
        if s in r.sources and r.target is not None and r.target not in _REACHABLE:
            _REACHABLE.add(r.target)
            _frontier.append(r.target)


_FORWARD = {"verify", "assess", "dispatch", "accept", "arrive", "dispose", "feedback", "close", "review"}


def _scope(tier: Tier, event, outside: bool) -> str:
    if tier is Tier.CITY:
        return "500000"
    if tier is Tier.DISTRICT:
        return "500105" if outside else "500108"
    street = event.street_code or "500108001"
    return ("500108002" if street == "500108001" else "500108001") if outside else street


class EventLifecycle(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**16), n=st.integers(1, 2))
    def setup(self, seed, n):
        self.clock = SimClock(1_794_966_800.0)  # 10:00 local
        self.store = init_store(":memory:", "district", "500108", clock=self.clock)
        self.engine = Engine(self.store, CAT, REG, self.clock)
        rng = random.Random(seed)
        self.ids = []
        for i in range(n):
            lon, lat = REG.random_point(STREETS[i % 2], rng)
            self.ids.append(self.engine.report(category=CATEGORIES[i % 3], title=f"e{i}", lon=lon, lat=lat).id)
        # one 多跨 master with two sub-tasks, so roll-up runs under the same rules
        self.master = self.ids[0]
        subs = self.engine.open_subtasks(self.master, ["500108001", "500108002"], self._user(Role.DUTY_OFFICER, Tier.DISTRICT, "500108"))
        self.ids += [s.id for s in subs]
        self.accepted = 0
        self.refused = 0

    def teardown(self):
        store = getattr(self, "store", None)
        if store is not None:
            store.close()

    @staticmethod
    def _user(role, tier, scope) -> User:
        return User(f"{role.value}@{tier.value}", "t", role, tier, scope)

    @rule(i=st.integers(0, 5), action=st.sampled_from(ACTIONS), role=st.sampled_from(list(Role)),
          tier=st.sampled_from(list(Tier)), note=st.sampled_from(NOTES), into=st.integers(0, 5),
          outside=st.booleans(), departments=st.sampled_from([None, ["cgj"], ["zzz"]]))
    def act(self, i, action, role, tier, note, into, outside, departments):
        self._try(i, action, role, tier, note, into, outside, departments)

    @rule(data=st.data(), i=st.integers(0, 5), role=st.sampled_from(list(Role)), tier=st.sampled_from(list(Tier)),
          into=st.integers(0, 5))
    def act_allowed(self, data, i, role, tier, into):
        """Mostly-legal moves, so runs get deep into the loop rather than bouncing off refusals."""
        event = self.store.get_event(self.ids[i % len(self.ids)])
        actor = self._user(role, tier, _scope(tier, event, False))
        allowed = self.engine.allowed_actions(event, actor)
        if allowed:
            # forward steps along the loop weigh more than side exits, so runs reach feedback/closed/reviewed
            forward = [a for a in allowed if a in _FORWARD]
            action = data.draw(st.sampled_from(forward * 6 + allowed))
            self._try(i, action, role, tier, "处置说明", into, False, None)

    def _try(self, i, action, role, tier, note, into, outside, departments):
        eid = self.ids[i % len(self.ids)]
        before = self.store.get_event(eid)
        head, n_audit = self.store.head(), len(self.store.audit_entries())
        snapshot = {e.id: e for e in self.store.all_events()}
        actor = self._user(role, tier, _scope(tier, before, outside))
        target_id = self.ids[into % len(self.ids)]
        try:
            after = self.engine.act(eid, action, actor, note=note, target=target_id, departments=departments)
        except CqgovError:
            self.refused += 1
            assert self.store.head() == head
            assert len(self.store.audit_entries()) == n_audit
            assert {e.id: e for e in self.store.all_events()} == snapshot
            return
        self.accepted += 1
        r = lifecycle.rule_for(action)
        assert Status(before.status) in r.sources and role in r.roles and tier in r.tiers
        if r.needs_note:
            assert note.strip()
        new = self.store.audit_entries()[n_audit:]
        mine = [a for a in new if a.event_id == eid]
        assert len(mine) == 1, [(a.action, a.note) for a in new]
        entry = mine[0]
        assert entry.action == r.action and entry.from_status == before.status
        assert entry.to_status == (r.target.value if r.target else before.status) == after.status
        assert (entry.actor, entry.role, entry.tier, entry.note) == (actor.user, role.value, tier.value, note)
        # anything else written in the same action is the master's roll-up
        others = [a for a in new if a.event_id != eid]
        assert all(a.event_id == before.parent_id and a.actor == "system" for a in others)
        if r.action == "merge":
            assert after.merged_into == target_id and Status(snapshot[target_id].status).is_open

    @rule(minutes=st.sampled_from([0.5, 1, 3, 10, 60, 1440]))
    def sweep(self, minutes):
        n_audit = len(self.store.audit_entries())
        statuses = {e.id: e.status for e in self.store.all_events()}
        self.clock.advance(minutes * 60)
        result = self.engine.sweep()
        new = self.store.audit_entries()[n_audit:]
        assert sorted(a.event_id for a in new) == sorted(result.escalated)
        assert all(a.action == "supervise" and a.from_status == a.to_status for a in new)
        assert {e.id: e.status for e in self.store.all_events()} == statuses

    @precondition(lambda self: hasattr(self, "store"))
    @invariant()
    def every_event_is_legal_and_its_trail_replays(self):
        by_event = {}
        for a in self.store.audit_entries():
            by_event.setdefault(a.event_id, []).append(a)
        for e in self.store.all_events():
            assert Status(e.status) in _REACHABLE
            assert (e.closed_at is not None) == (not Status(e.status).is_open)
            assert (e.due_at is None) or Status(e.status).is_open
            state = None
            for a in by_event[e.id]:
                assert a.from_status == state or (state is None and a.action == "report"), (e.number, a)
                if a.action in lifecycle.RULES:
                    r = lifecycle.RULES[a.action]
                    assert Status(a.from_status) in r.sources
                    assert a.to_status == (r.target.value if r.target else a.from_status)
                else:
                    assert a.action == "report" or a.from_status == a.to_status
                state = a.to_status
            assert state == e.status
            if e.status == "merged":
                assert e.merged_into and e.merged_into != e.id

    @precondition(lambda self: hasattr(self, "store"))
    @invariant()
    def audit_chain_verifies(self):
        v = self.store.verify_audit()
        assert v.ok, v.reason


EventLifecycle.TestCase.settings = settings(
    max_examples=20, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEventLifecycle = EventLifecycle.TestCase


def test_rules_reach_every_status():
    # every status in the domain is reachable by the rules (none is dead data)
    assert _REACHABLE == set(Status)
