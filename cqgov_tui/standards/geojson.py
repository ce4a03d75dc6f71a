"""GeoJSON (RFC 7946) of events and risk points, so any GIS tool can put them on a map.

Coordinates are WGS84 [lon, lat] as stored. An event reported by code rather
than by point is placed at its jurisdiction's label anchor and says so
(``placed: "anchor"``). Each feature carries ``marker-color`` from the five
colours (the simplestyle convention most web map viewers read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..clock import local
from ..domain.colour import Colour
from ..domain.entities import Event, RiskPoint, Status
from ..scope import covers

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..geo.registry import Registry

MEDIA_TYPE = "application/geo+json"
MARKER = {"red": "#d7191c", "orange": "#fd8d3c", "yellow": "#fecc5c", "blue": "#2c7bb6", "green": "#1a9641"}


def _iso(t: float | None) -> str | None:
    return None if t is None else local(t).isoformat(timespec="seconds")


def _anchor(registry: Registry | None, event: Event) -> tuple[float, float] | None:
    if registry is None:
        return None
    for code in (event.grid_code, event.street_code, event.district_code):
        if code:
            try:
                j = registry.get(code)
            except Exception:  # a code this build does not know: try the coarser one
                continue
            return j.lon, j.lat
    return None


def event_feature(event: Event, catalogue: Catalogue | None = None, registry: Registry | None = None) -> dict[str, Any]:
    if event.lon is not None and event.lat is not None:
        point, placed = (event.lon, event.lat), "reported"
    else:
        point, placed = _anchor(registry, event), "anchor"
    cat = catalogue.categories.get(event.category_code) if catalogue else None
    colour = Colour(event.colour)
    return {
        "type": "Feature",
        "id": event.id,
        "geometry": None if point is None else {"type": "Point", "coordinates": [point[0], point[1]]},
        "properties": {
            "kind": "event", "number": event.number, "category": event.category_code,
            "category_name": cat.name if cat else event.category_code, "colour": colour.value,
            "colour_zh": colour.zh, "status": event.status, "status_zh": Status(event.status).zh,
            "title": event.title, "address": event.address, "source": event.source,
            "district_code": event.district_code, "street_code": event.street_code, "grid_code": event.grid_code,
            "assignee": event.assignee, "reported_at": _iso(event.reported_at), "due_at": _iso(event.due_at),
            "closed_at": _iso(event.closed_at), "escalation_level": event.escalation_level,
            "supervised_by": event.supervised_by, "placed": None if point is None else placed,
            "marker-color": MARKER.get(colour.value, "#888888"),
        },
    }


def risk_point_feature(point: RiskPoint, catalogue: Catalogue | None = None) -> dict[str, Any]:
    cat = catalogue.categories.get(point.category_code) if catalogue else None
    colour = Colour(point.colour)
    return {
        "type": "Feature",
        "id": point.code,
        "geometry": {"type": "Point", "coordinates": [point.lon, point.lat]},
        "properties": {
            "kind": "risk_point", "code": point.code, "name": point.name, "category": point.category_code,
            "category_name": cat.name if cat else point.category_code, "colour": colour.value,
            "colour_zh": colour.zh, "grid_code": point.grid_code, "district_code": point.grid_code[:6],
            "marker-color": MARKER.get(colour.value, "#888888"), "marker-symbol": "triangle",
        },
    }


def risk_points_in(catalogue: Catalogue, scope_code: str) -> list[RiskPoint]:
    return [p for p in catalogue.risk_points.values() if covers(scope_code, p.grid_code)]


def collection(events: Iterable[Event] = (), risk_points: Iterable[RiskPoint] = (), *,
               catalogue: Catalogue | None = None, registry: Registry | None = None) -> dict[str, Any]:
    features = [event_feature(e, catalogue, registry) for e in events]
    features += [risk_point_feature(p, catalogue) for p in risk_points]
    return {"type": "FeatureCollection", "features": features}
