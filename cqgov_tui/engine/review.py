"""Reviews (复盘): a draft after-action review of a closed event, generated from its audit trail.

The draft gives the timeline (every audit entry: when, action, state change,
actor, role, tier, note), each SLA stage of the event's profile with its
deadline, when its milestone was reached, the time spent in the stage against
the time allowed and whether it was late, who acted, the supervision (督办)
and escalation episodes, and related events (merged into it, duplicates,
多跨 parent and sub-tasks, events it inhibited, same category nearby within
an hour). A person edits it into the final review; the ``review`` action
records that it was done.

Stage arithmetic: deadlines count from the report time (``reported_at +
minutes``); a stage's allowance is its deadline minus the previous stage's;
its time spent runs from when the previous milestone was reached (the report
for the first) to when its own was. A stage is *late* when its milestone was
reached after its deadline; it can also be *over its allowance* without being
late when earlier stages finished early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalogue import Catalogue
from ..clock import fmt_duration, fmt_local
from ..domain.entities import AuditEntry, Event, SlaProfile, Status
from ..errors import BadInput
from ..textsafe import plain
from .lifecycle import position
from .sla import StageClock

if TYPE_CHECKING:
    from ..store import Store

REVIEWABLE = frozenset({Status.CLOSED.value, Status.REVIEWED.value})
RELATED_WINDOW_S = 3600.0
RELATED_BOX_DEG = 0.01  # about 1 km in Chongqing
_NOT_REACHED = frozenset({Status.MERGED.value, Status.REJECTED.value})


@dataclass
class TimelineEntry:
    at: float
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    role: str
    tier: str
    note: str


@dataclass
class StageReview:
    label: str
    label_zh: str
    milestone: str
    deadline_at: float
    reached_at: float | None
    reached_by: str | None  # actor of the entry that reached the milestone
    spent_s: float | None
    allowed_s: float
    late: bool
    late_by_min: float  # 0 when on time
    over_allowance: bool


@dataclass
class Supervision:
    at: float
    kind: str  # supervise (超时督办) or escalate (上提)
    by: str  # tier now supervising / the actor who escalated
    note: str
    ended_at: float | None  # the next milestone reached after it (None: never)


@dataclass
class Related:
    relation: str
    id: str
    number: str
    category_code: str
    status: str
    reported_at: float
    title: str


@dataclass
class Review:
    event_id: str
    number: str
    title: str
    category_code: str
    category_name: str
    sla_profile: str
    sla_name: str
    status: str
    colour: str
    address: str
    source: str
    reporter: str
    reported_at: float
    closed_at: float | None
    total_s: float | None
    escalation_level: int
    timeline: list[TimelineEntry]
    stages: list[StageReview]
    actors: list[dict[str, Any]]  # {actor, role, tier, actions}
    supervision: list[Supervision]
    related: list[Related]
    late_stages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        p = lambda s: plain(str(s)) if s is not None else "-"  # noqa: E731 - field text is shown literally
        lines = [
            f"# 复盘报告 (Review draft): {p(self.number)} {p(self.title)}",
            "",
            f"- 类别 (category): {p(self.category_name)} `{self.category_code}`",
            f"- 地点 (place): {p(self.address)}",
            f"- 来源 (source): {p(self.source)}; 上报人 (reporter): {p(self.reporter)}",
            f"- 状态 (status): {self.status}; 颜色 (colour): {self.colour}; 督办层级 (escalation level): "
            f"{self.escalation_level}",
            f"- 上报 (reported): {fmt_local(self.reported_at, True)}; 办结 (closed): {fmt_local(self.closed_at, True)}"
            + (f"; 用时 (total): {fmt_duration(self.total_s)}" if self.total_s is not None else ""),
            f"- 时限规则 (SLA profile): {p(self.sla_name)} `{self.sla_profile}`",
            "",
            "## 各阶段时限 (SLA stages)",
            "",
            "| 阶段 (stage) | 节点 (milestone) | 时限 (deadline) | 达成 (reached) | 用时/允许 (spent/allowed) | 结论 (verdict) |",
            "|---|---|---|---|---|---|",
        ]
        for s in self.stages:
            spent = "-" if s.spent_s is None else fmt_duration(s.spent_s)
            if s.reached_at is None:
                verdict = "未达成 (not reached)"
            elif s.late:
                verdict = f"超时 {s.late_by_min:g} 分钟 (late by {s.late_by_min:g} min)"
            elif s.over_allowance:
                verdict = "按时，本阶段超配额 (on time, stage over its allowance)"
            else:
                verdict = "按时 (on time)"
            lines.append(f"| {s.label_zh} ({s.label}) | {s.milestone} | {fmt_local(s.deadline_at)} | "
                         f"{fmt_local(s.reached_at)} {p(s.reached_by or '')} | {spent} / {fmt_duration(s.allowed_s)} | "
                         f"{verdict} |")
        lines += ["", "## 时间线 (Timeline)", ""]
        for t in self.timeline:
            change = f"{t.from_status or '∅'} → {t.to_status}" if t.from_status != t.to_status else (t.to_status or "")
            lines.append(f"- {fmt_local(t.at, True)} **{p(t.action)}** {change} — {p(t.actor)} ({p(t.role)}, "
                         f"{p(t.tier)})" + (f": {p(t.note)}" if t.note else ""))
        lines += ["", "## 处置人员 (Who acted)", ""]
        for a in self.actors:
            lines.append(f"- {p(a['actor'])} ({p(a['role'])}, {p(a['tier'])}): {', '.join(p(x) for x in a['actions'])}")
        lines += ["", "## 督办与上提 (Supervision)", ""]
        if not self.supervision:
            lines.append("- 无 (none)")
        for sv in self.supervision:
            end = fmt_local(sv.ended_at, True) if sv.ended_at else "未解除 (never lifted)"
            lines.append(f"- {fmt_local(sv.at, True)} {sv.kind} by {p(sv.by)} until {end}: {p(sv.note)}")
        lines += ["", "## 关联事件 (Related events)", ""]
        if not self.related:
            lines.append("- 无 (none)")
        for r in self.related:
            lines.append(f"- {r.relation}: {p(r.number)} {p(r.title)} `{r.category_code}` {r.status} "
                         f"({fmt_local(r.reported_at, True)})")
        lines += ["", "## 问题与改进 (Findings and improvements)", ""]
        if self.late_stages:
            lines.append(f"- 超时阶段 (late stages): {', '.join(self.late_stages)}")
        else:
            lines.append("- 各阶段均在时限内 (every stage met its deadline)")
        lines.append("- (待填写 / to be completed by the reviewer)")
        return "\n".join(lines) + "\n"


def draft_review(store: Store, catalogue: Catalogue, event_ref: str) -> Review:
    """A draft review of a closed or reviewed event; an event still open (or rejected/merged) is refused."""
    event = store.resolve_event(event_ref, prefix=True)
    if event.status not in REVIEWABLE:
        raise BadInput(f"cannot review {event.number}: it is {event.status} ({Status(event.status).zh}); "
                       "only closed events are reviewed")
    audit = store.event_audit(event.id)
    profile = catalogue.sla(event.sla_profile)
    category = catalogue.categories.get(event.category_code)
    stages = _stages(event, profile, audit)
    return Review(
        event_id=event.id, number=event.number, title=event.title, category_code=event.category_code,
        category_name=category.name if category else event.category_code, sla_profile=profile.code,
        sla_name=profile.name, status=event.status, colour=event.colour, address=event.address, source=event.source,
        reporter=event.reporter, reported_at=event.reported_at, closed_at=event.closed_at,
        total_s=None if event.closed_at is None else event.closed_at - event.reported_at,
        escalation_level=event.escalation_level,
        timeline=[TimelineEntry(a.acted_at, a.action, a.from_status, a.to_status, a.actor, a.role, a.tier, a.note)
                  for a in audit],
        stages=stages, actors=_actors(audit), supervision=_supervision(audit),
        related=_related(store, event),
        late_stages=[f"{s.label_zh} ({s.label}) +{s.late_by_min:g} min" for s in stages if s.late],
    )


def _milestone_entry(audit: list[AuditEntry], milestone: Status) -> AuditEntry | None:
    """The first entry that moved the event to (or past) ``milestone`` in the loop."""
    target = position(milestone)
    for a in audit:
        if a.to_status and a.to_status != a.from_status and a.to_status not in _NOT_REACHED \
                and position(a.to_status) >= target:
            return a
    return None


def _stages(event: Event, profile: SlaProfile, audit: list[AuditEntry]) -> list[StageReview]:
    out: list[StageReview] = []
    prev_deadline = event.reported_at
    prev_reached: float | None = event.reported_at
    for stage in profile.stages:
        deadline = event.reported_at + stage.minutes * 60.0
        entry = _milestone_entry(audit, stage.milestone)
        reached = entry.acted_at if entry else None
        clock = StageClock(stage, deadline, reached)
        allowed = deadline - prev_deadline
        spent = None if reached is None or prev_reached is None else max(0.0, reached - prev_reached)
        late_by = round((reached - deadline) / 60.0, 2) if clock.late and reached is not None else 0.0
        out.append(StageReview(stage.label, stage.label_zh, Status(stage.milestone).value, deadline, reached,
                               entry.actor if entry else None, spent, allowed, clock.late, late_by,
                               spent is not None and spent > allowed))
        prev_deadline = deadline
        if reached is not None:
            prev_reached = max(prev_reached or reached, reached)
        else:
            prev_reached = None
    return out


def _actors(audit: list[AuditEntry]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str], list[str]] = {}
    for a in audit:
        actions = seen.setdefault((a.actor, a.role, a.tier), [])
        if a.action not in actions:
            actions.append(a.action)
    return [{"actor": k[0], "role": k[1], "tier": k[2], "actions": v} for k, v in seen.items()]


def _supervision(audit: list[AuditEntry]) -> list[Supervision]:
    out: list[Supervision] = []
    for i, a in enumerate(audit):
        if a.action not in ("supervise", "escalate"):
            continue
        start_pos = position(a.to_status) if a.to_status else -1
        ended = next((b.acted_at for b in audit[i + 1:]
                      if b.to_status and b.to_status != b.from_status and b.to_status not in _NOT_REACHED
                      and position(b.to_status) > start_pos), None)
        by = a.tier if a.action == "escalate" else _supervisor(a.note) or a.tier
        out.append(Supervision(a.acted_at, a.action, by, a.note, ended))
    return out


def _supervisor(note: str) -> str | None:
    """The engine notes "…; <tier> supervises; …" on each supervision step."""
    for part in (note or "").split(";"):
        part = part.strip()
        if part.endswith(" supervises"):
            return part[: -len(" supervises")]
    return None


def _related(store: Store, event: Event) -> list[Related]:
    out: list[Related] = []
    for other in store.related_events(event, RELATED_WINDOW_S, RELATED_BOX_DEG):
        out.append(Related(_relation(event, other), other.id, other.number, other.category_code, other.status,
                           other.reported_at, other.title))
    return out


def _relation(event: Event, other: Event) -> str:
    if other.merged_into == event.id:
        return "merged into this (并入本事件)"
    if other.id == event.merged_into:
        return "this was merged into (本事件并入)"
    if other.duplicate_of == event.id:
        return "flagged duplicate (疑似重复)"
    if other.id == event.duplicate_of:
        return "this duplicates (本事件疑似重复于)"
    if other.parent_id == event.id:
        return "多跨 sub-task (子任务)"
    if other.id == event.parent_id:
        return "多跨 master (主事件)"
    if event.parent_id and other.parent_id == event.parent_id:
        return "多跨 sibling (同级子任务)"
    if other.inhibited_by == event.id:
        return "inhibited by this (被本事件抑制)"
    if other.id == event.inhibited_by:
        return "inhibits this (抑制本事件)"
    return "same category nearby ±1 h (附近同类)"
