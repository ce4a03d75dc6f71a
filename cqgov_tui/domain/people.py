"""People and their work, each declared once: the roster, grid tasks (网格任务) and notifications to people.

The seeds' system runs on people — 网格员 online with their positions, SMS to
a building's 消防安全责任人 and a street's 防汛责任人, 33,649 grid tasks a
quarter in 谢家湾街道 — so these are stored entities like events: their DuckDB
DDL, Arrow schema and wire fields come from these declarations
(``domain.schema``), and they replicate scoped by jurisdiction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .schema import table


class PersonStatus(str, enum.Enum):
    """What a person's client last reported (the demo simulates it)."""

    ON_DUTY = "on_duty"
    BUSY = "busy"
    OFF = "off"


class TaskStatus(str, enum.Enum):
    ASSIGNED = "assigned"  # 已派发
    ACCEPTED = "accepted"  # 已签收
    ON_SCENE = "on_scene"  # 已到场 (event tasks)
    DONE = "done"  # 已完成
    CANCELLED = "cancelled"


class Channel(str, enum.Enum):
    INBOX = "inbox"  # the console's inbox for the logged-in user
    EMAIL = "email"
    WEBHOOK = "webhook"  # HTTP POST of JSON: the bridge to 渝快政, SMS gateways, chat


# Extra responsibilities a roster row may carry beside its role (CSV column ``duties``).
DUTIES = {"flood": "防汛责任人", "fire_safety": "消防安全责任人", "building": "楼栋长"}


@table("people", key=("user",))
@dataclass
class Person:
    user: str  # the login (a token's user)
    name: str
    role: str  # a ``Role`` value
    department: str | None
    jurisdiction: str  # the code they answer for: a grid for a 网格员, a street, a district, 500000
    phone: str
    email: str
    on_duty: str  # "yes", "no" or a shift name (see ``people.roster.SHIFTS``)
    rotation: int  # order in the on-call rotation of their role and jurisdiction (0 first)
    duties: list[str]  # extra responsibilities: flood (防汛责任人), fire_safety …
    status: str  # ``PersonStatus`` value, as the person's client last reported
    lon: float | None  # last known position
    lat: float | None
    seen_at: float | None  # when status or position was last reported
    updated_at: float
    version: int


@table("duty_overrides", key=("id",))
@dataclass
class DutyOverride:
    """Someone covering a role in a jurisdiction for a while (swap, sick leave): first in its rotation.
    Replicated like roster rows (scoped by jurisdiction); ``id`` is role/jurisdiction/start, so setting the
    same cover again replaces it."""

    id: str
    role: str
    jurisdiction: str
    user: str
    starts_at: float
    ends_at: float
    set_by: str
    origin_node: str
    version: int


@table("tasks", key=("id",))
@dataclass
class Task:
    id: str
    kind: str  # periodic (周期性任务) | adhoc (临时性任务) | event (an event dispatched to a person)
    template: str | None  # the periodic task's template code
    event_id: str | None  # kind "event": the event this person works on
    day: str | None  # periodic: local date YYYYMMDD it belongs to
    district_code: str
    street_code: str | None
    grid_code: str | None
    target: str | None  # what it inspects: a risk point code (风险点巡检), else None
    title: str
    assignee: str | None  # a roster user
    status: str  # ``TaskStatus`` value
    created_at: float
    due_at: float | None
    accepted_at: float | None
    done_at: float | None
    finding: str | None  # an inspection's outcome: ok | hazard (a hazard raises the risk point's grade)
    note: str
    photo: str | None  # content hash of an attachment
    created_by: str
    origin_node: str
    version: int


@table("notifications", key=("id",))
@dataclass
class Notification:
    """One message to one person on one channel; the table is its own outbox (``notify.service``)."""

    id: str
    message_key: str  # one message; (message_key, recipient, channel) is unique: exactly once each
    recipient: str  # roster user
    channel: str  # ``Channel`` value
    address: str  # e-mail address or webhook URL ('' for the inbox)
    subject: str
    body: str
    ref: str  # the event, directive or task it concerns (its timeline shows every attempt)
    priority: str  # urgent | high | normal
    needs_ack: bool
    state: str  # pending | sent | failed | acked | escalated
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    created_at: float
    sent_at: float | None
    acked_at: float | None
    acked_by: str | None
    step: int  # escalation step: 0 the first person of the rotation, then the next, then the duty chief
    role: str | None  # the role (or duty) the message was for: escalation walks its rotation
    place: str  # the jurisdiction whose rotation answers
    scope: str  # the recipient's jurisdiction (replication scope)
    origin_node: str
    version: int
