"""Where the console's data and actions come from.

``LocalBackend`` acts directly with the ``Engine`` on a store it owns
(offline, development, tests). ``RemoteBackend`` reads a local replica kept in
step by the ``SyncClient`` and sends every action through its outbox, so the
screen stays usable while the link is down and a server's refusal comes back
with its reason.
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
from dataclasses import dataclass, field

from ..clock import Clock
from ..domain.entities import Directive, Receipt, ReceiptState, Role, Tier, User
from ..errors import CqgovError
from ..ids import uuid7
from ..scope import CITY_CODE
from .directives import DirectiveDraft
from .names import Names


@dataclass(frozen=True)
class Rejection:
    command_id: str
    reason: str


@dataclass(frozen=True)
class LinkStatus:
    mode: str  # local | live | lagging | offline | connecting
    server: str = ""
    lag_s: float | None = None
    offline_since: float | None = None
    outbox: int = 0
    last_error: str = ""
    rejections: tuple[Rejection, ...] = ()
    slow: bool = False  # syncs are slow: the console drops to low-bandwidth behaviour


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str = ""
    command_id: str | None = None
    pending: bool = False  # queued in the outbox, not yet confirmed by the server


@dataclass
class Backend(abc.ABC):
    store: object
    user: User
    clock: Clock
    catalogue: object = None
    registry: object = None
    names: Names = field(init=False)

    def __post_init__(self):
        self.names = Names(self.catalogue, self.registry)

    @property
    def tier(self) -> Tier:
        return self.store.tier

    @property
    def code(self) -> str:
        return self.store.code

    def start(self) -> None:
        """Begin background work (sync); idempotent."""

    def stop(self) -> None:
        """Stop background work; idempotent, never raises."""

    def tick(self) -> None:
        """Periodic work from the console's worker thread (e.g. the SLA sweep)."""

    @abc.abstractmethod
    def act(self, event_id: str, action: str, note: str = "", departments: list[str] | None = None,
            target: str | None = None) -> Outcome: ...

    @abc.abstractmethod
    def send_directive(self, draft: DirectiveDraft) -> Outcome: ...

    @abc.abstractmethod
    def receipt(self, directive_id: str, jurisdiction_code: str, state: str) -> Outcome: ...

    @abc.abstractmethod
    def status(self) -> LinkStatus: ...


class LocalBackend(Backend):
    """The engine on a store this process owns."""

    def __init__(self, store, user: User | None = None, clock: Clock | None = None, catalogue=None, registry=None,
                 engine=None, sweep: bool = True):
        from ..engine import Engine

        clock = clock or store.clock
        self.engine = engine or Engine(store, catalogue, registry, clock)
        super().__init__(store, user or default_user(store), clock, self.engine.catalogue, self.engine.registry)
        self._sweep = sweep

    def tick(self) -> None:
        if self._sweep:
            self.engine.sweep()

    def act(self, event_id, action, note="", departments=None, target=None) -> Outcome:
        try:
            event = self.engine.act(event_id, action, self.user, note=note, departments=departments, target=target)
        except CqgovError as exc:
            return Outcome(False, str(exc))
        return Outcome(True, f"{event.number} → {event.status}")

    def send_directive(self, draft: DirectiveDraft) -> Outcome:
        try:
            draft.validate()
        except CqgovError as exc:
            return Outcome(False, str(exc))
        directive = local_directive(self.store, self.user, draft, self.clock.now())
        return Outcome(True, directive.number, directive.id)

    def receipt(self, directive_id, jurisdiction_code, state) -> Outcome:
        try:
            return _local_receipt(self.store, self.user, directive_id, jurisdiction_code, state, self.clock.now())
        except CqgovError as exc:
            return Outcome(False, str(exc))

    def status(self) -> LinkStatus:
        return LinkStatus(mode="local", server=self.store.path)


def local_directive(store, user: User, draft: DirectiveDraft, now: float) -> Directive:
    """Record a directive and one delivered receipt per target in a store this process owns."""
    with store.tx():
        serial = int(store.meta("directive_serial", "0")) + 1
        store.set_meta("directive_serial", str(serial))
        directive = Directive(
            id=uuid7(int(now * 1000)), number=f"ZL-{store.code[-4:]}-{serial:04d}", origin_tier=store.tier.value,
            origin_code=store.code, title=draft.title.strip(), text=draft.text, priority=draft.priority,
            targets=list(draft.targets), require_ack=draft.require_ack,
            deadline_at=now + draft.deadline_minutes * 60.0, created_at=now, created_by=user.user, version=1,
        )
        store.put_directive(directive)
        for target in draft.targets:
            store.put_receipt(Receipt(directive.id, target, ReceiptState.DELIVERED.value, now, None, None, None, None, 0, 1))
    return directive


