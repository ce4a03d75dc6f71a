"""Grouping like Alertmanager: the alarms and sub-tasks of one incident are one group.

Two rules put open events together, in report order:

* a 多跨 sub-task belongs to its master's group;
* an alarm (source ``sensor`` or ``video``) belongs to the group of the earlier
  open alarm of the same category on the same street, as long as each came
  within ``GROUP_WINDOW_S`` of the group's latest — an alarm storm on two
  streets is two groups, however many detectors fire.

The group's leader is its first event. The console shows one queue row per
group with a count; the SLA sweep raises one supervision per group (the
leader's), holding the others; a new alarm that joins a group opens no sub-tasks
and sends no notifications of its own (its plans are held, noted in its audit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

GROUP_WINDOW_S = 30 * 60.0
ALARM_SOURCES = frozenset({"sensor", "video"})


class _Row(Protocol):
    id: str
    number: str
    reported_at: float
    parent_id: str | None
    source: str
    category_code: str
    street_code: str | None


def _order(e: _Row) -> tuple[float, str, str]:
    # report time, then the serial number (creation order within one instant: an alarm batch shares it)
    return (e.reported_at, getattr(e, "number", ""), e.id)


@dataclass
class Group:
    leader: str
    members: list[str] = field(default_factory=list)  # every event of the group, the leader first

    @property
    def count(self) -> int:
        return len(self.members)


def leaders(events: Iterable[_Row]) -> dict[str, str]:
    """Event id → its group's leader id, for every event given (a leader maps to itself)."""
    rows = sorted(events, key=_order)
    present = {e.id for e in rows}
    root: dict[str, str] = {}
    alarm: dict[tuple[str, str], tuple[str, float]] = {}  # (category, street) → (leader, latest alarm at)
    for e in rows:
        if e.parent_id and e.parent_id in present:
            root[e.id] = root.get(e.parent_id, e.parent_id)
            continue
        if e.source in ALARM_SOURCES and e.street_code:
            key = (e.category_code, e.street_code)
            current = alarm.get(key)
            if current is not None and e.reported_at - current[1] <= GROUP_WINDOW_S:
                root[e.id] = current[0]
                alarm[key] = (current[0], e.reported_at)
                continue
            alarm[key] = (e.id, e.reported_at)
        root[e.id] = e.id
    return root


def groups(events: Iterable[_Row]) -> dict[str, Group]:
    """Leader id → its group (members in report order)."""
    rows = sorted(events, key=_order)
    lead = leaders(rows)
    out: dict[str, Group] = {}
    for e in rows:
        out.setdefault(lead[e.id], Group(lead[e.id])).members.append(e.id)
    return out


def followers(events: Iterable[_Row]) -> dict[str, str]:
    """Event id → leader id for every event that is not its group's leader."""
    return {eid: lead for eid, lead in leaders(events).items() if eid != lead}


def may_join(new: _Row) -> bool:
    """Whether a new event can join an alarm group at all (only then are its neighbours worth fetching)."""
    return new.source in ALARM_SOURCES and bool(new.street_code) and not new.parent_id


def alarm_leader(open_events: Iterable[_Row], new: _Row) -> str | None:
    """The group a new alarm joins (its leader's id), or None when it starts its own. ``open_events`` needs
    only the open events of its category in its district, and the masters of any sub-tasks among them."""
    if not may_join(new):
        return None
    lead = leaders([*(e for e in open_events if e.id != new.id), new]).get(new.id)
    return lead if lead and lead != new.id else None
