"""Every entity of the domain, each declared exactly once.

Stored entities carry ``@table``; their DuckDB DDL and Arrow schema are
derived in ``schema``. Catalogue entities (categories, runways, plans…) are
loaded from ``fixtures/`` and live in memory.

Times are UTC epoch seconds (float): the engine runs on an injectable clock,
deadlines are plain arithmetic, and the wire format needs no time zones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .colour import Colour
from .schema import table


class Tier(str, enum.Enum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"

    @property
    def zh(self) -> str:
        return {"city": "市", "district": "区县", "street": "镇街"}[self.value]

    @property
    def upper(self) -> "Tier | None":
        return {"street": Tier.DISTRICT, "district": Tier.CITY, "city": None}[self.value]


class Level(str, enum.Enum):
    """Jurisdiction levels; grids sit below the street tier's centres."""

    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    GRID = "grid"


class Role(str, enum.Enum):
    DUTY_OFFICER = "duty_officer"  # 值班长
    DISPATCHER = "dispatcher"  # 调度员
    DEPARTMENT = "department"  # 职能部门
    GRID_WORKER = "grid_worker"  # 网格员
    AUDITOR = "auditor"  # 考核监督
    ADMIN = "admin"

    @property
    def zh(self) -> str:
        return {
            "duty_officer": "值班长",
            "dispatcher": "调度员",
            "department": "职能部门",
            "grid_worker": "网格员",
            "auditor": "考核监督",
            "admin": "管理员",
        }[self.value]


class Status(str, enum.Enum):
    """The closed loop 感知发现 → 决策指挥 → 反应处置 → 终端反馈, plus side exits."""

    REPORTED = "reported"
    VERIFIED = "verified"
    ASSESSED = "assessed"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    ON_SCENE = "on_scene"
    DISPOSED = "disposed"
    FEEDBACK = "feedback"
    CLOSED = "closed"
    REVIEWED = "reviewed"
    MERGED = "merged"
    REJECTED = "rejected"
    ESCALATED = "escalated"

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL

    @property
    def zh(self) -> str:
        return _STATUS_ZH[self]


TERMINAL = frozenset({Status.CLOSED, Status.REVIEWED, Status.MERGED, Status.REJECTED})
# The closed loop in order; SLA milestones and rule checks count positions along it.
LOOP: tuple[Status, ...] = (
    Status.REPORTED, Status.VERIFIED, Status.ASSESSED, Status.DISPATCHED, Status.ACCEPTED,
    Status.ON_SCENE, Status.DISPOSED, Status.FEEDBACK, Status.CLOSED, Status.REVIEWED,
)
_STATUS_ZH = {
    Status.REPORTED: "已上报",
    Status.VERIFIED: "已核实",
    Status.ASSESSED: "已研判",
    Status.DISPATCHED: "已派遣",
    Status.ACCEPTED: "已签收",
    Status.ON_SCENE: "已到场",
    Status.DISPOSED: "已处置",
    Status.FEEDBACK: "已反馈",
    Status.CLOSED: "已办结",
    Status.REVIEWED: "已复盘",
    Status.MERGED: "已合并",
    Status.REJECTED: "已驳回",
    Status.ESCALATED: "已上提",
}


class Source(str, enum.Enum):
    CITIZEN = "citizen"  # 市民热线 12345 / 渝快办
    GRID = "grid"  # 网格员巡查
    SENSOR = "sensor"  # 物联感知
    VIDEO = "video"  # 视频 AI
    DEPARTMENT = "department"
    UPPER = "upper"  # 上级交办


