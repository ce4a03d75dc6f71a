"""Notifications to people: an outbox of their own, delivery with retries, acknowledgement and escalation.

The notifier follows this node's audit log (a cursor in store metadata,
advanced in the same transaction as the notifications it creates, so a
restart neither loses nor repeats one). Entries that should reach people —
a plan's ``notify`` step, an event ``assign``-ed to a person, overdue
supervision, a directive delivered at a street, re-notified or escalated, a
red or orange event arriving from a lower tier — become messages to the
people on duty for that role and jurisdiction (``people.roster.on_call``).

Each (message, recipient, channel) is one row with an id derived from those
three, so it exists exactly once. The inbox row is delivered by being there
(it replicates to the recipient's console); e-mail and webhook rows wait in
the outbox until a send succeeds, retried with exponential backoff and given
up after ``retry.max_attempts``; every attempt is an audit entry on the
timeline of what the message is about.

A message that needs an answer and is not acknowledged within
``escalation.ack_after`` goes to the next person of the rotation, then to the
duty chief (值班长). Acknowledging (console, ``cqgov notify ack``, or the
link in the message) closes the message for everyone it went to.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..domain.colour import Colour
from ..domain.entities import AuditEntry, Event, Role, Tier, User
from ..domain.people import Channel, Notification, Person
from ..errors import BadInput, PermissionDenied, UnknownCode
from ..people import roster
from ..scope import CITY_CODE, covers
from .channels import DeliveryFailed, send_email, send_webhook
from .config import NotifyConfig

if TYPE_CHECKING:
    from ..clock import Clock
    from ..geo.registry import Registry
    from ..store import Store

log = logging.getLogger("cqgov.notify")

CURSOR_KEY = "notify_audit_seq"
SECRET_KEY = "notify_secret"
FOLLOW_BATCH = 2000
CURSOR_STORE_S = 5.0  # how long the cursor may stay ahead of its stored value over entries that concern nobody
_EVENT_ACTIONS = frozenset({"notify", "assign", "supervise", "federate"})
_DIRECTIVE_ACTIONS = frozenset({"directive.delivered", "directive.escalate", "directive.renotify"})
IDLE_CHECK_S = 2.0  # wall seconds between looks for due retries and overdue acknowledgements when idle
DELIVER_BATCH = 50
_PRIORITY_OF_COLOUR = {"red": "urgent", "orange": "high"}
_OPEN = ("pending", "sent", "failed")


@dataclass(frozen=True)
class Intent:
    """Tell whoever answers for ``role`` (or ``duty``) at ``place`` — or exactly ``user`` — about ``ref``."""

    key: str  # message key (one per audit entry and audience)
    subject: str
    body: str
    ref: str
    priority: str
    needs_ack: bool
    place: str
    role: str | None = None
    duty: str | None = None
    user: str | None = None


def notification_id(message_key: str, recipient: str, channel: str) -> str:
    h = hashlib.sha256(f"{message_key}|{recipient}|{channel}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-a{h[17:20]}-{h[20:32]}"


class Notifier:
    """One server's notifications. ``tick`` does a round; ``start`` runs rounds on a thread of its own (sending
    mail must not hold up the SLA sweep)."""

    def __init__(self, store: Store, config: NotifyConfig | None = None, clock: Clock | None = None,
                 registry: Registry | None = None, public_url: str | None = None, every_s: float = 0.5,
                 http: Any = None) -> None:
        self.store = store
        self.config = config or NotifyConfig()
        self.clock = clock or store.clock
        self.registry = registry
        self.public_url = (self.config.public_url or public_url or "").rstrip("/") or None
        self.every_s = every_s
        self.http = http
        self.errors = 0
        self.last_error = ""
        self.sent = 0
        self._halt = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Idle rounds touch no SQL: the audit log is followed only when the change log moved, the outbox is
        # read when something may be due, escalation looked for every few seconds.
        self._seen_head = -1
        self._maybe_due = True
        self._next_escalation = 0.0
        self._next_outbox = 0.0
        self._system = User("system", "系统", Role.ADMIN, store.tier, CITY_CODE if store.tier is Tier.CITY else store.code)
        if store.meta(CURSOR_KEY) is None:
            # A notifier starts with what happens from now on: history is not announced again.
            store.set_meta(CURSOR_KEY, str(store.audit_head()))
        self._cursor = self._stored_cursor = int(store.meta(CURSOR_KEY, "0") or 0)
        self._next_cursor_store = self.clock.now() + CURSOR_STORE_S

    # ------------------------------------------------------------ thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"notify-{self.store.node}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            try:
                self._store_cursor(now=True)
            except Exception:  # noqa: BLE001 - the store may be closing; the next start looks again
                log.debug("notify cursor not stored at stop", exc_info=True)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._halt.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if self._halt.is_set():
                break
            try:
                self.tick()
            except Exception as exc:  # a bad row must not end notifications; shown in health
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.exception("notify round failed")

    def tick(self, force: bool = False) -> dict[str, int]:
        import time

        made = escalated = sent = 0
        head = self.store.head()
        if force or head != self._seen_head:
            made = self.follow()
            self._seen_head = head
        else:
            self._store_cursor()  # entries seen earlier that concern nobody: stored once the interval passed
        mono = time.monotonic()
        if force or mono >= self._next_escalation:
            self._next_escalation = mono + IDLE_CHECK_S
            escalated = self.escalate()
            if self.registry is not None:
                from .flood import from_levels

                from_levels(self.store, self.registry, self.clock.now())  # 准备转移 / 立即转移 from rising gauges
        if force or self._maybe_due or mono >= self._next_outbox:
            self._next_outbox = mono + IDLE_CHECK_S
            sent = self.deliver_due()
        return {"created": made, "escalated": escalated, "delivered": sent}

    def status(self) -> dict[str, Any]:
        return {"errors": self.errors, "last_error": self.last_error, "sent": self.sent,
                "channels": ["inbox"] + [c for c, v in (("email", self.config.email),
                                                        ("webhook", self.config.webhook)) if v is not None]}

    # ------------------------------------------------------------ audit → messages

    def follow(self) -> int:
        """Turn new audit entries into messages. The stored cursor moves in the same transaction as the
        messages; past entries that concern nobody it moves in memory, stored every few seconds (a restart
        looks at those entries again and again finds nothing to do), so a busy district's stream of
        transitions costs no transaction of its own."""
        store = self.store
        made = 0
        while True:
            entries = store.audit_since(self._cursor, FOLLOW_BATCH)
            if not entries:
                break
            last = entries[-1].seq
            concerned = [e for e in entries if self._may_concern(e)]
            if concerned:
                with store.tx():
                    for entry in concerned:
                        for intent in self.intents(entry):
                            made += self.send(intent)
                    store.set_meta(CURSOR_KEY, str(last))
                self._stored_cursor = last
            self._cursor = last
            if len(entries) < FOLLOW_BATCH:
                break
        self._store_cursor()
        return made

    def _store_cursor(self, now: bool = False) -> None:
        at = self.clock.now()
        due = now or not (at < self._next_cursor_store <= at + CURSOR_STORE_S)  # (a clock set back: due)
        if self._cursor != self._stored_cursor and due:
            with self.store.tx():
                self.store.set_meta(CURSOR_KEY, str(self._cursor))
            self._stored_cursor = self._cursor
            self._next_cursor_store = at + CURSOR_STORE_S

    def _may_concern(self, a: AuditEntry) -> bool:
        """Whether ``intents`` could have anything to say about ``a`` (a read, no writes)."""
        if a.action == "report":
            if self.registry is None:
                return False
            event = self.store.get_event(a.event_id)
            return event is not None and event.category_code == "flood_warning" and event.source == "sensor"
        return a.action in _EVENT_ACTIONS or a.action in _DIRECTIVE_ACTIONS

    def intents(self, a: AuditEntry) -> list[Intent]:
        """What an audit entry should tell people (see the module docstring)."""
        store = self.store
        key = f"{a.node}/{a.seq}"
        if a.action == "report" and self.registry is not None:
            event = store.get_event(a.event_id)
            if event is not None and event.category_code == "flood_warning" and event.source == "sensor":
                from .flood import from_alarm

                from_alarm(store, self.registry, event)  # 通知转移 to the district's streets
            return []
        if a.action in _EVENT_ACTIONS:
            event = store.get_event(a.event_id)
            if event is None:
                return []
            place = event.grid_code or event.street_code or event.district_code
            priority = _PRIORITY_OF_COLOUR.get(event.colour, "normal")
            subject = f"【{Colour(event.colour).zh}】{event.number} {event.title}"
            body = _event_body(event)
            if a.action == "notify":
                role = a.note.removeprefix("notify ").strip()
                return [Intent(key, subject, body, event.id, priority, True, place, role=role)]
            if a.action == "assign":
                user = a.note.removeprefix("→ ").split(" ", 1)[0].strip()
                return [Intent(key, f"派遣 {subject}", body, event.id, priority, True, place, user=user)]
            if a.action == "supervise" and a.actor == "system":
                return [Intent(key, f"超时督办 {subject}", f"{body}\n{a.note}", event.id, "high", True, place,
                               role=Role.DUTY_OFFICER.value)]
            if a.action == "federate" and a.from_status is None and event.colour in ("red", "orange") \
                    and store.tier is not Tier.STREET:
                # A lower tier's serious event reaches this tier: its duty officer hears of it.
                return [Intent(key, f"上报 {subject}", body, event.id, priority, event.colour == "red",
                               store.code if store.tier is not Tier.CITY else CITY_CODE,
                               role=Role.DUTY_OFFICER.value)]
            return []
        if a.action in _DIRECTIVE_ACTIONS:
            d = store.get_directive(a.event_id)
            if d is None:
                return []
            subject = f"【政令·{_PRIORITY_ZH.get(d.priority, d.priority)}】{d.number} {d.title}"
            body = f"{d.text}\n\n{d.number} · {d.origin_tier} {d.origin_code} · deadline {_fmt(d.deadline_at)}"
            if a.action == "directive.delivered" and store.tier is Tier.STREET:
                roles = [t.removeprefix("role:") for t in d.targets if t.startswith("role:")]
                duty = "flood" if d.title.startswith(FLOOD_PREFIXES) else None
                if duty:
                    return [Intent(f"{key}/flood", subject, body, d.id, d.priority, d.require_ack, store.code,
                                   role="flood", duty="flood")]
                return [Intent(f"{key}/{r}", subject, body, d.id, d.priority, d.require_ack, store.code, role=r)
                        for r in (roles or [Role.DUTY_OFFICER.value])]
            if a.action == "directive.escalate":
                own = store.code if store.tier is not Tier.CITY else CITY_CODE
                return [Intent(key, f"未确认升级 {subject}", f"{body}\n{a.note}", d.id, "urgent", True, own,
                               role=Role.DUTY_OFFICER.value)]
            lacking = [r.jurisdiction_code for r in store.receipts(d.id) if r.state in ("pending", "delivered", "read")]
            return [Intent(f"{key}/{code}", f"再次通知 {subject}", body, d.id, d.priority, d.require_ack, code,
                           role=Role.DUTY_OFFICER.value) for code in lacking]
        return []

    def send(self, intent: Intent, step: int = 0, exclude: frozenset[str] = frozenset()) -> int:
        """Create the message's rows for its first (or next) recipient; 0 when nobody is on duty for it."""
        store = self.store
        now = self.clock.now()
        person = self._next_person(intent.role, intent.duty, intent.place, intent.user, now, exclude)
        if person is None:
            store.append_audit(event_id=intent.ref, action="notify.none", from_status=None, to_status=None,
                               actor="system", role=Role.ADMIN.value, tier=store.tier.value,
                               note=f"nobody on duty for {intent.user or intent.role} at {intent.place}: "
                                    f"{intent.subject[:80]}", scope=intent.place)
            return 0
        return self._create(intent, person, step, now)

    def _next_person(self, role: str | None, duty: str | None, place: str, user: str | None, now: float,
                     exclude: frozenset[str]) -> Person | None:
        store = self.store
        chain: list[Person] = []
        if user is not None:
            named = store.get_person(user)
            if named is not None:
                chain.append(named)
                # After the named person: the rotation of their role where they work, then the chief.
                chain += roster.on_call(store, named.role, named.jurisdiction, now).chain
        else:
            chain = roster.on_call(store, role or Role.DUTY_OFFICER.value, place, now, duty=duty).chain
        for p in chain:
            if p.user not in exclude:
                return p
        return None

    def _create(self, intent: Intent, person: Person, step: int, now: float) -> int:
        store = self.store
        channels = [Channel.INBOX.value] + [c for c in self.config.channels_for(person.role, intent.priority)
                                            if c != "email" or person.email]
        made = 0
        for channel in channels:
            nid = notification_id(intent.key, person.user, channel)
            if store.get_notification(nid) is not None:
                continue  # exactly once per recipient, message and channel
            address = person.email if channel == "email" else (
                self.config.webhook.url if channel == "webhook" and self.config.webhook else "")
            inbox = channel == Channel.INBOX.value
            n = Notification(
                id=nid, message_key=intent.key, recipient=person.user, channel=channel, address=address,
                subject=intent.subject[:300], body=intent.body[:4000], ref=intent.ref, priority=intent.priority,
                needs_ack=intent.needs_ack, state="sent" if inbox else "pending", attempts=1 if inbox else 0,
                next_attempt_at=None if inbox else now, last_error=None, created_at=now,
                sent_at=now if inbox else None, acked_at=None, acked_by=None, step=step,
                role=intent.duty or intent.role or person.role, place=intent.place,
                scope=person.jurisdiction, origin_node=store.node, version=1)
            store.put_notification(n)
            if inbox:
                self._audit(n, "notify.sent", f"inbox of {person.user} ({person.name})")
            else:
                self._maybe_due = True
            made += 1
        return made

    def _audit(self, n: Notification, action: str, note: str, actor: str = "system", role: str = "admin",
               tier: str | None = None) -> None:
        self.store.append_audit(event_id=n.ref or n.id, action=action, from_status=None, to_status=None, actor=actor,
                                role=role, tier=tier or self.store.tier.value, note=note, scope=n.scope)

    # ------------------------------------------------------------ delivery

    def deliver_due(self) -> int:
        """Send e-mail and webhook rows that are due; the network is used outside the store's lock."""
        store = self.store
        now = self.clock.now()
        due = [n for n in store.notifications(states=["pending"], due_by=now, limit=DELIVER_BATCH)
               if n.channel != Channel.INBOX.value and n.origin_node == store.node]
        self._maybe_due = len(due) >= DELIVER_BATCH  # a retry comes due later: the periodic look finds it
        done = 0
        for n in due:
            if self._message_acked(n.message_key):
                with store.tx():
                    store.put_notification(replace(n, state="acked", next_attempt_at=None, version=n.version + 1))
                continue
            error = None
            try:
                self._transmit(n)
            except DeliveryFailed as exc:
                error = str(exc)
            now = self.clock.now()
            attempts = n.attempts + 1
            with store.tx():
                if error is None:
                    n2 = replace(n, state="sent", attempts=attempts, sent_at=now, next_attempt_at=None,
                                 last_error=None, version=n.version + 1)
                    note = f"{n.channel} to {n.address}: delivered (attempt {attempts})"
                    self.sent += 1
                    done += 1
                elif attempts >= self.config.retry.max_attempts:
                    n2 = replace(n, state="failed", attempts=attempts, next_attempt_at=None, last_error=error,
                                 version=n.version + 1)
                    note = f"{n.channel} to {n.address}: {error}; attempt {attempts}, giving up"
                else:
                    delay = self.config.retry.delay(attempts)
                    n2 = replace(n, attempts=attempts, next_attempt_at=now + delay, last_error=error,
                                 version=n.version + 1)
                    note = f"{n.channel} to {n.address}: {error}; attempt {attempts}, retry in {delay:.0f}s"
                store.put_notification(n2)
                self._audit(n2, "notify.attempt", note)
        return done

    def _transmit(self, n: Notification) -> None:
        link = self.ack_link(n) if n.needs_ack else None
        if n.channel == Channel.EMAIL.value:
            if self.config.email is None:
                raise DeliveryFailed("no [email] section in the notify config")
            send_email(self.config.email, n, link)
        elif n.channel == Channel.WEBHOOK.value:
            if self.config.webhook is None:
                raise DeliveryFailed("no [webhook] section in the notify config")
            send_webhook(self.config.webhook, n, link, self.http)
        else:
            raise DeliveryFailed(f"unknown channel {n.channel!r}")

    # ------------------------------------------------------------ acknowledgement

    def _message_acked(self, message_key: str) -> bool:
        return any(m.acked_at is not None for m in self.store.notifications(message_key=message_key, limit=100))

    def ack(self, ref: str, user: User, via: str = "cli") -> list[Notification]:
        return acknowledge(self.store, ref, user, via)

    def _secret(self) -> bytes:
        value = self.store.meta(SECRET_KEY)
        if value is None:
            value = secrets.token_hex(32)
            self.store.set_meta(SECRET_KEY, value)
        return value.encode()

    def link_key(self, notification_id: str) -> str:
        return hmac.new(self._secret(), notification_id.encode(), hashlib.sha256).hexdigest()[:24]

    def ack_link(self, n: Notification) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}/v1/notify/ack/{n.id}?k={self.link_key(n.id)}"

    def ack_by_link(self, notification_id: str, key: str) -> list[Notification]:
        n = self.store.get_notification(notification_id)
        if n is None or not hmac.compare_digest(self.link_key(notification_id), key or ""):
            raise PermissionDenied("this acknowledgement link is not valid")
        person = self.store.get_person(n.recipient)
        who = User(n.recipient, person.name if person else n.recipient,
                   Role(person.role) if person else Role.GRID_WORKER, self.store.tier, n.scope)
        return acknowledge(self.store, n.id, who, "link")

    # ------------------------------------------------------------ escalation

    def escalate(self) -> int:
        """Unacknowledged past the policy's delay → the next person in the rotation, then the duty chief."""
        store = self.store
        now = self.clock.now()
        stale = store.unacked_messages(now - self.config.escalation.ack_after)
        if not stale:
            return 0
        by_key: dict[str, list[Notification]] = {}
        for n in stale:
            by_key.setdefault(n.message_key, []).append(n)
        moved = 0
        for key, rows in by_key.items():
            with store.tx():
                everyone = store.notifications(message_key=key, limit=1000)
                if any(m.acked_at is not None for m in everyone):
                    continue
                told = frozenset(m.recipient for m in everyone)
                first = rows[0]
                step = max(m.step for m in everyone) + 1
                intent = Intent(key, first.subject, first.body, first.ref, first.priority, True, first.place,
                                role=first.role if first.role != "flood" else None,
                                duty="flood" if first.role == "flood" else None)
                nxt = self._next_person(intent.role, intent.duty, first.place, None, now, told)
                for m in rows:
                    store.put_notification(replace(m, state="escalated", version=m.version + 1))
                if nxt is None:
                    self._audit(first, "notify.exhausted",
                                f"{first.recipient} did not acknowledge and nobody else is on call: {first.subject[:80]}")
                    continue
                self._audit(first, "notify.escalate",
                            f"{first.recipient} did not acknowledge within {self.config.escalation.ack_after:.0f}s → "
                            f"{nxt.user} ({nxt.name}, {Role(nxt.role).zh})")
                moved += self._create(intent, nxt, step, now)
        return moved


