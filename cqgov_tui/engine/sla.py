"""SLA clocks: the deadline of an event's current stage, time left, and the escalation ladder."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.entities import SlaProfile, SlaStage, Status, Tier
from .lifecycle import position


@dataclass(frozen=True)
class StageClock:
    stage: SlaStage
    due_at: float
    reached_at: float | None  # when the milestone was met (None: not yet)

    @property
    def late(self) -> bool:
        return self.reached_at is not None and self.reached_at > self.due_at


def next_stage(profile: SlaProfile, status: Status | str) -> SlaStage | None:
    """The first milestone the event has not reached yet."""
    pos = position(status)
    for stage in profile.stages:
        if position(stage.milestone) > pos:
            return stage
    return None


def due_at(profile: SlaProfile, status: Status | str, reported_at: float) -> float | None:
    stage = next_stage(profile, status)
    return None if stage is None else reported_at + stage.minutes * 60.0


def time_left(due: float | None, now: float) -> float | None:
    return None if due is None else due - now


def stage_duration(profile: SlaProfile, stage: SlaStage) -> float:
    """Seconds allotted to a stage alone (from the previous milestone's deadline)."""
    prev = 0.0
    for st in profile.stages:
        if st is stage or st == stage:
            return max(60.0, (st.minutes - prev) * 60.0)
        prev = st.minutes
    return 60.0


def supervising_tier(origin: Tier | str, level: int) -> Tier | None:
    """Who supervises (督办) after ``level`` overdue steps: one tier up per step, capped at the city."""
    return supervisor_after(origin, level) if level else None


def supervisor_after(origin: Tier | str, level: int) -> Tier:
    """``supervising_tier`` once at least one step was missed (``level`` ≥ 1): always some tier."""
    tier = Tier(origin)
    for _ in range(level):
        tier = tier.upper or Tier.CITY
    return tier


def max_level(origin: Tier | str) -> int:
    """Steps until the city supervises; the city's own events get one step (city duty officer)."""
    return {Tier.STREET: 2, Tier.DISTRICT: 1, Tier.CITY: 1}[Tier(origin)]


def escalation_due(profile: SlaProfile, due_at: float, level: int) -> float:
    """When an overdue event of ``profile`` raises supervision step ``level + 1``: its deadline (moved to
    the previous step's moment at each step) plus the profile's delay for that step. A garbage pile
    waits for the district longer than a fire; the delays follow the category's SLA profile."""
    delays = profile.escalate_after
    if not delays:
        return due_at
    return due_at + delays[min(level, len(delays) - 1)] * 60.0
