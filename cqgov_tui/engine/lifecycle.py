"""The event state machine as data: which action, from which states, by which roles, at which tiers.

The engine consults ``RULES`` and nothing else, so a permission change is an
edit to this table, not a hunt through if-statements.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.entities import LOOP, Role, Status, Tier
from ..errors import IllegalTransition, PermissionDenied

S = Status
R = Role
ALL_TIERS = frozenset(Tier)
OPEN_STATES = frozenset(s for s in Status if s.is_open)

_POSITION: dict[str, int] = {s: i for i, s in enumerate(LOOP)}  # keyed by member, found by stored value too
# Taken over by the upper tier before dispatch: its clock restarts at "verified".
_POSITION[S.ESCALATED] = 1


def position(status: Status | str) -> int:
    """Loop position; side exits that end the event count as past every milestone."""
    pos = _POSITION.get(status)  # a stored value finds its member (a str enum hashes and compares as its value)
    if pos is None:
        Status(status)  # an unknown status still raises
        return len(LOOP)
    return pos


@dataclass(frozen=True)
class Rule:
    action: str
    zh: str
    sources: frozenset[Status]
    target: Status | None  # None: no status change (comment, supervise)
    roles: frozenset[Role]
    tiers: frozenset[Tier] = ALL_TIERS
    needs_note: bool = False  # e.g. a rejection must say why
    needs_target: bool = False  # merge names the surviving event
    needs_departments: bool = False


_COMMAND = frozenset({R.DUTY_OFFICER, R.DISPATCHER, R.ADMIN})
_FIELD = frozenset({R.DEPARTMENT, R.GRID_WORKER, R.ADMIN})

RULES: dict[str, Rule] = {
    r.action: r
    for r in (
        Rule("verify", "核实", frozenset({S.REPORTED}), S.VERIFIED, _COMMAND | {R.GRID_WORKER}),
        Rule("assess", "研判", frozenset({S.VERIFIED, S.ESCALATED}), S.ASSESSED, _COMMAND),
        Rule("dispatch", "派遣", frozenset({S.VERIFIED, S.ASSESSED, S.ESCALATED}), S.DISPATCHED, _COMMAND),
        Rule("accept", "签收", frozenset({S.DISPATCHED}), S.ACCEPTED, _FIELD | _COMMAND),
        Rule("arrive", "到场", frozenset({S.ACCEPTED}), S.ON_SCENE, _FIELD),
        Rule("dispose", "处置", frozenset({S.ON_SCENE}), S.DISPOSED, _FIELD),
        Rule("feedback", "反馈", frozenset({S.DISPOSED}), S.FEEDBACK, _FIELD | _COMMAND),
        Rule("close", "办结", frozenset({S.FEEDBACK}), S.CLOSED, _COMMAND),
        Rule("review", "复盘", frozenset({S.CLOSED}), S.REVIEWED, _COMMAND | {R.AUDITOR}),
        Rule("reject", "驳回", frozenset({S.REPORTED, S.VERIFIED, S.ASSESSED}), S.REJECTED, _COMMAND, needs_note=True),
        Rule("merge", "合并", OPEN_STATES, S.MERGED, _COMMAND, needs_target=True),
        Rule(
            "escalate", "上提",
            frozenset({S.REPORTED, S.VERIFIED, S.ASSESSED, S.DISPATCHED, S.ACCEPTED, S.ON_SCENE}),
            S.ESCALATED, _COMMAND, tiers=frozenset({Tier.STREET, Tier.DISTRICT}),
        ),
        # 回访: the reporter's rating after closing (engine.callbacks), no status change.
        Rule("callback", "回访", frozenset({S.CLOSED, S.REVIEWED}), None, _COMMAND | {R.AUDITOR}, needs_note=True),
        Rule("comment", "备注", frozenset(Status), None, frozenset(Role), needs_note=True),
    )
}

# Aliases people type from scripts.
ALIASES = {"回访": "callback", "on_scene": "arrive", "on-scene": "arrive", "sign": "accept", "resolve": "dispose", "takeover": "escalate"}


def rule_for(action: str) -> Rule:
    key = ALIASES.get(action, action)
    try:
        return RULES[key]
    except KeyError:
        raise IllegalTransition(
            f"unknown action {action!r} (expected one of {', '.join(RULES)})"
        ) from None


def check(status: Status | str, action: str, role: Role | str, tier: Tier | str, *, note: str = "",
          target: str | None = None, departments: list[str] | None = None) -> Rule:
    """Return the rule if ``action`` is allowed now; otherwise raise with a reason naming state and action."""
    rule = rule_for(action)
    status, role, tier = Status(status), Role(role), Tier(tier)
    if status not in rule.sources:
        raise IllegalTransition(f"cannot {rule.action} an event that is {status.value} ({status.zh})")
    if role not in rule.roles:
        raise PermissionDenied(f"a {role.value} may not {rule.action} (event is {status.value})")
    if tier not in rule.tiers:
        raise PermissionDenied(f"the {tier.value} tier may not {rule.action} (event is {status.value})")
    if rule.needs_note and not (note or "").strip():
        raise IllegalTransition(f"{rule.action} needs a reason (event is {status.value})", code="note_required")
    if rule.needs_target and not target:
        raise IllegalTransition(f"{rule.action} needs the event to merge into (event is {status.value})")
    return rule


def allowed_actions(status: Status | str, role: Role | str, tier: Tier | str) -> list[str]:
    """Actions a user could take now (the detail screen shows these)."""
    status, role, tier = Status(status), Role(role), Tier(tier)
    return [r.action for r in RULES.values() if status in r.sources and role in r.roles and tier in r.tiers]
