"""The closed-loop engine: report, act, sweep — every change audited in the same transaction.

Runs without a UI or a server on an injectable clock. Plans, dedup,
inhibition and 多跨 sub-tasks are consulted on report; the SLA sweep raises
colour and supervision on overdue events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..catalogue import Catalogue
from ..clock import Clock
from ..domain.colour import Colour
from ..domain.entities import Event, Role, Source, Status, Tier, User
from ..domain.schema import evolve
from ..errors import BadInput, IllegalTransition, PermissionDenied
from ..ids import uuid7
from ..scope import CITY_CODE, event_in_scope
from ..store import Store
from . import access, callbacks, dedup, drafting, grouping, inhibit, lifecycle, multi, risk_grades, sla
from .plans import PlanMatcher

if TYPE_CHECKING:
    from ..geo.registry import Registry


def system_user(store: Store) -> User:
    return User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)


@dataclass
class SweepResult:
    checked: int = 0
    overdue: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)  # supervision raised this sweep
    held: list[str] = field(default_factory=list)  # overdue but inhibited by an open district event
    risk_changed: list[str] = field(default_factory=list)  # risk points whose grade changed (audited)


# Member or stored value → stored value (a str enum hashes and compares as its value): an entry per audit row,
# where ``Role(x).value`` costs an enum call.
_ROLE_VALUE = {r: r.value for r in Role}
_TIER_VALUE = {t: t.value for t in Tier}


class Engine:
    def __init__(self, store: Store, catalogue: Catalogue | None = None, registry: Registry | None = None,
                 clock: Clock | None = None) -> None:
        if catalogue is None:
            from ..catalogue.loader import load_catalogue

            catalogue = load_catalogue()
        if registry is None:
            from ..geo.registry import get_registry

            registry = get_registry()
        self.store = store
        self.catalogue = catalogue
        self.registry = registry
        self.clock = clock or store.clock
        self.plans = PlanMatcher(catalogue, registry)
        self.system = system_user(store)
        # Points placed ahead in one vectorised call (``preplace``): (lon, lat) → (district, street, grid).
        self._placed: dict[tuple[float, float], tuple[str, str | None, str | None] | None] = {}

    # ------------------------------------------------------------ report

    def report(
        self,
        *,
        category: str,
        title: str,
        text: str = "",
        lon: float | None = None,
        lat: float | None = None,
        code: str | None = None,
        colour: str | None = None,
        source: str = Source.CITIZEN.value,
        reporter: str = "",
        address: str = "",
        actor: User | None = None,
        event_id: str | None = None,
        parent_id: str | None = None,
        apply_plans: bool = True,
    ) -> Event:
        """Record a new event (感知发现) and let plans, dedup and inhibition act on it."""
        actor = actor or self.system
        cat = self.catalogue.category(category)
        where = drafting.place(self.registry, lon, lat, code, self._placed)
        if not event_in_scope(actor.scope_code, where.district, where.street, where.grid):
            raise PermissionDenied(f"{actor.user} may not report outside {actor.scope_code}", code="not_in_jurisdiction")
        try:
            colour_value = Colour.parse(colour).value if colour else cat.default_colour.value
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        try:
            source_value = Source(source).value
        except ValueError:
            raise BadInput(f"unknown source {source!r} (expected one of {', '.join(s.value for s in Source)})") from None
        title = (title or "").strip() or cat.name
        now = self.clock.now()
        with self.store.tx():
            if event_id and self.store.get_event(event_id) is not None:
                raise access.id_taken("event", event_id)
            event = drafting.new_event(
                event_id=event_id or uuid7(int(now * 1000)), number=self.store.next_number(now), category=cat,
                catalogue=self.catalogue, where=where, colour=colour_value, title=title, text=text or "",
                source=source_value, reporter=reporter or actor.user,
                address=address or drafting.address(self.registry, where), now=now, parent_id=parent_id,
                origin_tier=self.store.tier.value, origin_node=self.store.node)
            inhibitor = inhibit.inhibitor_for(self.store, self.catalogue, event)
            if inhibitor is not None:
                event = replace(event, inhibited_by=inhibitor.id)
            candidate, confidence = (None, 0.0) if parent_id else dedup.best_candidate(self.store, event, self.registry)
            # Staged, not yet written: the plans and transitions below fold into this one create row
            # (version 1, final state), written with its audit entries when the transaction commits.
            self.store.insert_event(event, known_new=True)
            self._audit(event, "report", None, Status.REPORTED.value, actor,
                        note=f"{cat.name}; {source_value}" + (f"; inhibited by {inhibitor.number}" if inhibitor else ""))
            if candidate is not None:
                if confidence >= dedup.AUTO_MERGE:
                    return self._transition(event, "merge", self.system,
                                            note=f"auto-merge ({confidence:.2f}) into {candidate.number}",
                                            target=candidate.id)
                event = self._save(event, duplicate_of=candidate.id)
                self._audit(event, "flag_duplicate", event.status, event.status, self.system,
                            note=f"merge candidate of {candidate.number} ({confidence:.2f})")
            leader = None
            if apply_plans and grouping.may_join(event):
                # Only alarms of its category in its district can be in its group (the open-event index
                # answers that by key; a scan of every open event per report made ingest O(open events)).
                near = self.store.open_in_district(event.district_code, [event.category_code])
                parents = {e.parent_id for e in near if e.parent_id}
                near += [p for p in map(self.store.get_event, parents) if p is not None and Status(p.status).is_open]
                leader = grouping.alarm_leader(near, event)
            if leader is not None:
                # Alertmanager-like: an alarm of a running incident joins its group; the group's leader
                # already opened the sub-tasks and sent the notifications.
                lead = self.store.get_event(leader)
                self._audit(event, "group", event.status, event.status, self.system,
                            note=f"grouped with {lead.number if lead else leader}: plans and notifications "
                                 f"held by the group")
            elif apply_plans:
                event = self._apply_plans(event)
        return event

    # ------------------------------------------------------------ act

    def act(
        self,
        ref: str,
        action: str,
        actor: User,
        *,
        note: str = "",
        departments: list[str] | None = None,
        target: str | None = None,
    ) -> Event:
        """Perform one lifecycle action; refused with a reason (and nothing changed) when illegal."""
        with self.store.tx():
            event = access.find_event(self.store, ref, actor)
            return self._transition(event, action, actor, note=note, departments=departments, target=target)

    def _transition(self, event: Event, action: str, actor: User, *, note: str = "",
                    departments: list[str] | None = None, target: str | None = None) -> Event:
        rule = lifecycle.check(event.status, action, actor.role, actor.tier, note=note, target=target,
                               departments=departments)
        if rule.action == "callback":
            note = callbacks.normalise(note)  # one form the board reads (rating N/5)
        if rule.target is not None:
            access.require_assigned(actor, event, rule.action)
        now = self.clock.now()
        changes = drafting.transition_changes(event, rule, now, self.catalogue, departments)
        if rule.action == "merge":
            survivor = access.find_event(self.store, target or "", actor)  # never into another's event
            if survivor.id == event.id:
                raise BadInput(f"cannot merge {event.number} into itself")
            if not Status(survivor.status).is_open:
                raise BadInput(f"cannot merge into {survivor.number}: it is {survivor.status}")
            changes["merged_into"] = survivor.id
        if rule.target is None:
            self._audit(event, rule.action, event.status, event.status, actor, note=note)
            return event
        target_status = rule.target
        previous = event.status
        event = self._save(event, **changes)
        self._audit(event, rule.action, previous, target_status.value, actor, note=note)
        if event.parent_id:
            multi.roll_up(self, event.parent_id)
        return event

    # ------------------------------------------------------------ SLA sweep

    def sweep(self, now: float | None = None, *, owned_only: bool = False) -> SweepResult:
        """Find overdue open events; raise colour and supervision one tier per missed deadline.

        ``owned_only``: only events this store's node owns. A tier server holds
        federated copies of its lower tiers' events; their owner escalates them
        and the raised row travels up, so the copy must not be escalated twice.
        """
        now = self.clock.now() if now is None else now
        result = SweepResult()
        with self.store.tx():
            overdue = self.store.owned_overdue_events(now) if owned_only else self.store.overdue_events(now)
            result.checked = self.store.count_events(open_only=True)
            inhibitor_open: dict[str, bool] = {}
            updates: list[tuple[Event, list[str]]] = []
            audits: list[dict[str, Any]] = []
            # One supervision per incident: sub-tasks and grouped alarms wait on their group's leader.
            follows = grouping.followers(self.store.open_events()) if overdue else {}
            for event in overdue:
                result.overdue.append(event.id)
                if event.id in follows:
                    result.held.append(event.id)
                    continue
                if event.inhibited_by:
                    # Under an open district warning the clock still shows overdue, but supervision (an alert
                    # to the upper tier) waits until the warning ends; the next sweep after that escalates.
                    if event.inhibited_by not in inhibitor_open:
                        inhibitor = self.store.get_event(event.inhibited_by)
                        inhibitor_open[event.inhibited_by] = inhibitor is not None and Status(inhibitor.status).is_open
                    if inhibitor_open[event.inhibited_by]:
                        result.held.append(event.id)
                        continue
                changes, note = self._overdue_step(event, now)
                if not changes:  # waiting out its category's escalation delay (sla_profiles.yaml)
                    result.held.append(event.id)
                    continue
                updates.append((replace(event, updated_at=now, **changes), [*changes, "updated_at"]))
                if note:
                    result.escalated.append(event.id)
                    audits.append(dict(event_id=event.id, action="supervise", from_status=event.status,
                                       to_status=event.status, actor=self.system.user, role=Role(self.system.role).value,
                                       tier=Tier(self.system.tier).value, note=note,
                                       scope=event.grid_code or event.street_code or event.district_code))
            # One batched write for the whole sweep: a busy minute can make thousands overdue at once.
            self.store.update_events(updates)
            self.store.append_audits(audits)
        # Risk grades follow readings, hazards and inspections; each change is audited (engine.risk_grades).
        result.risk_changed = [g.code for g in risk_grades.refresh(self.store, self.catalogue, now)]
        return result

    def _overdue_step(self, event: Event, now: float) -> tuple[dict[str, Any], str | None]:
        """The changes one missed deadline makes, and the supervision note (None when nothing is raised)."""
        profile = self.catalogue.sla(event.sla_profile)
        stage = sla.next_stage(profile, event.status)
        if profile.escalate_after:
            return self._delayed_step(event, now, profile, stage)
        grace = sla.stage_duration(profile, stage) if stage else 600.0
        # Each missed deadline gives the supervisor the stage's own time again, counted from the missed
        # deadline (not from this sweep), skipping deadlines a late sweep slept through: one step per sweep.
        next_due = (event.due_at or now) + grace
        while next_due < now:
            next_due += grace
        if event.escalation_level >= sla.max_level(event.origin_tier):
            # Already supervised by the city: keep the clock running, raise nothing further.
            return {"due_at": next_due}, None
        return self._raised(event, stage, next_due)

    def _delayed_step(self, event: Event, now: float, profile: Any, stage: Any) -> tuple[dict[str, Any], str | None]:
        """The overdue step of a profile with per-level escalation delays (``sla.escalation_due``)."""
        fire_at = sla.escalation_due(profile, event.due_at or now, event.escalation_level)
        if event.escalation_level >= sla.max_level(event.origin_tier) or now < fire_at:
            return {}, None
        return self._raised(event, stage, fire_at)

    @staticmethod
    def _raised(event: Event, stage: Any, due_at: float) -> tuple[dict[str, Any], str]:
        """One level up: the next supervisor, a raised colour and the 督办 note; the new deadline is ``due_at``."""
        level = event.escalation_level + 1
        supervisor = sla.supervisor_after(event.origin_tier, level)
        colour = Colour(event.colour).raised()
        label = stage.label_zh if stage else "办结"
        note = f"超时督办: {label} overdue; {supervisor.value} supervises; colour → {colour.value}"
        return {"escalation_level": level, "supervised_by": supervisor.value, "colour": colour.value,
                "due_at": due_at}, note

    def _escalate_overdue(self, event: Event, now: float) -> bool:
        """One event's overdue step, written at once (the sweep batches the same step; benchmarks compare)."""
        changes, note = self._overdue_step(event, now)
        event = self._save(event, **changes)
        if note:
            self._audit(event, "supervise", event.status, event.status, self.system, note=note)
        return note is not None

    # ------------------------------------------------------------ helpers

    def _apply_plans(self, event: Event) -> Event:
        for plan in self.plans.match(event, self.clock.now()):
            event = self._save(event, plan_code=plan.code)
            if plan.sla_profile and plan.sla_profile != event.sla_profile:
                profile = self.catalogue.sla(plan.sla_profile)
                event = self._save(event, sla_profile=profile.code,
                                   due_at=sla.due_at(profile, event.status, event.reported_at))
            self._audit(event, "plan", event.status, event.status, self.system, note=f"智能预案 {plan.code} {plan.name}")
            if event.duplicate_of:
                # A suspected duplicate waits for a dispatcher's merge decision before anything is sent out.
                self._audit(event, "hold", event.status, event.status, self.system,
                            note=f"plan {plan.code} held: merge candidate awaiting a dispatcher")
                continue
            if plan.auto_sign and event.status == Status.REPORTED.value:
                event = self._transition(event, "verify", self.system, note=f"auto-sign by plan {plan.code}")
            if plan.dispatch and event.status in (Status.VERIFIED.value, Status.ASSESSED.value):
                cat = self.catalogue.category(event.category_code)
                depts = [cat.department_code] + [d for d in (list(cat.co_departments) + list(plan.co_departments))
                                                 if d != cat.department_code]
                event = self._transition(event, "dispatch", self.system, departments=list(dict.fromkeys(depts)),
                                         note=f"auto-dispatch by plan {plan.code}")
            for role in plan.notify_roles:
                if event.inhibited_by:
                    # Inhibited: recorded and handled, but nobody is alerted about it.
                    self._audit(event, "notify_suppressed", event.status, event.status, self.system,
                                note=f"notify {role} suppressed: inhibited by {event.inhibited_by}")
                else:
                    self._audit(event, "notify", event.status, event.status, self.system, note=f"notify {role}")
            if plan.open_multi and not event.parent_id:
                multi.open_subtasks(self, event, list(plan.open_multi))
        return event

    def _save(self, event: Event, **changes: Any) -> Event:
        changes["updated_at"] = self.clock.now()
        return self.store.update_event(evolve(event, **changes), changes.keys())

    def _audit(self, event: Event, action: str, from_status: str | None, to_status: str, actor: User,
               note: str = "") -> None:
        self.store.append_audit(event_id=event.id, action=action, from_status=from_status, to_status=to_status,
                                actor=actor.user, role=_ROLE_VALUE[actor.role], tier=_TIER_VALUE[actor.tier], note=note,
                                scope=event.grid_code or event.street_code or event.district_code)

    def preplace(self, points: list[tuple[float, float]]) -> None:
        """Place many points in one vectorised lookup, ahead of the reports that name them
        (a command batch): per point the lookup costs a fraction of ``locate`` alone."""
        points = [p for p in dict.fromkeys(points) if p not in self._placed
                  and math.isfinite(p[0]) and math.isfinite(p[1]) and -180 <= p[0] <= 180 and -90 <= p[1] <= 90]
        if len(points) < 2:
            return
        if len(self._placed) > 50_000:
            self._placed.clear()
        found = self.registry.locate_many([p[0] for p in points], [p[1] for p in points])
        for p, d, s, g in zip(points, found.district_codes(), found.street_codes(), found.grid_codes()):
            self._placed[p] = (d, s, g) if d is not None else None

    def time_left(self, event: Event, now: float | None = None) -> float | None:
        return sla.time_left(event.due_at, self.clock.now() if now is None else now)

    def is_overdue(self, event: Event, now: float | None = None) -> bool:
        left = self.time_left(event, now)
        return left is not None and left < 0 and Status(event.status).is_open

    def open_subtasks(self, ref: str, targets: list[str], actor: User, *, note: str = "") -> list[Event]:
        """Open a 多跨 event by hand: one sub-task per jurisdiction or department under ``ref``."""
        with self.store.tx():
            master = access.find_event(self.store, ref, actor)
            if Role(actor.role) not in lifecycle.RULES["dispatch"].roles:
                raise PermissionDenied(f"a {Role(actor.role).value} may not open sub-tasks (event is {master.status})")
            if not Status(master.status).is_open:
                raise IllegalTransition(f"cannot open sub-tasks of an event that is {master.status}")
            if master.parent_id:
                raise IllegalTransition(f"{master.number} is itself a sub-task; open sub-tasks on its master")
            targets = [t for t in dict.fromkeys(targets) if t]
            if not targets:
                raise BadInput("open sub-tasks needs at least one jurisdiction or department")
            for t in targets:
                if t != "streets" and t not in self.catalogue.departments:
                    self.registry.get(t)  # raises UnknownCode for a code that is neither
            return multi.open_subtasks(self, master, targets, actor=actor, note=note)

    def allowed_actions(self, event: Event, actor: User) -> list[str]:
        if not event_in_scope(actor.scope_code, event.district_code, event.street_code, event.grid_code):
            return []
        actions = lifecycle.allowed_actions(event.status, actor.role, actor.tier)
        try:
            access.require_assigned(actor, event, "act")
        except PermissionDenied:  # not its department's work: only comments
            return [a for a in actions if lifecycle.RULES[a].target is None]
        return actions
