"""The event detail view-model: fields, audit timeline, SLA stage clocks, merge candidates, actions."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.entities import AuditEntry, Event, Status, User
from ..engine import lifecycle
from ..engine.dedup import RADIUS_M, WINDOW_S, confidence
from ..engine.review import TimelineEntry  # declared once, shared with the review draft
from ..scope import event_in_scope
from ..textsafe import plain
from .names import Names
from .queue import QueueRow, row_of


@dataclass(frozen=True)
class StageTimer:
    label: str
    label_zh: str
    milestone: str
    due_at: float
    reached_at: float | None

    def left(self, now: float) -> float | None:
        """Seconds left (negative: overdue); None once the milestone is reached."""
        return None if self.reached_at is not None else self.due_at - now

    @property
    def late(self) -> bool:
        return self.reached_at is not None and self.reached_at > self.due_at


@dataclass(frozen=True)
class ActionSpec:
    action: str
    zh: str
    needs_note: bool
    needs_target: bool
    needs_departments: bool


@dataclass(frozen=True)
class EventDetail:
    event: Event
    row: QueueRow
    fields: tuple[tuple[str, str], ...]  # (label key, plain value)
    timeline: tuple[TimelineEntry, ...]
    stages: tuple[StageTimer, ...]
    candidates: tuple[tuple[QueueRow, float], ...]  # merge candidates with confidence
    actions: tuple[ActionSpec, ...]


# 督办 from an upper tier: a directive to the owning jurisdiction (the server's ``supervise`` command).
SUPERVISE = ActionSpec("supervise", "督办", True, False, False)


def action_specs(event: Event, user: User, owner: str | None = None) -> tuple[ActionSpec, ...]:
    """The actions the server would accept from ``user``. ``owner``: another node owns the event (its tier
    applies lifecycle actions), so only what changes no status is offered — comment, call-back — and
    supervise (督办)."""
    if not event_in_scope(user.scope_code, event.district_code, event.street_code, event.grid_code):
        return ()
    out = []
    for name in lifecycle.allowed_actions(event.status, user.role, user.tier):
        r = lifecycle.RULES[name]
        if owner and r.target is not None:
            continue  # refused by the server: "its tier acts on it"
        out.append(ActionSpec(r.action, r.zh, r.needs_note, r.needs_target, r.needs_departments))
    if owner and Status(event.status).is_open:
        out.append(SUPERVISE)
    return tuple(out)


def deadline_text(t: float, now: float) -> str:
    """A deadline as a dispatcher reads it: the time of day when it is today, else with its date
    (tomorrow 13:30 must not read like today 13:30)."""
    from ..clock import local

    when = local(t)
    if when.date() == local(now).date():
        return when.strftime("%H:%M:%S")
    return when.strftime("%m-%d %H:%M")


def stage_timers(event: Event, timeline: list[AuditEntry], catalogue) -> tuple[StageTimer, ...]:
    try:
        profile = catalogue.sla(event.sla_profile)
    except Exception:  # profile unknown to this build: show no timers rather than fail
        return ()
    reached: dict[str, float] = {}
    for entry in timeline:
        if not entry.to_status:
            continue
        pos = lifecycle.position(entry.to_status)
        for st in profile.stages:
            if st.milestone.value not in reached and pos >= lifecycle.position(st.milestone) and \
                    entry.to_status not in (Status.REJECTED.value, Status.MERGED.value):
                reached[st.milestone.value] = entry.acted_at
    return tuple(
        StageTimer(st.label, st.label_zh, st.milestone.value, event.reported_at + st.minutes * 60.0,
                   reached.get(st.milestone.value))
        for st in profile.stages
    )


def merge_candidates(store, event: Event, names: Names, limit: int = 5) -> tuple[tuple[QueueRow, float], ...]:
    """Open events of the same category within 50 m / 30 min (and the flagged duplicate, if any)."""
    found: dict[str, tuple[QueueRow, float]] = {}
    if event.duplicate_of:
        other = store.get_event(event.duplicate_of)
        if other is not None and Status(other.status).is_open:
            found[other.id] = (row_of(other, names), confidence(event, other) or 0.0)
    if event.lon is not None and event.lat is not None and Status(event.status).is_open:
        import math

        dlat = RADIUS_M / 111_320.0  # metres per degree of latitude
        dlon = dlat / max(0.1, math.cos(math.radians(event.lat)))
        for other in store.nearby_open(event.category_code, event.reported_at - WINDOW_S, event.lon, event.lat, dlon, dlat):
            if other.id == event.id or other.id in found or other.parent_id:
                continue
            score = confidence(event, other)
            if score is not None:
                found[other.id] = (row_of(other, names), score)
    return tuple(sorted(found.values(), key=lambda p: -p[1])[:limit])


def event_detail(store, event_id: str, user: User, names: Names, catalogue, owner: str | None = None
                 ) -> EventDetail | None:
    event = store.get_event(event_id)
    if event is None:
        return None
    # Local and replicated entries: on a replica the owning tier's audit arrives in ``audit_remote``.
    audit = store.event_audit(event.id)
    deps = [names.department(d) for d in (event.departments or [])]
    fields = (
        ("number", plain(event.number)),
        ("title", plain(event.title)),
        ("status", event.status),
        ("colour", event.colour),
        ("category", names.category(event.category_code)),
        ("place", " / ".join(names.place(c) for c in (event.district_code, event.street_code) if c)
         + (f" / {event.grid_code}" if event.grid_code else "")),
        ("address", plain(event.address)),
        ("text", plain(event.text, multiline=True)),
        ("source", plain(event.source)),
        ("reporter", plain(event.reporter)),
        ("assignee", names.department(event.assignee) if event.assignee else "-"),
        ("departments", "、".join(deps) or "-"),
        ("sla_profile", plain(event.sla_profile)),
        ("supervised_by", plain(event.supervised_by or "-")),
        ("escalation_level", str(event.escalation_level)),
        ("plan", plain(event.plan_code or "-")),
        ("parent", plain(event.parent_id or "-")),
        ("origin", f"{plain(event.origin_tier)} {plain(event.origin_node)}"),
        ("id", event.id),
    )
    timeline = tuple(
        TimelineEntry(a.acted_at, plain(a.action), a.from_status, a.to_status, plain(a.actor), plain(a.role),
                      plain(a.tier), plain(a.note, multiline=True))
        for a in audit
    )
    return EventDetail(
        event=event, row=row_of(event, names), fields=fields, timeline=timeline,
        stages=stage_timers(event, audit, catalogue), candidates=merge_candidates(store, event, names),
        actions=action_specs(event, user, owner),
    )
