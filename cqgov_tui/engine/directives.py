"""Directives (政令一键智达) and their receipts (消息必达).

A directive goes from a tier to a set of lower jurisdictions. Its recipients
are the streets in scope: a street target is itself, a district target
expands to its streets, the city code to all of them. Each recipient's
receipt moves delivered → read → acknowledged → executed, each step
timestamped, never backwards. The sender's tier sweeps its own directives:
a recipient that has not acknowledged by the deadline is re-notified once
(the directive is re-sent with a higher version), and still missing after a
grace period the directive is escalated to the sender's duty officer. Every
step is an audit entry keyed by the directive id.

Receipts travel between tiers as whole rows; ``merge`` combines two copies
of the same receipt into the furthest state with the earliest timestamp of
each step, so applying copies in any order, any number of times, converges.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from ..clock import local
from ..domain.entities import Department, Directive, Receipt, ReceiptState, Role, Tier, User
from ..errors import BadInput, IllegalTransition, PermissionDenied, UnknownCode
from ..ids import uuid7
from ..scope import CITY_CODE, covers
from . import access, audience

if TYPE_CHECKING:
    # Types only: this module stays light (no store, no DuckDB) for the console's first frame.
    from ..geo.registry import Registry
    from ..store import Store

ORDER = (ReceiptState.PENDING, ReceiptState.DELIVERED, ReceiptState.READ, ReceiptState.ACKNOWLEDGED,
         ReceiptState.EXECUTED)
RANK = {s.value: i for i, s in enumerate(ORDER)}
_STAMP = {ReceiptState.DELIVERED.value: "delivered_at", ReceiptState.READ.value: "read_at",
          ReceiptState.ACKNOWLEDGED.value: "acknowledged_at", ReceiptState.EXECUTED.value: "executed_at"}
PRIORITIES = {"urgent": "特急", "high": "加急", "normal": "平急"}
_PRIORITY_ALIASES = {v: k for k, v in PRIORITIES.items()}
ESCALATE_AFTER_S = 600.0  # grace after the deadline before a still-missing ack is escalated
MAX_TEXT = 4000
MAX_TARGETS = 2000


def _level(code: str) -> int:
    return {6: 1, 9: 2}.get(len(code), 3) if code != CITY_CODE else 0


def _tier_level(tier: Tier | str) -> int:
    return {"city": 0, "district": 1, "street": 2}[Tier(tier).value]


def normalise_priority(priority: str) -> str:
    p = (priority or "normal").strip().lower()
    p = _PRIORITY_ALIASES.get(p, p)
    if p not in PRIORITIES:
        raise BadInput(f"unknown priority {priority!r} (expected one of {', '.join(PRIORITIES)})")
    return p


def validate_targets(registry: Registry, sender: User, store_code: str, targets: list[str],
                     departments: Mapping[str, Department] | None = None) -> list[str]:
    """Known codes, strictly below the sending tier (or the sender's own jurisdiction, meaning all of it),
    inside the sender's subtree and this store's; plus an optional audience (``audience.py``).

    Returned in stored form: jurisdictions first, then ``dept:…`` and ``role:…``. An audience with no
    jurisdiction is addressed across the sender's own jurisdiction.
    """
    if not targets:
        raise BadInput("a directive needs at least one target jurisdiction")
    if len(targets) > MAX_TARGETS:
        raise BadInput(f"too many targets ({len(targets)} > {MAX_TARGETS})")
    if departments is None:
        departments = audience.installed_departments()
    normal = [audience.normalise(raw, departments) for raw in targets]
    codes = audience.jurisdictions_of(normal)
    own = _tier_level(sender.tier)
    if not codes:
        if own >= _tier_level(Tier.STREET):
            raise BadInput("a street has no lower jurisdiction to direct")
        codes = [sender.scope_code]
    out: list[str] = []
    for code in codes:
        j = registry.get(code)  # UnknownCode for anything not in the registry
        if j.level.value == "grid":
            raise BadInput(f"{code}: directives go to streets, districts or the city, not to grids")
        below = _level(j.code) > own or j.code == CITY_CODE
        if not below and not (j.code == sender.scope_code and own < _tier_level(Tier.STREET)):
            raise BadInput(f"{code} ({j.name}) is not below the {Tier(sender.tier).value} tier")
        if not covers(sender.scope_code, j.code) or not covers(store_code, j.code):
            raise PermissionDenied(f"{sender.user} may not direct {code} ({j.name}): outside {sender.scope_code}",
                                   code="not_in_jurisdiction")
        out.append(j.code)
    out += [t for t in normal if not audience.is_jurisdiction(t)]
    return list(dict.fromkeys(out))


def recipients(registry: Registry, targets: list[str]) -> list[str]:
    """The streets a directive must reach, sorted (the audience does not change which streets)."""
    found: set[str] = set()
    for code in targets:
        if code == CITY_CODE:
            found.update(registry.streets)
        elif len(code) == 6:
            found.update(j.code for j in registry.children(code))
        elif code in registry.streets:
            found.add(code)
    return sorted(found)


def addressed_to(directive: Directive, code: str) -> bool:
    """Whether a directive's targets include ``code`` or one of its ancestors."""
    return any(covers(t, code) for t in directive.targets)


def _number(store: Store, now: float) -> str:
    day, n = store.next_serial("directive_serial", now)
    return f"ZL-{store.code[-4:]}-{day}-{n:04d}"


def _audit(store: Store, directive_id: str, action: str, actor: User, note: str, at: float | None = None) -> None:
    store.append_audit(event_id=directive_id, action=action, from_status=None, to_status=None, actor=actor.user,
                       role=Role(actor.role).value, tier=Tier(actor.tier).value, note=note, at=at)


def send(store: Store, registry: Registry, *, actor: User, targets: list[str], text: str, deadline_at: float,
         title: str = "", priority: str = "normal", require_ack: bool = True, directive_id: str | None = None,
         departments: Mapping[str, Department] | None = None) -> Directive:
    """Create a directive at this tier; it travels down by sync and federation."""
    if actor.role not in (Role.DUTY_OFFICER, Role.DISPATCHER, Role.ADMIN):
        raise PermissionDenied(f"a {Role(actor.role).value} may not send directives")
    text = (text or "").strip()
    if not text:
        raise BadInput("a directive needs text")
    if len(text) > MAX_TEXT:
        raise BadInput(f"directive text is too long ({len(text)} > {MAX_TEXT} characters)")
    codes = validate_targets(registry, actor, store.code, list(targets), departments)
    now = store.clock.now()
    try:
        deadline = float(deadline_at)
    except (TypeError, ValueError):
        raise BadInput(f"malformed deadline {deadline_at!r}") from None
    if deadline <= now:
        raise BadInput("the deadline is in the past")
    with store.tx():
        if directive_id and store.get_directive(directive_id) is not None:
            raise access.id_taken("directive", directive_id)
        d = Directive(
            id=directive_id or uuid7(int(now * 1000)), number=_number(store, now), origin_tier=store.tier.value,
            origin_code=store.code, title=(title or "").strip() or text[:30], text=text,
            priority=normalise_priority(priority), targets=codes, require_ack=bool(require_ack),
            deadline_at=deadline, created_at=now, created_by=actor.user, version=1,
        )
        store.put_directive(d)
        _audit(store, d.id, "directive.send", actor,
               f"{d.number} → {', '.join(codes)}; {PRIORITIES[d.priority]}; deadline {local(deadline):%m-%d %H:%M}")
    return d


SUPERVISE_WITHIN_S = 3600.0  # a 督办 directive's default deadline


def supervise(store: Store, registry: Registry, *, actor: User, event_ref: str, note: str,
              deadline_at: float | None = None) -> tuple[Directive, Any]:
    """督办 an open event: a directive (high priority, acknowledgement required) to the jurisdiction that
    owns it — its street, or its district when it has none — noted on the event's audit. The server's
    ``supervise`` command and a console on its own store both come here. Returns (directive, event)."""
    from ..domain.entities import Status

    event = access.find_event(store, event_ref, actor)
    if not Status(event.status).is_open:
        raise IllegalTransition(f"cannot supervise {event.number}: it is {event.status} "
                                f"({Status(event.status).zh})")
    note = (note or "").strip()
    if not note:
        raise BadInput(f"supervising {event.number} needs a note saying what the owning tier must do",
                       code="note_required")
    owner = event.street_code or event.district_code
    now = store.clock.now()
    with store.tx():
        d = send(store, registry, actor=actor, targets=[owner], title=f"督办 {event.number}",
                 text=f"督办 {event.number} {event.title}: {note}", priority="high",
                 deadline_at=deadline_at or now + SUPERVISE_WITHIN_S, require_ack=True)
        store.append_audit(event_id=event.id, action="supervise_request", from_status=event.status,
                           to_status=event.status, actor=actor.user, role=Role(actor.role).value,
                           tier=Tier(actor.tier).value, note=f"{d.number}: {note}")
    return d, event


def parse_deadline(text: str, now: float) -> float:
    """``30m``, ``2h``, ``1d``, an epoch number, or a local ``YYYY-MM-DD HH:MM`` / ISO time."""
    t = (text or "").strip()
    if not t:
        raise BadInput("a deadline is required")
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
        return now + float(t[:-1]) * units[t[-1]]
    try:
        value = float(t)
        if value > 1e9:
            return value
    except ValueError:
        pass
    try:
        dt = _dt.datetime.fromisoformat(t)
    except ValueError:
        raise BadInput(f"unreadable deadline {text!r} (use 30m, 2h, 1d or YYYY-MM-DD HH:MM)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=local(now).tzinfo)
    return dt.timestamp()


# ------------------------------------------------------------ receipts


def merge(a: Receipt | None, b: Receipt) -> Receipt:
    """Two copies of one receipt → the furthest state, each step's earliest time, the most re-notifications."""
    if a is None:
        return b
    state = a.state if RANK[a.state] >= RANK[b.state] else b.state
    stamps: dict[str, Any] = {}  # step → earliest time, spread into ``replace`` by field name
    for field in _STAMP.values():
        va, vb = getattr(a, field), getattr(b, field)
        stamps[field] = min(v for v in (va, vb) if v is not None) if (va is not None or vb is not None) else None
    actor = a.actor if RANK[a.state] >= RANK[b.state] else b.actor
    merged = replace(a, state=state, actor=actor, renotified=max(a.renotified, b.renotified), **stamps)
    same_a = _content(merged) == _content(a)
    same_b = _content(merged) == _content(b)
    version = max(a.version, b.version) + (0 if (same_a or same_b) else 1)
    return replace(merged, version=version)


def _content(r: Receipt) -> tuple[tuple[str, Any], ...]:
    d = asdict(r)
    d.pop("version")
    return tuple(sorted(d.items()))


def apply_receipt(store: Store, incoming: Receipt, origin: str | None = None) -> bool:
    """Merge a receipt copy from another tier; writes (and logs) only when something changed.

    One keyed read and at most one write per receipt, whatever the directive's fan-out. The
    directive must exist here; a receipt already held proves it does, so only a first one asks.
    """
    if incoming.state not in RANK:
        raise BadInput(f"unknown receipt state {incoming.state!r}")
    with store.tx():
        current = _receipt(store, incoming.directive_id, incoming.jurisdiction_code)
        if current is None:
            if store.get_directive(incoming.directive_id) is None:
                raise BadInput(f"no directive {incoming.directive_id}")
            store.insert_receipt(incoming, origin=origin)
            return True
        merged = merge(current, incoming)
        if _content(merged) == _content(current):
            return False
        store.update_receipt(merged, origin=origin)
    return True


def _receipt(store: Store, directive_id: str, code: str) -> Receipt | None:
    return store.get_receipt(directive_id, code)


def _pending(directive_id: str, code: str) -> Receipt:
    """A recipient's receipt before anything reached it (not stored until something happens to it)."""
    return Receipt(directive_id, code, ReceiptState.PENDING.value, None, None, None, None, None, 0, 0)


def _deliver(store: Store, d: Directive, code: str, now: float, actor: User) -> Receipt | None:
    """Mark ``code``'s receipt delivered now, unless it already was; the new receipt, or None."""
    current = _receipt(store, d.id, code)
    if current is not None and RANK[current.state] >= RANK[ReceiptState.DELIVERED.value]:
        return None
    base = current or _pending(d.id, code)
    r = replace(base, state=ReceiptState.DELIVERED.value, delivered_at=now, actor=actor.user, version=base.version + 1)
    store.put_receipt(r)
    return r


def deliver_arrived(store: Store, actor: User | None = None) -> list[Receipt]:
    """At a street: every directive addressed here without a delivered receipt gets one, now."""
    if store.tier is not Tier.STREET:
        return []
    actor = actor or User("system", "系统", Role.ADMIN, store.tier, store.code)
    out: list[Receipt] = []
    now = store.clock.now()
    with store.tx():
        for d in store.directives(limit=10_000):
            if not addressed_to(d, store.code):
                continue
            r = _deliver(store, d, store.code, now, actor)
            if r is not None:
                _audit(store, d.id, "directive.delivered", actor, f"{d.number} delivered to {store.code}", at=now)
                out.append(r)
    return out


def deliver_to_all(store: Store, registry: Registry, directive: Directive, actor: User) -> int:
    """Where no lower tier carries a directive (a console on its own store): every recipient's
    receipt is delivered now. Returns how many were."""
    now = store.clock.now()
    with store.tx():
        n = sum(_deliver(store, directive, code, now, actor) is not None
                for code in recipients(registry, directive.targets))
        _audit(store, directive.id, "directive.delivered", actor, f"{directive.number} delivered to {n} streets", at=now)
    return n


def advance(store: Store, directive_ref: str, code: str, state: str, actor: User) -> Receipt:
    """Move one recipient's receipt forward (read, acknowledged, executed); steps skipped are stamped too."""
    if state not in RANK or state == ReceiptState.PENDING.value:
        raise BadInput(f"unknown receipt state {state!r} (expected delivered, read, acknowledged or executed)")
    if not (code.isdigit() and _level(code) == _tier_level(Tier.STREET)):
        raise BadInput(f"receipts are answered per street: {code!r} is not a street code")
    if not covers(actor.scope_code, code):
        raise PermissionDenied(f"{actor.user} may not answer for {code}: outside {actor.scope_code}",
                               code="not_in_jurisdiction")
    with store.tx():
        d = store.get_directive(directive_ref)
        if d is None or code not in set(_street_scope(d, code)):
            raise access.not_found("directive", directive_ref)  # one answer: none, or not addressed here
        who = audience.audience_of(d.targets)
        if not who.admits(actor):
            held = f"{Role(actor.role).value}" + (f" of {actor.department}" if actor.department else "")
            raise PermissionDenied(f"directive {d.number} is addressed to {who.describe()}; "
                                   f"{actor.user} ({held}) may not answer it")
        now = store.clock.now()
        current = _receipt(store, d.id, code) or _pending(d.id, code)
        if RANK[current.state] >= RANK[state]:
            raise IllegalTransition(f"receipt of {code} for {d.number} is already {current.state}")
        stamps: dict[str, Any] = {}  # step field → now, spread into ``replace`` by field name
        for s in ORDER[1:RANK[state] + 1]:
            field = _STAMP[s.value]
            if getattr(current, field) is None:
                stamps[field] = now
        r = replace(current, state=state, actor=actor.user, version=current.version + 1, **stamps)
        store.put_receipt(r)
        _audit(store, d.id, f"directive.{state}", actor, f"{d.number} {state} by {code}", at=now)
    return r


def _street_scope(d: Directive, code: str) -> list[str]:
    return [code] if addressed_to(d, code) else []


# ------------------------------------------------------------ status and sweep


def status(store: Store, registry: Registry, directive_ref: str, viewer_scope: str = CITY_CODE) -> dict[str, Any]:
    """Counts per receipt state (cumulative: an executed receipt was also delivered) and who is still missing."""
    d = store.get_directive(directive_ref)
    if d is None:
        raise UnknownCode(f"no directive {directive_ref!r}")
    expected = [c for c in recipients(registry, d.targets) if covers(viewer_scope, c)]
    who = audience.audience_of(d.targets)
    receipts = {r.jurisdiction_code: r for r in store.receipts(d.id) if covers(viewer_scope, r.jurisdiction_code)}
    counts: dict[str, int] = {}
    missing: dict[str, list[str]] = {}
    for s in ORDER[1:]:
        have = [c for c in expected if c in receipts and RANK[receipts[c].state] >= RANK[s.value]]
        counts[s.value] = len(have)
        missing[s.value] = sorted(set(expected) - set(have))
    return {
        "id": d.id, "number": d.number, "title": d.title, "text": d.text, "priority": d.priority,
        "origin": f"{d.origin_tier}:{d.origin_code}", "targets": d.targets,
        "audience": {"departments": list(who.departments), "roles": list(who.roles)}, "require_ack": d.require_ack,
        "created_at": d.created_at, "deadline_at": d.deadline_at, "version": d.version,
        "expected": len(expected), "counts": counts, "missing": missing,
        "complete": not missing[ReceiptState.ACKNOWLEDGED.value if d.require_ack else ReceiptState.DELIVERED.value],
        "receipts": [asdict(r) for r in sorted(receipts.values(), key=lambda r: r.jurisdiction_code)],
    }


def sweep(store: Store, registry: Registry, now: float | None = None,
          escalate_after: float = ESCALATE_AFTER_S) -> dict[str, list[str]]:
    """At the sending tier: re-notify recipients not acknowledged by the deadline, then escalate."""
    now = store.clock.now() if now is None else now
    system = User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)
    renotified: list[str] = []
    escalated: list[str] = []
    with store.tx():
        for d in store.directives(limit=10_000):
            if d.origin_code != store.code or not d.require_ack or now < d.deadline_at:
                continue
            receipts = {r.jurisdiction_code: r for r in store.receipts(d.id)}
            lacking = [c for c in recipients(registry, d.targets)
                       if c not in receipts or RANK[receipts[c].state] < RANK[ReceiptState.ACKNOWLEDGED.value]]
            if not lacking:
                continue
            if store.meta(f"directive_renotified:{d.id}") is None:
                for c in lacking:
                    base = receipts.get(c) or _pending(d.id, c)
                    store.put_receipt(replace(base, renotified=base.renotified + 1, version=base.version + 1))
                store.put_directive(replace(d, version=d.version + 1))
                store.set_meta(f"directive_renotified:{d.id}", repr(now))
                _audit(store, d.id, "directive.renotify", system,
                       f"{d.number}: {len(lacking)} not acknowledged by the deadline; re-sent", at=now)
                renotified.append(d.id)
            elif now >= d.deadline_at + escalate_after and store.meta(f"directive_escalated:{d.id}") is None:
                store.set_meta(f"directive_escalated:{d.id}", repr(now))
                shown = ", ".join(lacking[:20]) + (" …" if len(lacking) > 20 else "")
                _audit(store, d.id, "directive.escalate", system,
                       f"{d.number}: {len(lacking)} still not acknowledged after re-notify ({shown}); duty officer alerted",
                       at=now)
                escalated.append(d.id)
    return {"renotified": renotified, "escalated": escalated}
