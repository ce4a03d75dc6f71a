"""The directives pane (政令): recent directives with receipt progress, and compose drafts.

Receipt states are cumulative — a receipt that is ``read`` was delivered — so
progress counts "at least delivered / read / acknowledged / executed".
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.entities import Directive, Receipt, ReceiptState
from ..engine import audience
from ..errors import BadInput
from ..textsafe import plain

PROGRESS = (ReceiptState.DELIVERED, ReceiptState.READ, ReceiptState.ACKNOWLEDGED, ReceiptState.EXECUTED)
_RANK = {ReceiptState.PENDING.value: 0, **{s.value: i + 1 for i, s in enumerate(PROGRESS)}}
PRIORITIES = ("urgent", "high", "normal")
PRIORITY_ZH = {"urgent": "特急", "high": "加急", "normal": "平急"}


@dataclass(frozen=True)
class ReceiptRow:
    jurisdiction_code: str
    place: str
    state: str
    at: float | None  # when the latest state was reached
    overdue: bool


@dataclass(frozen=True)
class DirectiveRow:
    id: str
    number: str
    title: str
    text: str
    priority: str
    targets: tuple[str, ...]
    require_ack: bool
    deadline_at: float
    created_at: float
    total: int
    reached: tuple[int, int, int, int]  # at least delivered, read, acknowledged, executed
    overdue: int  # receipts not acknowledged by the deadline (require-ack only)
    version: int
    for_viewer: bool = True  # False: addressed to other departments/roles than the console's user
    def progress_text(self) -> str:
        d, r, a, e = self.reached
        return f"{d}/{r}/{a}/{e} of {self.total}"


def receipt_overdue(directive: Directive, receipt: Receipt, now: float) -> bool:
    if not directive.require_ack or now <= directive.deadline_at:
        return False
    return _RANK.get(receipt.state, 0) < _RANK[ReceiptState.ACKNOWLEDGED.value]


def directive_row(directive: Directive, receipts: list[Receipt], now: float, viewer=None) -> DirectiveRow:
    reached = [0, 0, 0, 0]
    overdue = 0
    for rc in receipts:
        rank = _RANK.get(rc.state, 0)
        for i in range(rank):
            reached[i] += 1
        overdue += receipt_overdue(directive, rc, now)
    return DirectiveRow(
        id=directive.id, number=plain(directive.number), title=plain(directive.title), text=plain(directive.text, True),
        priority=directive.priority, targets=tuple(directive.targets), require_ack=directive.require_ack,
        deadline_at=directive.deadline_at, created_at=directive.created_at, total=len(receipts),
        reached=tuple(reached), overdue=overdue, version=directive.version,
        for_viewer=viewer is None or audience.audience_of(directive.targets).admits(viewer),
    )


def load_directives(store, now: float, limit: int = 50, viewer=None) -> list[DirectiveRow]:
    """Recent directives; with ``viewer``, each row says whether that user is among those who answer."""
    return [directive_row(d, store.receipts(d.id), now, viewer) for d in store.directives(limit=limit)]


def receipt_rows(store, directive_id: str, now: float, names) -> list[ReceiptRow]:
    directive = store.get_directive(directive_id)
    if directive is None:
        return []
    out = []
    for rc in store.receipts(directive.id):
        at = rc.executed_at or rc.acknowledged_at or rc.read_at or rc.delivered_at
        out.append(ReceiptRow(rc.jurisdiction_code, names.place(rc.jurisdiction_code), rc.state, at,
                              receipt_overdue(directive, rc, now)))
    return out


@dataclass(frozen=True)
class AudienceChoice:
    """One department or role a directive can be addressed to, as compose offers it."""

    value: str  # the stored target: role:grid_worker, dept:cgj
    zh: str
    en: str


def audience_choices(departments) -> list[AudienceChoice]:
    """Roles first (网格员 …), then the catalogue's departments by their short names."""
    roles = [AudienceChoice(audience.ROLE + r.value, r.zh, r.value.replace("_", " "))
             for r in audience.ADDRESSABLE_ROLES]
    depts = [AudienceChoice(audience.DEPT + code, d.short, f"{d.short} ({code})") for code, d in departments.items()]
    return roles + depts


def audience_text(directive: Directive, departments) -> str:
    """Who answers, for a header line (empty when everyone at the recipients may)."""
    return audience.audience_of(directive.targets).describe(departments)


@dataclass(frozen=True)
class DirectiveDraft:
    title: str
    text: str
    targets: tuple[str, ...]
    priority: str = "normal"
    deadline_minutes: float = 60.0
    require_ack: bool = True

    def validate(self) -> "DirectiveDraft":
        """Refuse a draft that could never be delivered, with one line saying why."""
        if not self.title.strip():
            raise BadInput("a directive needs a title")
        if not self.targets:
            raise BadInput("a directive needs at least one target")
        if self.priority not in PRIORITIES:
            raise BadInput(f"unknown priority {self.priority!r} (expected {', '.join(PRIORITIES)})")
        if not (0 < self.deadline_minutes <= 7 * 24 * 60):
            raise BadInput("deadline must be between 1 minute and 7 days")
        return self

    def body(self) -> dict:
        """The ``directive.send`` command body (SYNC.md: commands are small JSON)."""
        return {
            "title": self.title.strip(), "text": self.text, "targets": list(self.targets), "priority": self.priority,
            "deadline_minutes": self.deadline_minutes, "require_ack": self.require_ack,
        }
