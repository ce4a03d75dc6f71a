"""Dedup: the same category within 50 m and 30 min of an open event is a merge candidate.

Only reports with a position of their own are ever merged by the engine. A
report placed by a jurisdiction code (a street or grid code, no coordinates)
sits on the code's anchor point, which says nothing about where the garbage
pile is: two different piles reported by code in one street share that point.
So a pair where either side was placed by code is at most a *candidate*
(confidence capped under ``AUTO_MERGE``), and only when both lie in the same
grid — a person decides; reports placed at a street's or district's anchor are
never paired at all.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..domain.entities import Event, Status

if TYPE_CHECKING:
    from ..geo.registry import Registry
    from ..store import Store

RADIUS_M = 50.0
WINDOW_S = 30 * 60.0
# Above this the engine merges on its own; below it flags the pair for a dispatcher.
AUTO_MERGE = 0.8
# A pair with a code-placed report is at most this sure: never merged without a person.
CODE_PLACED_MAX = 0.5
_M_PER_DEG_LAT = 111_320.0


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance: exact enough at 50 m and far cheaper than haversine."""
    x = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2)) * _M_PER_DEG_LAT
    y = (lat2 - lat1) * _M_PER_DEG_LAT
    return math.hypot(x, y)


def confidence(new: Event, old: Event) -> float | None:
    """1.0 for the same spot at the same moment, falling to 0 at 50 m / 30 min; None if out of range."""
    if new.lon is None or new.lat is None or old.lon is None or old.lat is None:
        return None
    d = distance_m(new.lon, new.lat, old.lon, old.lat)
    dt = abs(new.reported_at - old.reported_at)
    if d > RADIUS_M or dt > WINDOW_S:
        return None
    score = 0.6 * (1 - d / RADIUS_M) + 0.4 * (1 - dt / WINDOW_S)
    if new.grid_code and new.grid_code == old.grid_code:
        score = min(1.0, score + 0.05)
    return round(score, 4)


def placed_by_code(registry: Registry | None, event: Event) -> bool:
    """Whether ``event`` sits on the anchor of its deepest jurisdiction code (reported by code, not at a
    position). Without a registry, nothing can be told: False."""
    if registry is None or event.lon is None or event.lat is None:
        return event.lon is None or event.lat is None
    code = event.grid_code or event.street_code or event.district_code
    try:
        j = registry.get(code)
    except Exception:  # a code this build does not know: not an anchor we can recognise
        return False
    return abs(j.lon - event.lon) < 1e-9 and abs(j.lat - event.lat) < 1e-9


def pair_score(new: Event, old: Event, new_by_code: bool, old_by_code: bool) -> float | None:
    """``confidence`` with the rule for code-placed reports (see the module docstring)."""
    score = confidence(new, old)
    if score is None or not (new_by_code or old_by_code):
        return score
    if not (new.grid_code and new.grid_code == old.grid_code):
        return None  # a street's or district's anchor: no position to compare
    return min(score, CODE_PLACED_MAX)


def best_candidate(store: Store, event: Event, registry: Registry | None = None) -> tuple[Event | None, float]:
    """The open event ``event`` most likely repeats, and how sure (≥ ``AUTO_MERGE``: the engine merges).
    With ``registry`` a code-placed pair is capped at ``CODE_PLACED_MAX``."""
    if event.lon is None or event.lat is None:
        return None, 0.0
    by_code = placed_by_code(registry, event)
    dlat = RADIUS_M / _M_PER_DEG_LAT
    dlon = dlat / max(0.1, math.cos(math.radians(event.lat)))
    best: Event | None = None
    best_score = 0.0
    for other in store.nearby_open(event.category_code, event.reported_at - WINDOW_S, event.lon, event.lat, dlon, dlat):
        if other.id == event.id or other.parent_id or other.merged_into or other.status == Status.MERGED.value:
            continue
        score = pair_score(event, other, by_code, placed_by_code(registry, other)) if registry is not None \
            else confidence(event, other)
        if score is not None and score > best_score:
            best, best_score = other, score
    return best, best_score