_STATE_FIELD = {"delivered": "delivered_at", "read": "read_at", "acknowledged": "acknowledged_at", "executed": "executed_at"}


def _local_receipt(store, user, directive_id, code, state, now) -> Outcome:
    from dataclasses import replace

    from ..errors import BadInput

    if state not in _STATE_FIELD:
        raise BadInput(f"unknown receipt state {state!r}")
    current = next((r for r in store.receipts(directive_id) if r.jurisdiction_code == code), None)
    if current is None:
        raise BadInput(f"no receipt of {code} for directive {directive_id}")
    updated = replace(current, state=state, actor=user.user, version=current.version + 1, **{_STATE_FIELD[state]: now})
    store.put_receipt(updated)
    return Outcome(True, f"{code} {state}")


def default_user(store) -> User:
    scope = CITY_CODE if store.tier is Tier.CITY else store.code
    return User("operator", "值班员", Role.DUTY_OFFICER, store.tier, scope)


def token_user(token: str | None, fallback: User) -> User:
    """Who the token says we are (the payload is readable; only the server checks the signature)."""
    if not token or "." not in token:
        return fallback
    try:
        payload = token.split(".", 1)[0]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return User(str(data.get("user", fallback.user)), str(data.get("name", fallback.name)),
                    Role(data.get("role", fallback.role)), Tier(data.get("tier", fallback.tier)),
                    str(data.get("scope", fallback.scope_code)))
    except (ValueError, binascii.Error, TypeError, AttributeError):
        return fallback


class RemoteBackend(Backend):
    """A replica kept in step by the sync client; every action is a command in its outbox."""

    def __init__(self, store, client, server_url: str, token: str | None = None, clock: Clock | None = None,
                 catalogue=None, registry=None, lag_slow_s: float = 10.0):
        user = token_user(token, default_user(store))
        super().__init__(store, user, clock or store.clock, catalogue, registry)
        self.client = client
        self.server_url = server_url
        self.lag_slow_s = lag_slow_s
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.client.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self.client.stop()
            except Exception:  # stopping must never stop the app from quitting
                pass

    def _enqueue(self, kind: str, body: dict, label: str) -> Outcome:
        try:
            cid = self.client.enqueue(kind, body)
        except CqgovError as exc:
            return Outcome(False, str(exc))
        return Outcome(True, label, cid, pending=True)

    def act(self, event_id, action, note="", departments=None, target=None) -> Outcome:
        body = {"event": event_id, "action": action, "note": note, "departments": list(departments or []),
                "target": target}
        return self._enqueue("act", body, action)

    def send_directive(self, draft: DirectiveDraft) -> Outcome:
        try:
            draft.validate()
        except CqgovError as exc:
            return Outcome(False, str(exc))
        return self._enqueue("directive.send", draft.body(), draft.title)

    def receipt(self, directive_id, jurisdiction_code, state) -> Outcome:
        return self._enqueue("receipt", {"directive": directive_id, "jurisdiction": jurisdiction_code, "state": state},
                             state)

    def status(self) -> LinkStatus:
        try:
            st = self.client.status()
        except Exception as exc:  # a broken client shows in the status bar; it never kills the app
            return LinkStatus(mode="offline", server=self.server_url, last_error=str(exc).splitlines()[0][:200])
        return link_status_of(st, self.server_url, self.lag_slow_s)


def link_status_of(st, server_url: str, lag_slow_s: float = 10.0) -> LinkStatus:
    """Normalise whatever the sync client reports (object or dict) into a ``LinkStatus``."""

    def get(name, default=None):
        if isinstance(st, dict):
            return st.get(name, default)
        return getattr(st, name, default)

    state = str(get("state", "connecting") or "connecting")
    lag = get("lag_s", get("lag"))
    rejections = []
    for r in get("rejections", ()) or ():
        if isinstance(r, dict):
            rejections.append(Rejection(str(r.get("id", r.get("command_id", ""))), str(r.get("reason", ""))))
        else:
            rejections.append(Rejection(str(getattr(r, "id", getattr(r, "command_id", ""))), str(getattr(r, "reason", r))))
    mode = {"live": "live", "ok": "live", "synced": "live", "lagging": "lagging", "offline": "offline",
            "error": "offline"}.get(state, state)
    if mode == "live" and lag is not None and lag > lag_slow_s:
        mode = "lagging"
    outbox = get("outbox", get("outbox_size", 0)) or 0
    return LinkStatus(
        mode=mode, server=server_url, lag_s=None if lag is None else float(lag),
        offline_since=get("offline_since"), outbox=int(outbox), last_error=str(get("last_error", "") or ""),
        rejections=tuple(rejections), slow=lag is not None and lag > lag_slow_s,
    )
