"""Runway colours (跑道): every indicator's value and five-colour light, rolled up to sectors.

``compute_board`` evaluates each indicator's metric (``catalogue.metrics``)
over the events, readings and risk points inside one jurisdiction subtree.
Event metrics come from a few grouped queries per board (counts per
category, first-response times per category), never a loop over events, so
a board over a million events costs what those scans cost. A sub-runway's,
runway's and sector's colour is the worst of its children; an indicator
without data (no readings yet, no responses in the window, a figure never
fed) has no value and no colour — "无数据 / no data", grey — and does not pull
its parents either way.

Each jurisdiction sees its own set: a 特色子跑道 only on the boards of its
places (and inside them), a sensor or risk indicator only where the scope has
such sensors or risk points; branches left empty are omitted. Every indicator
is 城市体征 (``vital``) or KPI (``kpi``), shown apart by the console and the CLI.

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
from ..catalogue.metrics import FIGURE_KINDS, RISK_KINDS, SENSOR_KINDS, TASK_KINDS, Metric, parse_metric
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
SENSOR_FRESH_S = 15 * 60.0  # a sensor reporting every 5 minutes has missed three readings
FIGURE_FRESH_S = 86400.0  # figures fed through 一表通 are daily


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
    kind: str = "vital"  # "vital" 城市体征 or "kpi" 关键绩效指标

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
    """Everything the metrics read, fetched once per board with grouped queries (one per kind of input
    and window, never a loop over events)."""

    def __init__(self, store: Store, catalogue: Catalogue, now: float, scope_code: str, metrics: list[Metric]) -> None:
        self.catalogue = catalogue
        self.scope = scope_code
        self.now = now
        kinds = {m.kind for m in metrics}
        windows = {m.window_s for m in metrics}
        self.counts: dict[float, dict[str, dict[str, int]]] = {}
        self.responses: dict[float, dict[str, tuple[float, int]]] = {}
        self.closed: dict[float, dict[str, dict[str, float]]] = {}
        self.callbacks: dict[float, dict[str, tuple[int, int]]] = {}
        self.sources: dict[float, dict[str, int]] = {}
        self.receipts: dict[float, dict[str, int]] = {}
        self.tasks: dict[float, dict[str, Any]] = {}
        self.supervised: dict[str, int] = {}
        for w in windows:
            ms = [m for m in metrics if m.window_s == w]
            k = {m.kind for m in ms}
            if k & {"open", "reported_24h", "closed_24h", "overdue_ratio"}:
                self.counts[w] = store.category_event_counts(scope_code, now, w)
            if "mean_response_min" in k:
                first = {p.code: position(p.stages[0].milestone) for p in catalogue.sla_profiles.values() if p.stages}
                self.responses[w] = store.first_response_stats(scope_code, now, first, _positions(), w)
            if k & {"handle_days", "ontime_ratio", "review_ratio", "callback_ratio"}:
                close = {p.code: m for p in catalogue.sla_profiles.values()
                         if (m := p.minutes(Status.CLOSED)) is not None}
                self.closed[w] = store.closed_event_stats(scope_code, now, w, close)
            if "satisfaction" in k:
                self.callbacks[w] = store.callback_stats(scope_code, now, w)
            if "reported_by" in k:
                self.sources[w] = store.reported_by_source(scope_code, now, w)
            if k & {"receipts_ack_ratio", "receipts_overdue"}:
                self.receipts[w] = store.receipt_stats(scope_code, now, w)
            if k & set(TASK_KINDS):
                self.tasks[w] = store.task_figures(scope_code, now - w, now)
        if "supervised" in kinds:
            self.supervised = store.open_supervised_counts(scope_code, now)
        self.risk: dict[str, dict[str, int]] = {}
        if kinds & set(RISK_KINDS):
            from .risk_grades import counts as risk_counts

            self.risk = risk_counts(store, catalogue, now, scope_code)
        self.sensor_latest: dict[str, list[tuple[float, float, float]]] = {}  # kind → [(at, value, threshold)]
        self.sensor_count: dict[str, int] = {}  # kind → sensors in scope
        if kinds & set(SENSOR_KINDS):
            latest = store.latest_readings(until=now)
            for sensor in catalogue.sensors.values():
                point = catalogue.risk_points.get(sensor.risk_point_code)
                if point is None or not covers(scope_code, point.grid_code):
                    continue
                self.sensor_count[sensor.kind] = self.sensor_count.get(sensor.kind, 0) + 1
                reading = latest.get(sensor.code)
                if reading is not None:
                    self.sensor_latest.setdefault(sensor.kind, []).append((reading[0], reading[1], sensor.threshold))
        self.figures: dict[str, list[tuple[str, float, float]]] = {}
        if kinds & set(FIGURE_KINDS):
            self.figures = store.latest_figures(scope_code, now)

    def _cats(self, m: Metric) -> Collection[str]:
        return self.catalogue.categories if m.categories is None else m.categories

    def _sum(self, m: Metric, key: str) -> int:
        counts = self.counts.get(m.window_s, {})
        return sum(counts.get(c, {}).get(key, 0) for c in self._cats(m))

    def _closed(self, m: Metric, key: str) -> float:
        closed = self.closed.get(m.window_s, {})
        return sum(closed.get(c, {}).get(key, 0.0) for c in self._cats(m))

    def _risk(self, m: Metric, key: str) -> int:
        return sum(self.risk.get(c, {}).get(key, 0) for c in self._cats(m))

    def applies(self, m: Metric) -> bool:
        """Whether the scope can have data for ``m`` at all: a jurisdiction without sensors of a kind or
        risk points of a category does not show their indicators (each sees its own set)."""
        if m.kind in SENSOR_KINDS:
            return self.sensor_count.get(m.sensor_kind or "", 0) > 0
        if m.kind in RISK_KINDS:
            return self._risk(m, "points") > 0
        return True

    def value(self, m: Metric) -> float | None:
        """The metric's value now; None where there is nothing to measure (never a made-up number)."""
        k = m.kind
        if k == "open":
            return float(self._sum(m, "open"))
        if k == "supervised":
            return float(sum(self.supervised.get(c, 0) for c in self._cats(m)))
        if k == "reported_24h":
            return float(self._sum(m, "reported"))
        if k == "closed_24h":
            if not (self._sum(m, "reported") or self._sum(m, "closed") or self._sum(m, "open")):
                return None  # nothing reported, open or closed: nothing to measure
            return float(self._sum(m, "closed"))
        if k == "overdue_ratio":
            n = self._sum(m, "open")
            return _pct(self._sum(m, "overdue"), n)
        if k == "mean_response_min":
            responses = self.responses.get(m.window_s, {})
            total, n = 0.0, 0
            for c in self._cats(m):
                s, cnt = responses.get(c, (0.0, 0))
                total, n = total + s, n + cnt
            return round(total / n, 2) if n else None
        if k == "handle_days":
            closed = self._closed(m, "n")
            return round(self._closed(m, "days") / closed, 2) if closed else None
        if k in ("ontime_ratio", "review_ratio", "callback_ratio"):
            key = {"ontime_ratio": "ontime", "review_ratio": "reviewed", "callback_ratio": "called"}[k]
            return _pct(self._closed(m, key), self._closed(m, "n"))
        if k == "satisfaction":
            cb = self.callbacks.get(m.window_s, {})
            n = sum(cb.get(c, (0, 0))[0] for c in self._cats(m))
            return _pct(sum(cb.get(c, (0, 0))[1] for c in self._cats(m)), n)
        if k == "reported_by":
            return float(self.sources.get(m.window_s, {}).get(m.name or "", 0))
        if k == "receipts_ack_ratio":
            r = self.receipts.get(m.window_s, {})
            return _pct(r.get("acked", 0), r.get("sent", 0))
        if k == "receipts_overdue":
            return float(self.receipts.get(m.window_s, {}).get("overdue", 0))
        if k in TASK_KINDS:
            t = self.tasks.get(m.window_s, {})
            if k == "tasks_overdue":
                return float(t.get("overdue", 0))
            if k == "tasks_done_ratio":
                return _pct(t.get("done", 0), t.get("total", 0))
            if k == "tasks_ontime_ratio":
                return _pct(t.get("on_time_in", 0), t.get("done_in", 0))
            if not (t.get("total") or t.get("done_in") or t.get("overdue")):
                return None  # no task due, done or overdue here: nothing to measure
            return float(t.get("total", 0) if k == "tasks_due" else t.get("done_in", 0))
        if k in RISK_KINDS:
            if not self.applies(m):
                return None
            if k == "risk_inspected_ratio":
                if not self._risk(m, "records"):
                    return None  # no inspection recorded here in 90 days: nothing to measure yet
                return _pct(self._risk(m, "inspected"), self._risk(m, "points"))
            return float(self._risk(m, {"risk_high": "high", "risk_red": "red", "risk_points": "points"}[k]))
        if k in SENSOR_KINDS:
            readings = self.sensor_latest.get(m.sensor_kind or "", [])
            if not readings:
                return None  # no sensor of the kind has reported in scope
            if k == "sensor_max":
                return max(v for _, v, _ in readings)
            if k == "sensor_alarms":
                return float(sum(v >= t for _, v, t in readings))
            return _pct(sum(self.now - at <= SENSOR_FRESH_S for at, _, _ in readings), len(readings))
        if k in ("figure", "figure_mean"):
            fed = self.figures.get(m.name or "", [])
            if not fed:
                return None
            total = sum(v for _, _, v in fed)
            return round(total / len(fed), 2) if k == "figure_mean" else total
        if k == "fresh":
            prefix = f"{m.name}."
            times = [at for name, rows in self.figures.items() if name.startswith(prefix) for _, at, _ in rows]
            return _pct(sum(self.now - at <= FIGURE_FRESH_S for at in times), len(times))
        raise ValueError(f"unknown metric kind {k!r}")


