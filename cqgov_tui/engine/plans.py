"""Smart plans (智能预案): match an event on category, colour, place, nearby risk point and time of day."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..catalogue import Catalogue
from ..clock import local
from ..domain.entities import Event, RiskPoint, SmartPlan
from .dedup import distance_m

if TYPE_CHECKING:
    from ..geo.registry import Registry


class PlanMatcher:
    def __init__(self, catalogue: Catalogue, registry: Registry | None = None) -> None:
        self.catalogue = catalogue
        self.registry = registry
        self._risk_cells: dict[tuple[int, int], list[RiskPoint]] | None = None

    def match(self, event: Event, now: float) -> list[SmartPlan]:
        return [p for p in self.catalogue.plans if self.matches(p, event, now)]

    def matches(self, plan: SmartPlan, event: Event, now: float) -> bool:
        if plan.categories and event.category_code not in plan.categories:
            return False
        if plan.colours and event.colour not in plan.colours:
            return False
        deepest = event.grid_code or event.street_code or event.district_code
        if plan.places and not any(deepest.startswith(p) or p == event.city_code for p in plan.places):
            return False
        if plan.hours is not None:
            start, end = plan.hours
            hour = local(now).hour
            inside = start <= hour < end if start <= end else (hour >= start or hour < end)
            if not inside:
                return False
        if plan.near_risk_km is not None:
            if event.lon is None or event.lat is None or self.nearest_risk_km(event.lon, event.lat) > plan.near_risk_km:
                return False
        return True

    def nearest_risk_km(self, lon: float, lat: float) -> float:
        """Distance to the closest risk point, via a 0.05° bucket index built on first use."""
        cells = self._index()
        ci, cj = int(math.floor(lon / 0.05)), int(math.floor(lat / 0.05))
        best = math.inf
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                for rp in cells.get((ci + di, cj + dj), ()):
                    best = min(best, distance_m(lon, lat, rp.lon, rp.lat) / 1000.0)
        return best

    def _index(self) -> dict[tuple[int, int], list[RiskPoint]]:
        if self._risk_cells is None:
            cells: dict[tuple[int, int], list[RiskPoint]] = {}
            for rp in self.catalogue.risk_points.values():
                cells.setdefault((int(math.floor(rp.lon / 0.05)), int(math.floor(rp.lat / 0.05))), []).append(rp)
            self._risk_cells = cells
        return self._risk_cells
