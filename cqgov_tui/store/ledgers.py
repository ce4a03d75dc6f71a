"""Rows for 一表通 ledgers: events and directives of a period, read by their time (``standards.ledgers`` shapes them)."""

from __future__ import annotations

from ..domain.entities import Directive, Event, Receipt
from .store import Store

_EVENT_TIMES = ("reported_at", "closed_at", "updated_at")


def events_between(store: Store, start: float, end: float, column: str = "reported_at") -> list[Event]:
    """Events whose ``column`` falls in [start, end), in that order (then by number)."""
    if column not in _EVENT_TIMES:
        raise ValueError(f"events are not placed in a period by {column!r}")
    with store.lock:
        rows: list[Event] = store._select(
            Event, f"FROM events WHERE {column} >= ? AND {column} < ? ORDER BY {column}, number", [start, end])
    return rows


def directives_between(store: Store, start: float, end: float) -> list[tuple[Directive, list[Receipt]]]:
    """Directives created in [start, end), oldest first, each with its stored receipts."""
    with store.lock:
        found: list[Directive] = store._select(
            Directive, "FROM directives WHERE created_at >= ? AND created_at < ? ORDER BY created_at, number",
            [start, end])
        return [(d, store.receipts(d.id)) for d in found]