def acknowledge(store: Store, ref: str, user: User, via: str = "cli") -> list[Notification]:
    """Acknowledge a message (by a notification id or a message key) for everyone it went to."""
    ref = (ref or "").strip()
    n = store.get_notification(ref) if ref else None
    rows = store.notifications(message_key=n.message_key if n else ref, limit=1000) if ref else []
    if not rows:
        raise UnknownCode(f"no notification {ref!r}")
    recipients = {m.recipient for m in rows}
    if user.user not in recipients and Role(user.role) not in (Role.ADMIN, Role.DUTY_OFFICER):
        raise PermissionDenied(f"notification {ref} was not sent to {user.user}")
    if Role(user.role) is Role.DUTY_OFFICER and user.user not in recipients \
            and not any(covers(user.scope_code, m.scope) for m in rows):
        raise PermissionDenied(f"notification {ref} is outside {user.user}'s jurisdiction")
    if not any(m.needs_ack for m in rows):
        raise BadInput(f"notification {ref} needs no acknowledgement")
    if any(m.acked_at is not None for m in rows):
        raise BadInput(f"notification {ref} was already acknowledged by "
                       f"{next(m.acked_by for m in rows if m.acked_at is not None)}")
    now = store.clock.now()
    out = []
    with store.tx():
        for m in rows:
            m2 = replace(m, acked_at=now, acked_by=user.user, version=m.version + 1,
                         state="acked" if m.state in _OPEN or m.state == "escalated" else m.state)
            store.put_notification(m2)
            out.append(m2)
        first = out[0]
        store.append_audit(event_id=first.ref or first.id, action="notify.ack", from_status=None, to_status=None,
                           actor=user.user, role=Role(user.role).value, tier=Tier(user.tier).value,
                           note=f"acknowledged via {via}: {first.subject[:80]}", scope=first.scope)
    return out


def inbox(store: Store, user: str, limit: int = 100) -> list[Notification]:
    """A person's inbox: their inbox rows, newest first."""
    return store.notifications(recipient=user, channel=Channel.INBOX.value, limit=limit)


def notification_dict(n: Notification) -> dict[str, Any]:
    from ..domain.schema import to_row

    return to_row(n)


_PRIORITY_ZH = {"urgent": "特急", "high": "加急", "normal": "平急"}
# Three-step flood warnings (``notify.flood``): directives whose title starts so go to each street's 防汛责任人.
FLOOD_PREFIXES = ("【通知转移】", "【准备转移】", "【立即转移】")


def _fmt(t: float) -> str:
    from ..clock import fmt_local

    return fmt_local(t, True)


def _event_body(e: Event) -> str:
    return (f"{e.number} {e.title}\n{e.address}\n状态 {e.status} · {Colour(e.colour).zh}{Colour(e.colour).zh_level}"
            f" · 截止 {_fmt(e.due_at) if e.due_at else '-'}\n{e.text}").strip()

