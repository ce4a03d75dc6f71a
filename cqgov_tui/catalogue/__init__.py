"""The catalogue: departments, categories, SLA profiles, runways, plans, risk points, sensors, scenarios.

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
    SlaProfile,
    SmartPlan,
    SubRunway,
)


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
    scenarios: dict[str, dict] = field(default_factory=dict)  # name → parsed scenario script

    def category(self, code: str) -> Category:
        from ..errors import UnknownCode

        try:
            return self.categories[code]
        except KeyError:
            raise UnknownCode(f"unknown category {code!r}") from None

    def sla(self, code: str) -> SlaProfile:
        from ..errors import UnknownCode

        try:
            return self.sla_profiles[code]
        except KeyError:
            raise UnknownCode(f"unknown SLA profile {code!r}") from None
