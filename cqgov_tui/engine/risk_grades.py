"""Risk grades that move (风险分级): each risk point's grade computed from its register entry, its open
hazards, its inspections and its sensors' recent readings — and an audited history of every change.

The grade of a point, in five colours, is the worst of:

* its register grade (固有风险, ``RiskPoint.colour``: green, blue or yellow — the register alone never
  makes a point orange or red), one step lower while an inspection found it in order (``ok``) within
  the last 30 days, and at least yellow while the latest inspection found a hazard;
* red while a sensor on it reads at or over its alarm threshold; yellow while a reading sits between
  ``clear_below`` and the threshold (the alarm's hysteresis band);
* orange while a hazard on it is open — an event its sensor raised, or an event of its category in
  its grid — unless an inspection after that event was reported found the point in order.

So a 45 %LEL methane reading makes a tank red; a reading back under ``clear_below`` leaves it orange
while the alarm event is still open; an inspection (``ok``) brings it to its register grade less one.

Only points with something beyond the register — a sensor reading above ``clear_below``, an open
linked event, an inspection within 90 days, or a recorded grade of their own — are evaluated one by
one; every other point is at its register grade. ``refresh`` compares the grades with the last
recorded ones and appends an audit entry ``risk_grade`` (from/to grade, the reasons and the 责任人)
for each change, in the hash-chained audit log; the engine's sweep calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..catalogue import Catalogue
from ..domain.colour import Colour
from ..domain.entities import RiskPoint, Role, Sensor, Tier, User
from ..scope import CITY_CODE, covers

if TYPE_CHECKING:
    from ..store import Store

INSPECTION_VALID_S = 30 * 86400.0
LOOKBACK_S = 90 * 86400.0
RESULTS = ("ok", "hazard")
HIGH = (Colour.RED, Colour.ORANGE)


@dataclass(frozen=True)
class Grade:
    code: str
    colour: Colour
    register: Colour
    reasons: tuple[str, ...]  # why it is above (or below) its register grade; () = at the register grade
    owner: str
    inspected_at: float | None = None


def _worst(a: Colour, b: Colour) -> Colour:
    return a if a.rank <= b.rank else b


def _lower(c: Colour) -> Colour:
    order = (Colour.RED, Colour.ORANGE, Colour.YELLOW, Colour.BLUE, Colour.GREEN)
    return order[min(len(order) - 1, order.index(c) + 1)]


@dataclass(frozen=True)
class _Register:
    """Lookups over a catalogue's risk points and sensors, built once per catalogue (the sweep runs often)."""

    points: dict[str, RiskPoint]
    sensors_of: dict[str, list[Sensor]]
    sensor_point: dict[str, str]
    by_cat_grid: dict[tuple[str, str], list[str]]


_REGISTERS: dict[int, tuple[Catalogue, _Register]] = {}


def _register(catalogue: Catalogue) -> _Register:
    hit = _REGISTERS.get(id(catalogue))
    if hit is not None and hit[0] is catalogue:
        return hit[1]
    points = dict(catalogue.risk_points)
    sensors_of: dict[str, list[Sensor]] = {}
    for s in catalogue.sensors.values():
        sensors_of.setdefault(s.risk_point_code, []).append(s)
    by_cat_grid: dict[tuple[str, str], list[str]] = {}
    for p in points.values():
        by_cat_grid.setdefault((p.category_code, p.grid_code), []).append(p.code)
    reg = _Register(points, sensors_of, {s.code: s.risk_point_code for s in catalogue.sensors.values()}, by_cat_grid)
    if len(_REGISTERS) > 8:
        _REGISTERS.clear()
    _REGISTERS[id(catalogue)] = (catalogue, reg)
    return reg


class _Inputs:
    def __init__(self, store: Store, catalogue: Catalogue, now: float) -> None:
        self.now = now
        reg = _register(catalogue)
        self.points = reg.points
        self.sensors_of = reg.sensors_of
        sensor_point = reg.sensor_point
        self.latest = store.latest_readings(until=now)
        self.inspections = store.last_inspections(now - LOOKBACK_S, now)
        self.recorded = store.last_risk_grades()
        # open hazards: by sensor (the event's reporter) and by (category, grid)
        self.hazards: dict[str, list[tuple[float, str]]] = {}
        by_cat_grid = reg.by_cat_grid
        for reported_at, number, source, reporter, category_code, grid_code in store.open_event_links():
            if reported_at > now:
                continue
            linked: list[str] = []
            if source == "sensor" and reporter in sensor_point:
                linked.append(sensor_point[reporter])
            elif grid_code:
                linked.extend(by_cat_grid.get((category_code, grid_code), ()))
            for code in linked:
                self.hazards.setdefault(code, []).append((reported_at, number))
        self.candidates: set[str] = set(self.hazards) | set(self.inspections) | set(self.recorded)
        sensors = catalogue.sensors
        for code, (_, value) in self.latest.items():
            sensor = sensors.get(code)
            if sensor is not None and value >= sensor.clear_below:
                self.candidates.add(sensor.risk_point_code)
        self.candidates &= set(self.points)


