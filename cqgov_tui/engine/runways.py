"""Runway colours (跑道): every indicator's value and five-colour light, rolled up to sectors.

``compute_board`` evaluates each indicator's metric (``catalogue.metrics``)
over the events, readings and risk points inside one jurisdiction subtree.
Event metrics come from a few grouped queries per board (counts per
category, first-response times per category), never a loop over events, so
a board over a million events costs what those scans cost. A sub-runway's,
runway's and sector's colour is the worst of its children; an indicator
without data (no readings yet, no responses in the window) has no colour and
does not pull its parents either way.

With ``record=True`` the indicator values are appended to
``indicator_history`` at most once per ``interval_s`` per indicator and
scope; that history gives each indicator its sparkline (last ``points``
values) and its time in red within the last ``window_s``. A parent's time in
red is the union of its red indicators' red intervals.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalogue import Catalogue
from ..catalogue.metrics import Metric, parse_metric
from ..domain.colour import COLOURS, Colour
from ..domain.entities import Indicator, Status, SubRunway
from ..errors import UnknownCode
from ..scope import CITY_CODE, covers
from .lifecycle import position

if TYPE_CHECKING:
    from ..store import Store

RECORD_INTERVAL_S = 300.0
SPARK_POINTS = 24
RED_WINDOW_S = 86400.0
_HIGH_RISK = (Colour.RED, Colour.ORANGE)


@dataclass
class IndicatorNode:
    code: str
    name: str
    unit: str
    metric: str
    value: float | None  # None: no data yet
    colour: Colour | None
    thresholds: tuple[float, ...]
    higher_is_worse: bool
    history: list[float] = field(default_factory=list)  # sparkline values, oldest first, ending now
    time_in_red_s: float = 0.0

    @property
    def time_in_red(self) -> float:
        return self.time_in_red_s


@dataclass
class _Group:
    code: str
    name: str
    colour: Colour | None
    time_in_red_s: float
    counts: dict[str, int]  # indicators beneath per colour (and "none")

    @property
    def time_in_red(self) -> float:
        return self.time_in_red_s


@dataclass
class SubRunwayNode(_Group):
    indicators: list[IndicatorNode] = field(default_factory=list)


@dataclass
class RunwayNode(_Group):
    sub_runways: list[SubRunwayNode] = field(default_factory=list)


@dataclass
class SectorNode(_Group):
    runways: list[RunwayNode] = field(default_factory=list)


@dataclass
class Board:
    scope_code: str
    computed_at: float
    colour: Colour | None
    counts: dict[str, int]
    sectors: list[SectorNode]
    recorded: int = 0  # history points written by this computation

    def sector(self, ref: str) -> SectorNode:
        """A sector by code (``cs``) or name (城市运行)."""
        text = (ref or "").strip()
        for s in self.sectors:
            if text in (s.code, s.name):
                return s
        raise UnknownCode(f"unknown sector {ref!r} (expected one of "
                          f"{', '.join(f'{s.code} {s.name}' for s in self.sectors)})")

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(asdict(self))
        return plain


def _plain(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples) with every ``Colour`` as its value string, tuples as lists."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Colour):
        return obj.value
    return obj


# ---------------------------------------------------------------- metrics


def _positions() -> dict[str, int]:
    """Loop position of each status for "milestone reached"; rejection and merging reach nothing."""
    out = {s.value: position(s) for s in Status}
    out[Status.REJECTED.value] = -1
    out[Status.MERGED.value] = -1
    return out


class _Inputs:
    """Everything the metrics read, fetched once per board with grouped queries."""

    def __init__(self, store: Store, catalogue: Catalogue, now: float, scope_code: str, metrics: list[Metric]) -> None:
        self.catalogue = catalogue
        self.scope = scope_code
        kinds = {m.kind for m in metrics}
        self.counts: dict[str, dict[str, int]] = {}
        self.responses: dict[str, tuple[float, int]] = {}
        if kinds & {"open", "reported_24h", "closed_24h", "overdue_ratio"}:
            self.counts = store.category_event_counts(scope_code, now)
        if "mean_response_min" in kinds:
            first = {p.code: position(p.stages[0].milestone) for p in catalogue.sla_profiles.values() if p.stages}
            self.responses = store.first_response_stats(scope_code, now, first, _positions())
        self.high_risk: dict[str, int] = {}
        if "risk_high" in kinds:
            for rp in catalogue.risk_points.values():
                if Colour(rp.colour) in _HIGH_RISK and covers(scope_code, rp.grid_code):
                    self.high_risk[rp.category_code] = self.high_risk.get(rp.category_code, 0) + 1
        self.sensor_latest: dict[str, list[tuple[float, float]]] = {}  # kind → [(value, threshold)]
        if kinds & {"sensor_max", "sensor_alarms"}:
            latest = store.latest_readings(until=now)
            for code, (_, value) in latest.items():
                sensor = catalogue.sensors.get(code)
                if sensor is None:
                    continue
                point = catalogue.risk_points.get(sensor.risk_point_code)
                if point is not None and covers(scope_code, point.grid_code):
                    self.sensor_latest.setdefault(sensor.kind, []).append((value, sensor.threshold))

    def _cats(self, m: Metric) -> Collection[str]:
        return self.catalogue.categories if m.categories is None else m.categories

    def _sum(self, m: Metric, key: str) -> int:
        return sum(self.counts.get(c, {}).get(key, 0) for c in self._cats(m))

    def value(self, m: Metric) -> float | None:
        if m.kind == "const":
            return m.value
        if m.kind == "open":
            return float(self._sum(m, "open"))
        if m.kind == "reported_24h":
            return float(self._sum(m, "reported"))
        if m.kind == "closed_24h":
            return float(self._sum(m, "closed"))
        if m.kind == "overdue_ratio":
            n = self._sum(m, "open")
            return round(100.0 * self._sum(m, "overdue") / n, 2) if n else 0.0
        if m.kind == "mean_response_min":
            total: float = 0
            n = 0
            for c in self._cats(m):
                s, k = self.responses.get(c, (0.0, 0))
                total, n = total + s, n + k
            return round(total / n, 2) if n else None
        if m.kind == "risk_high":
            return float(sum(self.high_risk.get(c, 0) for c in self._cats(m)))
        readings = self.sensor_latest.get(m.sensor_kind, []) if m.sensor_kind is not None else []
        if m.kind == "sensor_max":
            return max(v for v, _ in readings) if readings else None
        if m.kind == "sensor_alarms":
            return float(sum(v >= t for v, t in readings))
        raise ValueError(f"unknown metric kind {m.kind!r}")


def parse_all(catalogue: Catalogue) -> dict[str, Metric]:
    cats, kinds = catalogue.categories, catalogue.sensor_kinds
    return {code: parse_metric(ind.metric, cats, kinds) for code, ind in catalogue.indicators.items()}


# ---------------------------------------------------------------- board


def compute_board(store: Store, catalogue: Catalogue, now: float, scope_code: str = CITY_CODE, record: bool = False, *,
                  interval_s: float = RECORD_INTERVAL_S, points: int = SPARK_POINTS,
                  window_s: float = RED_WINDOW_S) -> Board:
    """Every indicator of every runway for ``scope_code`` at ``now`` (see the module docstring)."""
    metrics = parse_all(catalogue)
    inputs = _Inputs(store, catalogue, now, scope_code, list(metrics.values()))
    values = {code: inputs.value(m) for code, m in metrics.items()}
    colours = {code: (None if v is None else catalogue.indicators[code].colour(v)) for code, v in values.items()}

    recorded = 0
    if record:
        last = store.indicator_last_recorded(scope_code)
        # A value always has a colour (``colours`` is None only where the value is).
        due = [(code, v, c.value) for code, v in values.items()
               if v is not None and (code not in last or now - last[code] >= interval_s)
               and (c := colours[code]) is not None]
        recorded = store.append_indicator_history(scope_code, now, due)
    series = store.indicator_series(scope_code, points, now)
    red = store.indicator_red_intervals(scope_code, now - window_s, now)

    def indicator(ind: Indicator) -> IndicatorNode:
        pts = series.get(ind.code, [])
        hist = [v for _, v in pts]
        v = values[ind.code]
        if v is not None and (not pts or pts[-1][0] < now):
            hist.append(v)
        return IndicatorNode(ind.code, ind.name, ind.unit, ind.metric, v, colours[ind.code], tuple(ind.thresholds),
                             ind.higher_is_worse, hist[-points:], _length(red.get(ind.code, [])))

    subs_by_runway: dict[str, list[SubRunway]] = {}
    inds_by_sub: dict[str, list[Indicator]] = {}
    for ind in catalogue.indicators.values():
        inds_by_sub.setdefault(ind.sub_runway_code, []).append(ind)
    for sub in catalogue.sub_runways.values():
        subs_by_runway.setdefault(sub.runway_code, []).append(sub)

    sectors: list[SectorNode] = []
    for sector in catalogue.sectors.values():
        runway_nodes = []
        for runway in catalogue.runways_of(sector.code):
            sub_nodes = []
            for sub in subs_by_runway.get(runway.code, []):
                inds = inds_by_sub.get(sub.code, [])
                nodes = [indicator(i) for i in inds]
                sub_nodes.append(SubRunwayNode(sub.code, sub.name, Colour.worst(n.colour for n in nodes if n.colour),
                                               _red_union(red, [i.code for i in inds]), _count(nodes), nodes))
            runway_nodes.append(RunwayNode(runway.code, runway.name, Colour.worst(s.colour for s in sub_nodes if s.colour),
                                           _red_union(red, _codes(sub_nodes)), _sum_counts(sub_nodes), sub_nodes))
        sectors.append(SectorNode(sector.code, sector.name, Colour.worst(r.colour for r in runway_nodes if r.colour),
                                  _red_union(red, [c for r in runway_nodes for c in _codes(r.sub_runways)]),
                                  _sum_counts(runway_nodes), runway_nodes))
    return Board(scope_code, now, Colour.worst(s.colour for s in sectors if s.colour), _sum_counts(sectors), sectors,
                 recorded)


def _codes(subs: list[SubRunwayNode]) -> list[str]:
    return [i.code for s in subs for i in s.indicators]


def _count(nodes: list[IndicatorNode]) -> dict[str, int]:
    out = {c.value: 0 for c in COLOURS} | {"none": 0}
    for n in nodes:
        out[n.colour.value if n.colour else "none"] += 1
    return out


def _sum_counts(groups: Iterable[_Group]) -> dict[str, int]:
    out = {c.value: 0 for c in COLOURS} | {"none": 0}
    for g in groups:
        for k, v in g.counts.items():
            out[k] += v
    return out


def _length(intervals: list[tuple[float, float]]) -> float:
    return float(sum(b - a for a, b in intervals))


def _red_union(red: dict[str, list[tuple[float, float]]], codes: list[str]) -> float:
    """Seconds during which at least one of ``codes`` was red (overlaps counted once)."""
    spans = sorted(span for c in codes for span in red.get(c, ()))
    total, cur_a = 0.0, 0.0
    cur_b: float | None = None  # the current span [cur_a, cur_b], none yet
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return float(total)
