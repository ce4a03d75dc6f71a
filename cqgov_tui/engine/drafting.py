"""Drafting: where a new event's row and a transition's changes are made, once.

Two writers need them: the engine, which applies a command for real, and a
client's optimistic path (``sync.optimistic``), which shows the command's
effect in the local replica while it waits in the outbox. Both draft here, so
the row a console shows before the server answers is the row the server will
write (bar the number and what only the server decides: dedup, plans, audit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..catalogue import Catalogue
from ..domain.entities import Category, Event, Status, Tier
from ..errors import BadInput
from ..scope import CITY_CODE
from . import sla
from .lifecycle import Rule

if TYPE_CHECKING:
    from ..geo.registry import Registry


@dataclass(frozen=True)
class Place:
    district: str
    street: str | None
    grid: str | None
    lon: float | None
    lat: float | None


def place(registry: Registry, lon: Any, lat: Any, code: Any,
          placed: dict[tuple[float, float], tuple[str, str | None, str | None] | None] | None = None) -> Place:
    """Where an event is: from lon/lat (located in the real shapes) or from a jurisdiction code.

    ``placed``: points located ahead in one vectorised lookup (taken out as used)."""
    if lon is not None or lat is not None:
        try:
            x, y = float(lon), float(lat)
        except (TypeError, ValueError):
            raise BadInput(f"malformed coordinates {lon!r},{lat!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise BadInput(f"malformed coordinates {x},{y}")
        if placed is not None and (x, y) in placed:
            hit = placed.pop((x, y))
            if hit is None:
                raise BadInput(f"{x},{y} is outside Chongqing")
            return Place(hit[0], hit[1], hit[2], x, y)
        loc = registry.locate(x, y)
        if loc is None:
            raise BadInput(f"{x},{y} is outside Chongqing")
        return Place(loc.district.code, loc.street.code, loc.grid.code, x, y)
    if not code:
        raise BadInput("an event needs a place: --lon/--lat or --code")
    j = registry.get(str(code))
    chain = [a.code for a in registry.ancestors(j.code)] + [j.code]
    by_level = {registry.get(c).level.value: c for c in chain}
    if "district" not in by_level:
        raise BadInput(f"{code} is not inside a district")
    return Place(by_level["district"], by_level.get("street"), by_level.get("grid"), j.lon, j.lat)


def address(registry: Registry, where: Place) -> str:
    parts = [registry.get(c).name for c in (where.district, where.street) if c]
    if where.grid:
        parts.append(f"{where.grid[-3:]}号网格")
    return "".join(parts)


def new_event(*, event_id: str, number: str, category: Category, catalogue: Catalogue, where: Place, colour: str,
              title: str, text: str, source: str, reporter: str, address: str, now: float, parent_id: str | None,
              origin_tier: str, origin_node: str, version: int = 1) -> Event:
    """A just-reported event (感知发现) on its category's SLA clock."""
    profile = catalogue.sla(category.sla_profile)
    return Event(
        id=event_id, number=number, city_code=CITY_CODE, district_code=where.district, street_code=where.street,
        grid_code=where.grid, category_code=category.code, colour=colour, status=Status.REPORTED.value,
        title=title, text=text, lon=where.lon, lat=where.lat, address=address, source=source, reporter=reporter,
        assignee=None, departments=[], sla_profile=profile.code, reported_at=now, stage_started_at=now,
        due_at=sla.due_at(profile, Status.REPORTED, now), closed_at=None, updated_at=now, escalation_level=0,
        supervised_by=None, parent_id=parent_id, merged_into=None, duplicate_of=None, inhibited_by=None,
        plan_code=None, origin_tier=origin_tier, origin_node=origin_node, version=version,
    )


def transition_changes(event: Event, rule: Rule, now: float, catalogue: Catalogue,
                       departments: list[str] | None = None) -> dict[str, Any]:
    """The fields a checked lifecycle action changes (a merge's ``merged_into`` is the caller's: it needs
    the survivor). Empty for actions that move nothing (comment)."""
    changes: dict[str, Any] = {}
    if rule.action == "dispatch":
        cat = catalogue.category(event.category_code)
        depts = list(departments or [])
        unknown = [d for d in depts if d not in catalogue.departments]
        if unknown:
            raise BadInput(f"unknown department {unknown[0]!r}")
        changes["assignee"] = depts[0] if depts else cat.department_code
        changes["departments"] = depts[1:] if depts else list(cat.co_departments)
    if rule.target is None:
        return changes
    target = rule.target
    profile = catalogue.sla(event.sla_profile)
    changes.update(status=target.value, stage_started_at=now, due_at=sla.due_at(profile, target, event.reported_at))
    if target in (Status.CLOSED, Status.REJECTED, Status.MERGED):
        changes["closed_at"] = now
        changes["due_at"] = None
    if target is Status.ESCALATED:
        # Taken over by the upper tier: supervision starts one step up, and the overdue ladder goes on from there.
        level = max(1, event.escalation_level)
        changes["escalation_level"] = level
        changes["supervised_by"] = sla.supervisor_after(Tier(event.origin_tier), level).value
    return changes