def _grade(inp: _Inputs, point: RiskPoint) -> Grade:
    register = Colour(point.colour)
    colour, reasons = register, []
    inspected = inp.inspections.get(point.code)
    inspected_at, result = (inspected[0], inspected[1].split(" ", 1)[0]) if inspected else (None, "")
    if inspected_at is not None and result == "ok" and inp.now - inspected_at <= INSPECTION_VALID_S:
        colour = _lower(register)
        if colour != register:
            reasons.append("巡查正常 inspected ok")
    elif result == "hazard":
        colour = _worst(colour, Colour.YELLOW)
        reasons.append("巡查发现隐患 inspection found a hazard")
    for sensor in inp.sensors_of.get(point.code, ()):
        reading = inp.latest.get(sensor.code)
        if reading is None:
            continue
        value = reading[1]
        if value >= sensor.threshold:
            colour = _worst(colour, Colour.RED)
            reasons.append(f"{sensor.code} {value:g}{sensor.unit} ≥ {sensor.threshold:g}")
        elif value >= sensor.clear_below:
            colour = _worst(colour, Colour.YELLOW)
            reasons.append(f"{sensor.code} {value:g}{sensor.unit} ≥ {sensor.clear_below:g}")
    for reported_at, number in inp.hazards.get(point.code, ()):
        if inspected_at is not None and result == "ok" and inspected_at >= reported_at:
            continue  # checked on the spot after it was reported
        colour = _worst(colour, Colour.ORANGE)
        reasons.append(f"在办事件 open {number}")
    return Grade(point.code, colour, register, tuple(reasons), point.owner, inspected_at)


def grades(store: Store, catalogue: Catalogue, now: float, scope_code: str = CITY_CODE) -> dict[str, Grade]:
    """Every risk point inside ``scope_code`` whose grade is not plainly its register grade."""
    inp = _Inputs(store, catalogue, now)
    out = {}
    for code in inp.candidates:
        point = inp.points[code]
        if covers(scope_code, point.grid_code):
            out[code] = _grade(inp, point)
    return out


def grade_of(store: Store, catalogue: Catalogue, now: float, code: str) -> Grade:
    """One point's grade now (``UnknownCode`` for a code not on the register)."""
    from ..errors import UnknownCode

    point = catalogue.risk_points.get(code)
    if point is None:
        raise UnknownCode(f"unknown risk point {code!r}")
    inp = _Inputs(store, catalogue, now)
    return _grade(inp, point)


def counts(store: Store, catalogue: Catalogue, now: float, scope_code: str
           ) -> dict[str, dict[str, int]]:
    """Per category inside a scope: ``points`` on the register, ``high`` (red or orange), ``red``,
    ``inspected`` (inspected within 30 days) and ``records`` (inspected within 90 days: whether
    inspections are recorded here at all) — from the register and the evaluated points."""
    out: dict[str, dict[str, int]] = {}
    for p in catalogue.risk_points.values():
        if covers(scope_code, p.grid_code):
            c = out.setdefault(p.category_code, {"points": 0, "high": 0, "red": 0, "inspected": 0, "records": 0})
            c["points"] += 1
            if Colour(p.colour) in HIGH:
                c["high"] += 1
                c["red"] += Colour(p.colour) is Colour.RED
    for g in grades(store, catalogue, now, scope_code).values():
        c = out[catalogue.risk_points[g.code].category_code]
        was_high, is_high = g.register in HIGH, g.colour in HIGH
        c["high"] += int(is_high) - int(was_high)
        c["red"] += int(g.colour is Colour.RED) - int(g.register is Colour.RED)
        if g.inspected_at is not None:
            c["records"] += 1  # inspected within the 90 days looked back
            c["inspected"] += now - g.inspected_at <= INSPECTION_VALID_S
    return out


def _system(store: Store) -> User:
    return User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)


def refresh(store: Store, catalogue: Catalogue, now: float, actor: User | None = None) -> list[Grade]:
    """Audit each point whose grade differs from its last recorded one (or from its register grade when
    none was recorded). Returns the changed grades. Runs in its own transaction (or the caller's)."""
    actor = actor or _system(store)
    scope = CITY_CODE if store.tier is Tier.CITY else store.code
    current = grades(store, catalogue, now, scope)
    recorded = store.last_risk_grades()
    changed: list[Grade] = []
    with store.tx():
        for code in sorted(set(current) | set(recorded)):
            point = catalogue.risk_points.get(code)
            if point is None or not covers(scope, point.grid_code):
                continue
            g = current.get(code) or Grade(code, Colour(point.colour), Colour(point.colour), (), point.owner)
            before = recorded.get(code, Colour(point.colour).value)
            if g.colour.value == before:
                continue
            note = (f"{before} → {g.colour.value}; " + ("; ".join(g.reasons) or "register grade")
                    + f"; 责任人 {point.owner or '-'}")
            store.append_audit(event_id=code, action="risk_grade", from_status=before, to_status=g.colour.value,
                               actor=actor.user, role=Role(actor.role).value, tier=Tier(actor.tier).value,
                               note=note, at=now, scope=point.grid_code)
            changed.append(g)
    return changed


def inspect(store: Store, catalogue: Catalogue, code: str, result: str, actor: User, now: float,
            note: str = "") -> Grade:
    """Record an inspection (巡查) of a risk point — ``ok`` or ``hazard`` — and refresh the grades."""
    from ..errors import BadInput, PermissionDenied, UnknownCode

    point = catalogue.risk_points.get(code)
    if point is None:
        raise UnknownCode(f"unknown risk point {code!r}")
    if result not in RESULTS:
        raise BadInput(f"unknown inspection result {result!r} (expected {' or '.join(RESULTS)})")
    if not covers(actor.scope_code, point.grid_code):
        raise PermissionDenied(f"{actor.user} may not inspect {code}: outside {actor.scope_code}")
    with store.tx():
        store.append_audit(event_id=code, action="inspect", from_status=None, to_status=None, actor=actor.user,
                           role=Role(actor.role).value, tier=Tier(actor.tier).value,
                           note=f"{result} {note}".strip(), at=now, scope=point.grid_code)
        refresh(store, catalogue, now, actor)
    return grade_of(store, catalogue, now, code)