def _pct(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def shown_in(places: tuple[str, ...], scope_code: str) -> bool:
    """An indicator (or 特色子跑道) of ``places`` is on the boards of those jurisdictions and everything
    inside them; one without places is on every board."""
    return not places or any(covers(p, scope_code) for p in places)


def parse_all(catalogue: Catalogue) -> dict[str, Metric]:
    cats, kinds = catalogue.categories, catalogue.sensor_kinds
    return {code: parse_metric(ind.metric, cats, kinds) for code, ind in catalogue.indicators.items()}


# ---------------------------------------------------------------- board


def compute_board(store: Store, catalogue: Catalogue, now: float, scope_code: str = CITY_CODE, record: bool = False, *,
                  interval_s: float = RECORD_INTERVAL_S, points: int = SPARK_POINTS,
                  window_s: float = RED_WINDOW_S) -> Board:
    """Every indicator of every runway for ``scope_code`` at ``now`` (see the module docstring)."""
    metrics = {code: m for code, m in parse_all(catalogue).items()
               if shown_in(catalogue.indicators[code].places, scope_code)}
    inputs = _Inputs(store, catalogue, now, scope_code, list(metrics.values()))
    metrics = {code: m for code, m in metrics.items() if inputs.applies(m)}
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
                             ind.higher_is_worse, hist[-points:], _length(red.get(ind.code, [])), ind.kind)

    subs_by_runway: dict[str, list[SubRunway]] = {}
    inds_by_sub: dict[str, list[Indicator]] = {}
    for ind in catalogue.indicators.values():
        if ind.code in metrics:
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
                if not inds:
                    continue  # nothing this jurisdiction can measure there
                nodes = [indicator(i) for i in inds]
                sub_nodes.append(SubRunwayNode(sub.code, sub.name, Colour.worst(n.colour for n in nodes if n.colour),
                                               _red_union(red, [i.code for i in inds]), _count(nodes), nodes))
            if not sub_nodes:
                continue
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
