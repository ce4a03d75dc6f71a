"""Event row shapes shared by the store's query modules: column lists, the queue projection, row → Event."""

from __future__ import annotations

import collections

from ..domain.entities import TERMINAL, Event
from ..domain.schema import column_names

EVENT_COLUMNS = column_names(Event)
# What the live queue shows per row: a projection of Event, so the console's
# main query reads a third of the columns (the long text stays on disk).
QUEUE_COLUMNS = (
    "id", "number", "district_code", "street_code", "grid_code", "category_code", "colour", "status", "title",
    "assignee", "due_at", "reported_at", "updated_at", "escalation_level", "supervised_by", "inhibited_by",
    "duplicate_of", "parent_id", "source", "version",
)
QueueRow = collections.namedtuple("QueueRow", QUEUE_COLUMNS)
EVENT_SELECT = ", ".join(EVENT_COLUMNS)
EVENT_PLACEHOLDERS = ", ".join("?" for _ in EVENT_COLUMNS)
COLOUR_RANK = "CASE colour WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 WHEN 'blue' THEN 3 ELSE 4 END"
TERMINAL_VALUES = tuple(s.value for s in TERMINAL)
# Local and replicated audit entries read as one stream.
AUDIT_ALL = (
    "(SELECT seq, acted_at, event_id, action, from_status, to_status, actor, role, tier, node, note, prev_hash, hash "
    "FROM audit_log UNION ALL SELECT seq, acted_at, event_id, action, from_status, to_status, actor, role, tier, node, "
    "note, prev_hash, hash FROM audit_remote)"
)


def event_scope(event: Event) -> str:
    return event.grid_code or event.street_code or event.district_code


def event_from_row(row) -> Event:
    return Event(**dict(zip(EVENT_COLUMNS, row)))