class ReceiptState(str, enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    READ = "read"
    ACKNOWLEDGED = "acknowledged"
    EXECUTED = "executed"


# ---------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    name: str
    level: Level
    parent_code: str | None
    households: int
    population: int
    lon: float  # label anchor, inside the shape
    lat: float
    geometry_ref: str  # where the shape lives: "district:<adcode>", "street:<code>", "grid:<street>/<i>,<j>"
    kind: str = ""  # 区 / 县 / 功能区 / 街道 / 镇 / 乡 / 网格


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    short: str


@dataclass(frozen=True)
class SlaStage:
    label: str  # e.g. "respond" / 响应
    label_zh: str
    milestone: Status  # the status the event must have reached…
    minutes: float  # …within this many minutes of being reported


@dataclass(frozen=True)
class SlaProfile:
    """Deadlines per stage, counted from the event's report time, in loop order.

    The grid profile of 菩提街道 is respond 1 min (verified), on scene 5 min,
    report back 10 min (feedback); fire is react 1, verify 3, dispose 5.
    """

    code: str
    name: str
    stages: tuple[SlaStage, ...]
    # Minutes an overdue event waits before each supervision step (tier above, then the city); () = at once
    escalate_after: tuple[float, ...] = ()

    def minutes(self, milestone: "Status | str") -> float | None:
        for st in self.stages:
            if st.milestone == milestone or st.milestone.value == milestone:
                return st.minutes
        return None


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    department_code: str
    co_departments: tuple[str, ...]
    default_colour: Colour
    sla_profile: str
    sector_code: str
    scope: str = "grid"  # "grid" for local events, "district" for area-wide ones (flood warning)
    covers: tuple[str, ...] = ()  # a district-scope category inhibits alerts of these categories beneath it


@dataclass(frozen=True)
class Indicator:
    code: str
    name: str
    sub_runway_code: str
    unit: str
    metric: str  # how it is computed from events/readings, e.g. "open_count:c12"
    thresholds: tuple[float, float, float, float]  # green|blue|yellow|orange|red boundaries
    higher_is_worse: bool = True
    kind: str = "vital"  # "vital" 城市体征 (states, volumes) or "kpi" 关键绩效指标 (how well the work is done)
    places: tuple[str, ...] = ()  # jurisdictions whose boards show it (and everything inside them); () = all

    def colour(self, value: float) -> Colour:
        """Five-colour rule: the value crosses thresholds towards red."""
        t = self.thresholds
        if self.higher_is_worse:
            steps = sum(value >= x for x in t)
        else:
            steps = sum(value <= x for x in t)
        return (Colour.GREEN, Colour.BLUE, Colour.YELLOW, Colour.ORANGE, Colour.RED)[steps]


@dataclass(frozen=True)
class SubRunway:
    code: str
    name: str
    runway_code: str
    places: tuple[str, ...] = ()  # a 特色子跑道 of these jurisdictions only; () = every jurisdiction


@dataclass(frozen=True)
class Runway:
    code: str
    name: str
    sector_code: str


@dataclass(frozen=True)
class Sector:
    code: str
    name: str


@dataclass(frozen=True)
class RiskPoint:
    code: str
    name: str
    category_code: str
    grid_code: str
    lon: float
    lat: float
    colour: Colour  # the register's inherent grade (固有风险); the live grade is engine.risk_grades'
    owner: str = ""  # 责任人: who answers for the point


@dataclass(frozen=True)
class Sensor:
    code: str
    kind: str  # methane, water_level, smoke…
    risk_point_code: str
    unit: str
    threshold: float  # a reading at or above opens an alarm
    clear_below: float  # readings back under this close it (hysteresis)


@dataclass(frozen=True)
class SensorKind:
    """A kind of IoT sensor: its unit, alarm threshold and the event category an alarm opens."""

    code: str  # methane, water_level, smoke…
    name: str
    unit: str
    threshold: float  # a reading at or above opens an alarm event
    clear_below: float  # readings back under this close the alarm (hysteresis)
    category_code: str  # what the sensor watches for; an alarm opens an event of its risk point's category
    bands: tuple[float, float, float, float]  # five-colour boundaries for sensor_max indicators
    also: tuple[str, ...] = ()  # other categories of risk point this kind may watch (water level at an underpass)

    def serves(self, category_code: str) -> bool:
        return category_code == self.category_code or category_code in self.also


@dataclass(frozen=True)
class User:
    user: str
    name: str
    role: Role
    tier: Tier
    scope_code: str  # the jurisdiction subtree this user may see and act in
    department: str | None = None  # a department user's own department code (cgj, yjj …), for directive audiences


# ---------------------------------------------------------------- stored


@table("events", key=("id",))
@dataclass
class Event:
    id: str
    number: str  # human number shown to dispatchers, e.g. NA-20261123-0042
    city_code: str
    district_code: str
    street_code: str | None
    grid_code: str | None
    category_code: str
    colour: str
    status: str
    title: str
    text: str
    lon: float | None
    lat: float | None
    address: str
    source: str
    reporter: str
    assignee: str | None  # owning department code once dispatched
    departments: list[str]  # co-departments
    sla_profile: str
    reported_at: float
    stage_started_at: float
    due_at: float | None  # deadline of the current stage
    closed_at: float | None
    updated_at: float
    escalation_level: int  # 0 = own tier; each overdue step raises supervision one tier
    supervised_by: str | None  # tier supervising (督办)
    parent_id: str | None  # master of a 多跨 event
    merged_into: str | None
    duplicate_of: str | None  # flagged merge candidate awaiting a dispatcher
    inhibited_by: str | None  # a district-level event covering this one (alert suppressed)
    plan_code: str | None  # smart plan that acted on it
    origin_tier: str
    origin_node: str
    version: int


@table("audit_log", key=("seq",))
@dataclass
class AuditEntry:
    seq: int  # gapless, 1-based
    acted_at: float
    event_id: str
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    role: str
    tier: str
    node: str
    note: str
    prev_hash: str
    hash: str


@table("directives", key=("id",))
@dataclass
class Directive:
    id: str
    number: str
    origin_tier: str
    origin_code: str
    title: str
    text: str
    priority: str  # 特急 urgent / 加急 high / 平急 normal
    targets: list[str]  # jurisdiction, department or role codes
    require_ack: bool
    deadline_at: float
    created_at: float
    created_by: str
    version: int


@table("receipts", key=("directive_id", "jurisdiction_code"))
@dataclass
class Receipt:
    directive_id: str
    jurisdiction_code: str
    state: str
    delivered_at: float | None
    read_at: float | None
    acknowledged_at: float | None
    executed_at: float | None
    actor: str | None
    renotified: int
    version: int


@table("sensor_readings", key=("sensor_code", "measured_at"))
@dataclass
class SensorReading:
    sensor_code: str
    measured_at: float
    value: float


@table("sensor_state", key=("sensor_code",))
@dataclass
class SensorState:
    """Per sensor: its latest reading and its alarm episode (see ``store.sensors``)."""

    sensor_code: str
    last_at: float | None  # latest stored reading, None while it has sent none
    last_value: float | None
    event_id: str | None  # the latest sensor event this sensor reported (ordered by reported_at, id)
    event_at: float | None  # that event's reported_at
    episode_event_id: str | None  # = event_id while its alarm runs (no ``alarm_clear`` entry yet), else None


@table("sensor_state_gen", key=())
@dataclass
class SensorStateGen:
    """One row: generations of the sensor state (see ``store.sensors``)."""

    gen: int  # bumped by every ingest batch
    folded_gen: int  # the generation sensor_state's last_at/last_value were last written at
    seq: int  # change-log seq the episodes have followed up to


@table("sensor_rollup", key=("sensor_code", "bucket_start"))
@dataclass
class SensorRollup:
    """Readings older than the retention window, summarised per sensor and time bucket."""

    sensor_code: str
    bucket_start: float
    bucket_s: float
    n: int
    min: float
    max: float
    mean: float


@table("indicator_history", key=("indicator_code", "scope_code", "measured_at"))
@dataclass
class IndicatorValue:
    indicator_code: str
    scope_code: str
    measured_at: float
    value: float
    colour: str


@table("figures", key=("name", "scope_code", "measured_at"))
@dataclass
class FigureValue:
    """A figure a form (一表通) or another system reported for a jurisdiction (``figure:<name>`` metrics)."""

    name: str
    scope_code: str
    measured_at: float
    value: float
    source: str


@table("open311_requests", key=("event_id",))
@dataclass
class ServiceRequestIntake:
    """What an Open311 GeoReport v2 POST carried beyond its event (kept at the intake tier only)."""

    event_id: str
    token: str  # the request's Open311 token (answers tokens/{token})
    service_code: str
    media_url: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    device_id: str | None
    account_id: str | None
    api_user: str  # the token holder that posted it (a 12345 hotline, an app)
    requested_at: float


@dataclass(frozen=True)
class SmartPlan:
    """智能预案: a rule that matches events and acts on them (see engine.plans)."""

    code: str
    name: str
    categories: tuple[str, ...]
    colours: tuple[str, ...] = ()
    places: tuple[str, ...] = ()  # jurisdiction code prefixes
    near_risk_km: float | None = None
    hours: tuple[int, int] | None = None  # local hours [from, to)
    auto_sign: bool = False
    dispatch: bool = False
    co_departments: tuple[str, ...] = ()
    sla_profile: str | None = None
    notify_roles: tuple[str, ...] = ()
    open_multi: tuple[str, ...] = ()  # 多跨: sub-task per listed jurisdiction/department
    source: str = field(default="", compare=False)  # file:line, for error messages
