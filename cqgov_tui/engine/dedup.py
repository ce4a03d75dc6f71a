"""Dedup: the same category within 50 m and 30 min of an open event is a merge candidate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..domain.entities import Event, Status

if TYPE_CHECKING:
    from ..store import Store

RADIUS_M = 50.0
WINDOW_S = 30 * 60.0
# Above this the engine merges on its own; below it flags the pair for a dispatcher.
AUTO_MERGE = 0.8
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


def best_candidate(store: Store, event: Event) -> tuple[Event | None, float]:
    if event.lon is None or event.lat is None:
        return None, 0.0
    dlat = RADIUS_M / _M_PER_DEG_LAT
    dlon = dlat / max(0.1, math.cos(math.radians(event.lat)))
    best: Event | None = None
    best_score = 0.0
    for other in store.nearby_open(event.category_code, event.reported_at - WINDOW_S, event.lon, event.lat, dlon, dlat):
        if other.id == event.id or other.parent_id or other.merged_into or other.status == Status.MERGED.value:
            continue
        score = confidence(event, other)
        if score is not None and score > best_score:
            best, best_score = other, score
    return best, best_score
