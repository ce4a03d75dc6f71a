"""考评 and 事件热榜: ranking districts, streets and departments, and the hot list of events.

The seeds' 直报快响 screen ranks events (事件热榜) and "objectively reflects the
work of each district and department" (考评). Both read the store over a chosen
period (``--period 7d``), within the caller's jurisdiction.

**Ranking** (``rank``): per district, street or owning department, over the
events reported in the period (merged, rejected and 多跨 sub-tasks left out):

* ``response_min`` — mean minutes from report to the first step forward;
* ``overdue_rate`` — % supervised for lateness at least once;
* ``closure_rate`` — % closed (办结);
* ``rework_rate`` — % of call-backs (回访) rated 1–2 of 5 (returned as unsatisfactory);
* ``satisfaction`` — % of call-backs rated 4–5;
* ``score`` — 0–100, the mean of closure rate, 100 − overdue rate, satisfaction and
  100 − rework rate, over those that have data (no call-backs: the two call-back
  parts are left out, not guessed). Units rank by score, then response time.

**Hot list** (``hot_list``): the events with the most reports on one incident,
open longest, escalated furthest and supervised most.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..catalogue.metrics import parse_window
from ..domain.entities import Event
from ..errors import BadInput

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..store import Store

BY = {"district": "district_code", "street": "street_code", "department": "assignee"}
HOT_KINDS = ("reported", "open", "escalated", "supervised")


@dataclass(frozen=True)
class Rank:
    position: int
    code: str
    name: str
    events: int
    closed: int
    response_min: float | None
    overdue_rate: float | None
    closure_rate: float | None
    rework_rate: float | None
    satisfaction: float | None
    callbacks: int
    score: float | None


@dataclass(frozen=True)
class HotItem:
    event_id: str
    number: str
    title: str
    category: str
    place: str
    colour: str
    status: str
    value: float  # reports, seconds open, supervision steps or supervisions


@dataclass
class Ranking:
    by: str
    period: str
    scope_code: str
    since: float
    until: float
    ranks: list[Rank] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "period": self.period, "scope_code": self.scope_code, "since": self.since,
                "until": self.until, "ranks": [asdict(r) for r in self.ranks]}


@dataclass
class HotList:
    period: str
    scope_code: str
    until: float
    lists: dict[str, list[HotItem]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "scope_code": self.scope_code, "until": self.until,
                "lists": {k: [asdict(i) for i in v] for k, v in self.lists.items()}}


def period_seconds(period: str) -> float:
    """``7d`` / ``24h`` / ``90m`` → seconds, ``BadInput`` with a one-line reason otherwise."""
    try:
        return parse_window(period)
    except ValueError as exc:
        raise BadInput(f"period: {exc}") from None


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def rank(store: Store, catalogue: Catalogue, names: Any, now: float, by: str = "district", period: str = "7d",
         scope_code: str = "500000") -> Ranking:
    """The 考评 ranking (module docstring). ``names`` gives display names (``place(code)``, ``department``)."""
    if by not in BY:
        raise BadInput(f"cannot rank by {by!r} (expected one of {', '.join(BY)})")
    since = now - period_seconds(period)
    rows = store.evaluation_rows(scope_code, since, now, BY[by])
    ranks: list[tuple[tuple[float, float], Rank]] = []
    for unit, n, closed, overdue, resp_sum, resp_n, cbs, sat, bad in rows:
        closure, over = _pct(closed, n), _pct(overdue, n)
        satisfaction, rework = _pct(sat, cbs), _pct(bad, cbs)
        parts = [p for p in (closure, None if over is None else 100.0 - over, satisfaction,
                             None if rework is None else 100.0 - rework) if p is not None]
        score = round(sum(parts) / len(parts), 1) if parts else None
        response = round(resp_sum / resp_n, 1) if resp_n else None
        name = names.department(unit) if by == "department" else names.place(unit)
        r = Rank(0, unit, name, n, closed, response, over, closure, rework, satisfaction, cbs, score)
        ranks.append(((-(score if score is not None else -1.0), response if response is not None else 1e18), r))
    ranks.sort(key=lambda p: (p[0], p[1].code))
    out = [replace(r, position=i) for i, (_, r) in enumerate(ranks, 1)]
    return Ranking(by, period, scope_code, since, now, out)


def hot_list(store: Store, names: Any, now: float, period: str = "7d", scope_code: str = "500000",
             limit: int = 10) -> HotList:
    """The 事件热榜 (module docstring): four lists of at most ``limit`` events each."""
    since = now - period_seconds(period)
    rows = store.hot_rows(scope_code, since, now, limit)
    out = HotList(period, scope_code, now)
    for kind in HOT_KINDS:
        items = []
        for event_id, value in rows.get(kind, []):
            e: Event | None = store.get_event(event_id)
            if e is None:
                continue
            items.append(HotItem(e.id, e.number, e.title, names.category(e.category_code),
                                 names.place(e.street_code or e.district_code), e.colour, e.status, value))
        out.lists[kind] = items
    return out
