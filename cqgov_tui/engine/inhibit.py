"""Inhibition: an open district-level event (a flood warning) suppresses alerts for the
per-grid events it covers beneath it; those events are still recorded and handled."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalogue import Catalogue
from ..domain.entities import Event

if TYPE_CHECKING:
    from ..store import Store


def covering_categories(catalogue: Catalogue, category_code: str) -> list[str]:
    return [c.code for c in catalogue.categories.values() if c.scope == "district" and category_code in c.covers]


def inhibitor_for(store: Store, catalogue: Catalogue, event: Event) -> Event | None:
    cat = catalogue.category(event.category_code)
    if cat.scope == "district":
        return None
    covering = covering_categories(catalogue, cat.code)
    if not covering:
        return None
    candidates = store.open_in_district(event.district_code, covering)
    # A warning's own 多跨 sub-tasks share its category; the master is the one that inhibits.
    masters = [c for c in candidates if not c.parent_id]
    if masters:
        return masters[0]
    return candidates[0] if candidates else None


def is_alerting(event: Event) -> bool:
    """Whether the console should alert (flash, sound) for this event."""
    return event.inhibited_by is None and event.merged_into is None
