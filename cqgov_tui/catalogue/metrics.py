"""The metric language of runway indicators: how each indicator's value is computed from the store.

A metric is ``<kind>:<argument>[@<window>]``. Every value comes from data in the
store — events, their stage times and audit, call-backs (回访), receipts, sensor
readings, risk-point state, figures fed through 一表通 — evaluated within the
jurisdiction subtree the board is computed for. Where there is nothing to
measure (no readings, no closed events in the window, no call-backs, a figure
never fed) the value is *none*: the board shows "无数据 / no data" in grey and
the indicator pulls no colour up. There is no constant kind: a number typed into
the catalogue is not a measurement.

Event metrics take a target — ``*`` for every category or a comma-separated list
of category codes:

==========================  ======  ============================================================
``open:<T>``                体征    events of T not yet closed/reviewed/merged/rejected (件)
``supervised:<T>``          体征    open events of T under supervision (督办) (件)
``reported_24h:<T>``        体征    events of T reported in the window (件)
``closed_24h:<T>``          KPI     events of T that reached closed in the window (件)
``overdue_ratio:<T>``       KPI     % of open events of T past their current stage's deadline
``mean_response_min:<T>``   KPI     mean minutes from report to the first milestone of the event's
                                    SLA profile, over events of T that reached it in the window
``handle_days:<T>``         KPI     mean days from report to closed, over events of T closed in the
                                    window (平均办理时长)
``ontime_ratio:<T>``        KPI     % of events of T closed in the window before their profile's
                                    closing deadline (按时办结率)
``review_ratio:<T>``        KPI     % of events of T closed in the window that were reviewed (复盘率)
``satisfaction:<T>``        KPI     % of call-backs (回访) on events of T in the window rated 4 or 5
                                    of 5 (满意率)
``callback_ratio:<T>``      KPI     % of events of T closed in the window that have a call-back
==========================  ======  ============================================================

``reported_by:<source>`` (体征) counts events reported in the window by one source
(``grid``, ``citizen``, ``sensor``, ``video``, ``department``, ``upper``).

Risk metrics take a target like event metrics; they count the jurisdiction's
risk points of T (风险点) and their grades computed now (``engine.risk_grades``):

==========================  ======  ============================================================
``risk_high:<T>``           体征    points of T graded red or orange (个)
``risk_red:<T>``            体征    points of T graded red (个)
``risk_points:<T>``         体征    points of T on the register (纳管, 个)
``risk_inspected_ratio:<T>``  KPI   % of points of T inspected in the last 30 days (巡查覆盖率)
==========================  ======  ============================================================

Sensor metrics take a sensor kind (``sensor_kinds.yaml``):

==========================  ======  ============================================================
``sensor_max:<kind>``       体征    highest latest reading among sensors of that kind
``sensor_alarms:<kind>``    体征    sensors of that kind whose latest reading is at/over threshold
``sensor_fresh:<kind>``     KPI     % of sensors of that kind that reported within 15 minutes,
                                    over those that ever reported (数据更新及时率)
==========================  ======  ============================================================

Directive metrics take ``*``:

==========================  ======  ============================================================
``receipts_ack_ratio:*``    KPI     % of receipts of directives sent in the window that were
                                    acknowledged (or executed) by the deadline (消息必达)
``receipts_overdue:*``      体征    receipts past their deadline still unacknowledged (件)
==========================  ======  ============================================================

Grid-task metrics (网格任务, ``people.tasks``) take ``*``:

==========================  ======  ============================================================
``tasks_due:*``             体征    tasks due in the window, cancelled ones aside (件)
``tasks_done:*``            体征    tasks completed in the window (件)
``tasks_overdue:*``         体征    open tasks past their due time now (件)
``tasks_done_ratio:*``      KPI     % of the tasks due in the window that are done (完成率)
``tasks_ontime_ratio:*``    KPI     % of the tasks completed in the window that were completed by
                                    their due time (按时完成率)
==========================  ======  ============================================================

Figures fed through 一表通 or another system (``cqgov kpi feed``) take a figure name:

==========================  ======  ============================================================
``figure:<name>``           体征    sum of the latest value of each jurisdiction in scope that fed it
``figure_mean:<name>``      KPI     mean of those latest values (rates)
``fresh:<prefix>``          KPI     % of the figures named ``<prefix>.*`` fed in scope whose latest
                                    value is under 24 h old
==========================  ======  ============================================================

``@<window>`` (``30m``, ``24h``, ``7d``) sets the window of windowed kinds
(default 24 h), e.g. ``handle_days:*@30d``. Each kind has a default class —
体征 (城市体征, the city's vital signs: states and volumes) or KPI (关键绩效指标:
how well the work is done); a catalogue entry may override it with ``kind``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection

CATEGORY_KINDS = ("open", "supervised", "reported_24h", "closed_24h", "overdue_ratio", "mean_response_min",
                  "handle_days", "ontime_ratio", "review_ratio", "satisfaction", "callback_ratio")
RISK_KINDS = ("risk_high", "risk_red", "risk_points", "risk_inspected_ratio")
EVENT_KINDS = CATEGORY_KINDS + RISK_KINDS  # kinds whose argument is a category target
SENSOR_KINDS = ("sensor_max", "sensor_alarms", "sensor_fresh")
SOURCE_KINDS = ("reported_by",)
DIRECTIVE_KINDS = ("receipts_ack_ratio", "receipts_overdue")
TASK_KINDS = ("tasks_due", "tasks_done", "tasks_overdue", "tasks_done_ratio", "tasks_ontime_ratio")
FIGURE_KINDS = ("figure", "figure_mean", "fresh")
KINDS = EVENT_KINDS + SENSOR_KINDS + SOURCE_KINDS + DIRECTIVE_KINDS + TASK_KINDS + FIGURE_KINDS
WINDOWED = ("reported_24h", "closed_24h", "mean_response_min", "handle_days", "ontime_ratio", "review_ratio",
            "satisfaction", "callback_ratio", "reported_by", "receipts_ack_ratio", "tasks_due", "tasks_done",
            "tasks_done_ratio", "tasks_ontime_ratio")
SOURCES = ("citizen", "grid", "sensor", "video", "department", "upper")
# 城市体征 (vital signs) or KPI (关键绩效指标), by default per kind.
KPI_KINDS = frozenset({"closed_24h", "overdue_ratio", "mean_response_min", "handle_days", "ontime_ratio",
                       "review_ratio", "satisfaction", "callback_ratio", "risk_inspected_ratio", "sensor_fresh",
                       "receipts_ack_ratio", "figure_mean", "fresh", "tasks_done_ratio", "tasks_ontime_ratio"})
VITAL, KPI = "vital", "kpi"
DEFAULT_WINDOW_S = 86400.0
_WINDOW = re.compile(r"^(\d+)(m|h|d)$")
_UNIT_S = {"m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Metric:
    kind: str
    categories: tuple[str, ...] | None = None  # None means every category ("*")
    sensor_kind: str | None = None
    name: str | None = None  # a source, a figure name or a figure prefix
    window_s: float = DEFAULT_WINDOW_S
    window: str = ""  # as written (``7d``), empty for the default

    @property
    def default_class(self) -> str:
        return KPI if self.kind in KPI_KINDS else VITAL

    def __str__(self) -> str:
        if self.kind in SENSOR_KINDS:
            arg = self.sensor_kind or ""
        elif self.kind in SOURCE_KINDS + FIGURE_KINDS:
            arg = self.name or ""
        elif self.kind in DIRECTIVE_KINDS + TASK_KINDS:
            arg = "*"
        else:
            arg = "*" if self.categories is None else ",".join(self.categories)
        return f"{self.kind}:{arg}" + (f"@{self.window}" if self.window else "")


def parse_window(text: str) -> float:
    """``30m`` / ``24h`` / ``7d`` → seconds; ValueError with a reason otherwise."""
    m = _WINDOW.match((text or "").strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"window {text!r} is not a positive number of m, h or d (e.g. 30m, 24h, 7d)")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def parse_metric(text: str, categories: Collection[str] | None = None,
                 sensor_kinds: Collection[str] | None = None) -> Metric:
    """Parse ``text``; with ``categories``/``sensor_kinds`` given, references must be among them.

    Raises ``ValueError`` with a reason fit for a one-line message.
    """
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"metric {text!r} is not <kind>:<argument> (kinds: {', '.join(KINDS)})")
    kind, _, arg = text.partition(":")
    kind, arg = kind.strip(), arg.strip()
    if kind == "const":
        raise ValueError(f"metric {text!r}: constants are not measurements; compute the indicator from data "
                         f"(a figure fed through 一表通 is figure:<name>)")
    if kind not in KINDS:
        raise ValueError(f"unknown metric kind {kind!r} (kinds: {', '.join(KINDS)})")
    window, window_s = "", DEFAULT_WINDOW_S
    if "@" in arg:
        arg, _, window = arg.partition("@")
        arg, window = arg.strip(), window.strip()
        if kind not in WINDOWED:
            raise ValueError(f"metric {text!r}: {kind} takes no window")
        window_s = parse_window(window)
    if not arg:
        raise ValueError(f"metric {text!r} has no argument")
    if kind in SENSOR_KINDS:
        if sensor_kinds is not None and arg not in sensor_kinds:
            raise ValueError(f"unknown sensor kind {arg!r} in metric {text!r}")
        return Metric(kind, sensor_kind=arg, window_s=window_s, window=window)
    if kind in SOURCE_KINDS:
        if arg not in SOURCES:
            raise ValueError(f"unknown source {arg!r} in metric {text!r} (sources: {', '.join(SOURCES)})")
        return Metric(kind, name=arg, window_s=window_s, window=window)
    if kind in FIGURE_KINDS:
        if not _NAME.match(arg):
            raise ValueError(f"figure name {arg!r} in metric {text!r} may hold only letters, digits, . _ -")
        return Metric(kind, name=arg)
    if kind in DIRECTIVE_KINDS + TASK_KINDS:
        if arg != "*":
            raise ValueError(f"metric {text!r}: {kind} takes '*'")
        return Metric(kind, window_s=window_s, window=window)
    if arg == "*":
        return Metric(kind, categories=None, window_s=window_s, window=window)
    codes = tuple(c.strip() for c in arg.split(","))
    for code in codes:
        if not code:
            raise ValueError(f"empty category in metric {text!r}")
        if categories is not None and code not in categories:
            raise ValueError(f"unknown category {code!r} in metric {text!r}")
    if len(set(codes)) != len(codes):
        raise ValueError(f"category listed twice in metric {text!r}")
    return Metric(kind, categories=codes, window_s=window_s, window=window)
