"""The catalogue: departments, categories, SLA profiles, runways, plans, risk points, sensors.

Drill scenarios are loaded by ``sim.drills`` from ``fixtures/scenarios``.

Loaded once from ``fixtures/`` (see ``catalogue.loader``) and shared read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain.entities import (
    Category,
    Department,
    Indicator,
    RiskPoint,
    Runway,
    Sector,
    Sensor,
    SensorKind,
    SlaProfile,
    SmartPlan,
    SubRunway,
)
from ..errors import UnknownCode


@dataclass
class Catalogue:
    departments: dict[str, Department]
    categories: dict[str, Category]  # 40
    sla_profiles: dict[str, SlaProfile]
    sectors: dict[str, Sector]  # 8
    runways: dict[str, Runway]  # 70
    sub_runways: dict[str, SubRunway]  # 255
    indicators: dict[str, Indicator]
    plans: list[SmartPlan]
    risk_points: dict[str, RiskPoint]
    sensors: dict[str, Sensor]
    sensor_kinds: dict[str, SensorKind] = field(default_factory=dict)

    def category(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise UnknownCode(f"unknown category {code!r}") from None

    def sla(self, code: str) -> SlaProfile:
        try:
            return self.sla_profiles[code]
        except KeyError:
            raise UnknownCode(f"unknown SLA profile {code!r}") from None

    def sensor_kind(self, code: str) -> SensorKind:
        try:
            return self.sensor_kinds[code]
        except KeyError:
            raise UnknownCode(f"unknown sensor kind {code!r}") from None

    def department(self, code: str) -> Department:
        try:
            return self.departments[code]
        except KeyError:
            raise UnknownCode(f"unknown department {code!r}") from None

    def runways_of(self, sector_code: str) -> list[Runway]:
        return [r for r in self.runways.values() if r.sector_code == sector_code]

    def sub_runways_of(self, runway_code: str) -> list[SubRunway]:
        return [s for s in self.sub_runways.values() if s.runway_code == runway_code]

    def indicators_of(self, sub_runway_code: str) -> list[Indicator]:
        return [i for i in self.indicators.values() if i.sub_runway_code == sub_runway_code]

    def risk_points_of(self, category_code: str) -> list[RiskPoint]:
        return [r for r in self.risk_points.values() if r.category_code == category_code]
