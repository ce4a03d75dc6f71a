"""多跨 events: one master with a sub-task per jurisdiction or department; the master rolls up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.entities import Event, Status, User
from . import lifecycle

if TYPE_CHECKING:
    from .core import Engine

# The system walks the master forward along the loop, one audited action at a time.
_NEXT = {
    Status.REPORTED: "verify",
    Status.VERIFIED: "dispatch",
    Status.ASSESSED: "dispatch",
    Status.ESCALATED: "dispatch",
    Status.DISPATCHED: "accept",
    Status.ACCEPTED: "arrive",
    Status.ON_SCENE: "dispose",
    Status.DISPOSED: "feedback",
    Status.FEEDBACK: "close",
}
_IGNORED = {Status.REJECTED.value, Status.MERGED.value}


def open_subtasks(engine: Engine, master: Event, targets: list[str], actor: User | None = None,
                  note: str = "") -> list[Event]:
    """Create one sub-task per target: a department code is dispatched to that department,
    a jurisdiction code is placed there. ``"streets"`` expands to the master's district streets.

    Every sub-task exists before any is moved on, so the first roll-up already sees them all."""
    from . import sla

    reg, cat = engine.registry, engine.catalogue
    expanded: list[str] = []
    for t in targets:
        if t == "streets":
            expanded.extend(j.code for j in reg.children(master.district_code))
        else:
            expanded.append(t)
    profile = cat.sla(master.sla_profile)
    created: list[tuple[str, Event]] = []
    for target in dict.fromkeys(expanded):
        if target in cat.departments:
            sub = engine.report(
                category=master.category_code, title=f"{master.title} · {cat.departments[target].short}",
                text=master.text, lon=master.lon, lat=master.lat,
                code=None if master.lon is not None else (master.grid_code or master.street_code or master.district_code),
                colour=master.colour, source="upper", reporter=engine.system.user, parent_id=master.id, apply_plans=False,
            )
        else:
            j = reg.get(target)
            sub = engine.report(
                category=master.category_code, title=f"{master.title} · {j.name}", text=master.text, code=target,
                colour=master.colour, source="upper", reporter=engine.system.user, parent_id=master.id, apply_plans=False,
            )
        if sub.sla_profile != profile.code:
            # A sub-task runs on its master's clock (a plan may have set a tighter profile).
            sub = engine._save(sub, sla_profile=profile.code, due_at=sla.due_at(profile, sub.status, sub.reported_at))
        created.append((target, sub))
    subs = []
    for target, sub in created:
        if target in cat.departments:
            sub = engine._transition(sub, "verify", engine.system, note=f"多跨 sub-task of {master.number}")
            sub = engine._transition(sub, "dispatch", engine.system, departments=[target],
                                     note=f"多跨 sub-task of {master.number}")
        subs.append(sub)
    engine._audit(master, "open_subtasks", master.status, master.status, actor or engine.system,
                  note=f"多跨: {len(subs)} sub-tasks: " + ", ".join(s.number for s in subs) + (f"; {note}" if note else ""))
    return subs


def rolled_up_status(subtasks: list[Event]) -> Status | None:
    """The least-advanced live sub-task decides how far the master has come."""
    live = [s for s in subtasks if s.status not in _IGNORED]
    if not live:
        return None
    return min((Status(s.status) for s in live), key=lifecycle.position)


def roll_up(engine: Engine, master_id: str) -> Event | None:
    master = engine.store.get_event(master_id)
    if master is None or not Status(master.status).is_open:
        return master
    goal = rolled_up_status(engine.store.children_of(master_id))
    if goal is None:
        return master
    goal_pos = min(lifecycle.position(goal), lifecycle.position(Status.CLOSED))
    while lifecycle.position(master.status) < goal_pos:
        action = _NEXT.get(Status(master.status))
        if action is None:
            break
        master = engine._transition(master, action, engine.system, note="多跨 roll-up from sub-tasks",
                                    departments=[master.assignee] if master.assignee else None)
    return master
