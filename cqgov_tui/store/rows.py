"""Event row shapes shared by the store's query modules: column lists, the queue projection, row → Event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ..domain.entities import TERMINAL, Event
from ..domain.schema import column_names

EVENT_COLUMNS = column_names(Event)


class QueueRow(NamedTuple):
    """What the live queue shows per row: a projection of Event (same names and types), so the
    console's main query reads a third of the columns (the long text stays on disk)."""

    id: str
    number: str
    district_code: str
    street_code: str | None
    grid_code: str | None
    category_code: str
    colour: str
    status: str
    title: str
    assignee: str | None
    due_at: float | None
    reported_at: float
    updated_at: float
    escalation_level: int
    supervised_by: str | None
    inhibited_by: str | None
    duplicate_of: str | None
    parent_id: str | None
    source: str
    version: int


QUEUE_COLUMNS: tuple[str, ...] = QueueRow._fields
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


def event_from_row(row: Sequence[Any]) -> Event:
    return Event(**dict(zip(EVENT_COLUMNS, row)))
