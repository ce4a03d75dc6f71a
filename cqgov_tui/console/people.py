"""What the console shows about people (UI-free view-models): my work, my inbox, who is on duty nearby.

The screens (``cqgov_screens.views.my_work`` and the event detail) render these
rows; a headless test can call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..domain.entities import Event, Role
from ..domain.people import Channel, TaskStatus
from ..people import roster
from ..textsafe import plain

if TYPE_CHECKING:
    from ..store import Store


@dataclass(frozen=True)
class WorkRow:
    task_id: str
    kind: str  # periodic | adhoc | event
    title: str
    place: str
    status: str
    due_at: float | None
    overdue: bool
    event_id: str | None


@dataclass(frozen=True)
class InboxRow:
    notification_id: str
    subject: str
    at: float
    priority: str
    needs_ack: bool
    acked: bool
    acked_by: str | None
    ref: str


@dataclass(frozen=True)
class PersonRow:
    user: str
    name: str
    role_zh: str
    jurisdiction: str
    status: str
    distance_m: float | None


_OPEN = (TaskStatus.ASSIGNED.value, TaskStatus.ACCEPTED.value, TaskStatus.ON_SCENE.value)


def work_rows(store: Store, user: str, now: float, names=None, limit: int = 200) -> list[WorkRow]:
    """The user's open tasks, overdue first then by due time."""
    from ..people.tasks import my_work

    out = []
    for t in my_work(store, user, now, limit=limit):
        code = t.grid_code or t.street_code or t.district_code
        place = names.place(code) if names is not None and hasattr(names, "place") else code
        out.append(WorkRow(t.id, t.kind, plain(t.title), plain(str(place)), t.status, t.due_at,
                           t.due_at is not None and t.status in _OPEN and t.due_at < now, t.event_id))
    out.sort(key=lambda r: (not r.overdue, r.due_at if r.due_at is not None else float("inf"), r.task_id))
    return out


def inbox_rows(store: Store, user: str, limit: int = 100) -> list[InboxRow]:
    """The user's inbox, newest first; unacknowledged ones that need an answer are marked."""
    rows = store.notifications(recipient=user, channel=Channel.INBOX.value, limit=limit)
    acked = {n.message_key: n.acked_by for n in store.notifications(recipient=user, limit=limit * 3)
             if n.acked_at is not None}
    return [InboxRow(n.id, plain(n.subject), n.created_at, n.priority, n.needs_ack,
                     n.acked_at is not None or n.message_key in acked, n.acked_by or acked.get(n.message_key), n.ref)
            for n in rows]


def unread(store: Store, user: str) -> int:
    """Messages to the user still waiting for an acknowledgement."""
    return sum(1 for r in inbox_rows(store, user) if r.needs_ack and not r.acked)


def nearby_rows(store: Store, event: Event, now: float, limit: int = 6) -> list[PersonRow]:
    """Who is on duty near an event (free before busy, nearest first): the dispatch picker."""
    place = event.grid_code or event.street_code or event.district_code
    out = []
    for p, dist in roster.nearby(store, place, event.lon, event.lat, now, limit=limit):
        role = Role(p.role).zh if p.role in {r.value for r in Role} else p.role
        out.append(PersonRow(p.user, plain(p.name), role, p.jurisdiction, p.status, dist))
    return out


@dataclass(frozen=True)
class OnDutyRow:
    user: str
    name: str
    role_zh: str
    jurisdiction: str  # its name when known
    status: str
    seen_at: float | None
    lon: float | None
    lat: float | None


def on_duty_rows(store: Store, scope_code: str, now: float, names=None, limit: int = 300) -> list[OnDutyRow]:
    """Who is on duty now in a scope, busy first, most recently seen first (菩提's "who is online and where")."""
    out = []
    for p in roster.who_is_on(store, now, scope_code)[: limit * 2]:
        role = Role(p.role).zh if p.role in {r.value for r in Role} else p.role
        place = names.place(p.jurisdiction) if names is not None and p.jurisdiction != "500000" else p.jurisdiction
        out.append(OnDutyRow(p.user, plain(p.name), role, plain(str(place or p.jurisdiction)), p.status, p.seen_at,
                             p.lon, p.lat))
    out.sort(key=lambda r: (r.status != "busy", -(r.seen_at or 0.0), r.user))
    return out[:limit]


def on_duty_count(store: Store, scope_code: str, now: float) -> tuple[int, int]:
    """(on duty now, on the roster) inside a scope, for the status line."""
    people = store.people(scope_code)
    return sum(1 for p in people if roster.is_on_duty(p, now)), len(people)


class PeopleActions:
    """The console's people actions on a backend: locally through the engine, or as commands in the replica's
    outbox (``task.act``, ``notify.ack``, ``dispatch.person``; the server's reason comes back on refusal)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    @property
    def remote(self) -> bool:
        return getattr(self.backend, "client", None) is not None

    def _run(self, fn, label: str):
        from ..errors import CqgovError
        from .backend import Outcome

        try:
            fn()
        except CqgovError as exc:
            return Outcome(False, str(exc))
        return Outcome(True, label)

    def task(self, task_id: str, action: str, note: str = ""):
        if self.remote:
            return self.backend._enqueue("task.act", {"task": task_id, "action": action, "note": note}, action)
        from ..people.tasks import act_on_task

        return self._run(lambda: act_on_task(self.backend.engine, task_id, action, self.backend.user, note), action)

    def ack(self, notification_id: str):
        if self.remote:
            return self.backend._enqueue("notify.ack", {"notification": notification_id}, "ack")
        from ..notify.service import acknowledge

        return self._run(lambda: acknowledge(self.backend.store, notification_id, self.backend.user, via="console"),
                         "ack")

    def dispatch(self, event_id: str, user: str, note: str = ""):
        if self.remote:
            return self.backend._enqueue("dispatch.person", {"event": event_id, "to": user, "note": note}, user)
        from ..people.tasks import dispatch_to_person

        return self._run(lambda: dispatch_to_person(self.backend.engine, event_id, user, self.backend.user, note),
                         user)
