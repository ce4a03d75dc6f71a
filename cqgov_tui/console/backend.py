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
import threading
from dataclasses import dataclass

from ..clock import Clock
from ..domain.entities import Directive, Role, Tier, User
from ..errors import CqgovError
from ..ids import uuid7
from ..scope import CITY_CODE
from ..engine import directives
from .directives import DirectiveDraft
from .names import Names


@dataclass(frozen=True)
class Rejection:
    command_id: str
    reason: str
    code: str = "refused"  # the server's stable refusal code (errors.REFUSAL_CODES): the console translates it


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
    ref: str | None = None  # what the command made (a directive's id), to follow it at once
    code: str | None = None  # a refusal's stable code (errors.REFUSAL_CODES), translated by the console


def refused(exc: CqgovError) -> Outcome:
    """A refusal as an outcome: the one-line reason and its code."""
    from ..errors import refusal_code

    text = str(exc)
    return Outcome(False, text.splitlines()[0] if text else type(exc).__name__, code=refusal_code(exc))


class Backend(abc.ABC):
    """Store, acting user and clock; the catalogue and registry load on first use (or in ``preload``
    on a background thread), so the console's first frame never waits for them."""

    def __init__(self, store, user: User, clock: Clock, catalogue=None, registry=None):
        self.store = store
        self.user = user
        self.clock = clock
        self._catalogue = catalogue
        self._registry = registry
        self._load_lock = threading.Lock()
        self.names = Names(lambda: self.catalogue, lambda: self.registry)
        # Names from whatever is already in memory, never loading: codes until the catalogue and
        # registry arrive. The console's first frame uses these so it never waits for a load.
        self.loaded_names = Names(lambda: self._catalogue, lambda: self._registry)

    @property
    def catalogue(self):
        if self._catalogue is None:
            with self._load_lock:
                if self._catalogue is None:
                    from ..catalogue.cached import load_catalogue

                    self._catalogue = load_catalogue()
        return self._catalogue

    @property
    def registry(self):
        if self._registry is None:
            with self._load_lock:
                if self._registry is None:
                    from .geo_cache import load_registry  # tree and map from a cache; the rest on demand

                    self._registry = load_registry()
        return self._registry

    @property
    def loaded(self) -> bool:
        """Catalogue and registry are in memory (names and map shapes can be drawn without waiting)."""
        return self._catalogue is not None and self._registry is not None

    def preload(self) -> None:
        """Load what names and the map need; meant for a thread started before the UI is imported."""
        self.catalogue
        self.registry

    def preload_geometry(self) -> None:
        """Load the full registry behind a cached one (grids, shapes for drilling, point lookup); for a
        thread once the console is up, so the first drill into a street does not wait for it."""
        full_registry(self.registry)

    def preload_board(self) -> None:
        """Load what the runway board needs beyond ``preload``: the catalogue's risk points and sensors
        (generated on first use). Called on the launcher's thread so the board worker finds them."""
        catalogue = self.catalogue
        for lazy in (getattr(catalogue, "risk_points", None), getattr(catalogue, "sensors", None)):
            if lazy is not None:
                len(lazy)

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

    def owner(self, event) -> str | None:
        """Another node owning ``event`` (its tier acts on it), or None when this side may act."""
        return None

    def dismiss_rejections(self) -> int:
        """The user has read the refusals shown: stop showing them. Returns how many were dismissed."""
        return 0

    @property
    def people(self):
        """My work, my inbox and dispatch to a person (``console.people.PeopleActions``)."""
        from .people import PeopleActions

        return PeopleActions(self)

    @abc.abstractmethod
    def act(self, event_id: str, action: str, note: str = "", departments: list[str] | None = None,
            target: str | None = None) -> Outcome: ...

    def supervise(self, event_ref: str, note: str) -> Outcome:
        """督办 an open event in this console's jurisdiction (id or number): a directive to the jurisdiction
        that owns it, which must be acknowledged. Refused here, with its code, when the server would refuse
        it for what the console can see (no such event, closed, no note)."""
        from ..domain.entities import Status
        from ..engine.access import find_event

        try:
            event = find_event(self.store, (event_ref or "").strip(), self.user)
        except CqgovError as exc:
            return refused(exc)
        if not Status(event.status).is_open:
            return Outcome(False, f"cannot supervise {event.number}: it is {event.status}", code="illegal_transition")
        if not (note or "").strip():
            return Outcome(False, f"supervising {event.number} needs a note", code="note_required")
        return self._enqueue_supervise(event.id, note.strip())

    @abc.abstractmethod
    def _enqueue_supervise(self, event_id: str, note: str) -> Outcome:
        """Send the supervision of an event already checked by ``supervise``."""

    @abc.abstractmethod
    def report(self, category: str, code: str, title: str = "", text: str = "") -> Outcome:
        """Report a new event at a jurisdiction code (the console's 登记 / ``:report``)."""

    @abc.abstractmethod
    def send_directive(self, draft: DirectiveDraft) -> Outcome: ...

    @abc.abstractmethod
    def receipt(self, directive_id: str, jurisdiction_code: str, state: str) -> Outcome: ...

    @abc.abstractmethod
    def status(self) -> LinkStatus: ...


class LocalBackend(Backend):
    """The engine on a store this process owns (built on first use: a viewer that never acts never loads it)."""

    def __init__(self, store, user: User | None = None, clock: Clock | None = None, catalogue=None, registry=None,
                 engine=None, sweep: bool = True):
        clock = clock or store.clock
        if engine is not None:
            catalogue, registry = engine.catalogue, engine.registry
        super().__init__(store, user or default_user(store), clock, catalogue, registry)
        self._engine = engine
        self._sweep = sweep

    @property
    def engine(self):
        if self._engine is None:
            from ..engine import Engine

            self._engine = Engine(self.store, self.catalogue, full_registry(self.registry), self.clock)
        return self._engine

    def tick(self) -> None:
        if self._sweep:
            self.engine.sweep()

    def act(self, event_id, action, note="", departments=None, target=None) -> Outcome:
        try:
            event = self.engine.act(event_id, action, self.user, note=note, departments=departments, target=target)
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, f"{event.number} → {event.status}")

    def report(self, category: str, code: str, title: str = "", text: str = "") -> Outcome:
        try:
            event = self.engine.report(category=category, title=title, text=text, code=code, source="citizen",
                                       reporter=self.user.user, actor=self.user)
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, event.number, event.id, ref=event.id)

    def _enqueue_supervise(self, event_id: str, note: str) -> Outcome:
        """On its own store the console is the supervising tier: the directive is made and delivered here."""
        registry = full_registry(self.registry)
        try:
            directive, event = directives.supervise(self.store, registry, actor=self.user, event_ref=event_id, note=note)
            directives.deliver_to_all(self.store, registry, directive, self.user)
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, f"{event.number} → {directive.number}", directive.id, ref=directive.id)

    def send_directive(self, draft: DirectiveDraft) -> Outcome:
        try:
            directive = local_directive(self.store, full_registry(self.registry), self.catalogue, self.user, draft.validate())
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, directive.number, directive.id, ref=directive.id)

    def receipt(self, directive_id, jurisdiction_code, state) -> Outcome:
        try:
            r = directives.advance(self.store, directive_id, jurisdiction_code, state, self.user)
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, f"{r.jurisdiction_code} {r.state}")

    def status(self) -> LinkStatus:
        return LinkStatus(mode="local", server=self.store.path)


def full_registry(registry):
    """The full ``geo.registry.Registry`` behind a console's cached one (engine and directives get the real
    object, as before), or ``registry`` itself."""
    full = getattr(type(registry), "full", None)
    return full(registry) if full is not None else registry


def local_directive(store, registry, catalogue, user: User, draft: DirectiveDraft) -> Directive:
    """Send through the engine on a store this process owns, and deliver at once: there is no lower
    tier here to carry it down, so every recipient street's receipt is delivered now."""
    now = store.clock.now()
    directive = directives.send(store, registry, actor=user, targets=list(draft.targets), text=draft.text or draft.title,
                                title=draft.title, priority=draft.priority, require_ack=draft.require_ack,
                                deadline_at=now + draft.deadline_minutes * 60.0, departments=catalogue.departments)
    directives.deliver_to_all(store, registry, directive, user)
    return directive


def default_user(store) -> User:
    scope = CITY_CODE if store.tier is Tier.CITY else store.code
    return User("operator", "值班员", Role.DUTY_OFFICER, store.tier, scope)


def token_user(token: str | None, fallback: User) -> User:
    """Who the token says we are (the payload is readable; only the server checks the signature).

    Server tokens use compact keys (``u n r t s``, see ``server/auth.py``); long names are accepted too.
    """
    if not token or "." not in token:
        return fallback
    try:
        payload = token.split(".", 1)[0]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

        def pick(short: str, long: str, default):
            return data.get(short, data.get(long, default))

        return User(str(pick("u", "user", fallback.user)), str(pick("n", "name", fallback.name)),
                    Role(pick("r", "role", fallback.role)), Tier(pick("t", "tier", fallback.tier)),
                    str(pick("s", "scope", fallback.scope_code)), pick("d", "department", None))
    except (ValueError, binascii.Error, TypeError, AttributeError):
        return fallback


class RemoteBackend(Backend):
    """A replica kept in step by the sync client; every action is a command in its outbox.

    Command bodies follow the tier server's handlers (``server/commands.py``);
    the sync client applies the local effect at once (``sync/optimistic.py``)
    and undoes it if the server refuses, keeping the server's reason.
    """

    def __init__(self, store, client, server_url: str, token: str | None = None, clock: Clock | None = None,
                 catalogue=None, registry=None, lag_slow_s: float = 10.0, user: User | None = None):
        user = user or token_user(token, default_user(store))
        super().__init__(store, user, clock or store.clock, catalogue, registry)
        self.client = client
        self.server_url = server_url
        self.lag_slow_s = lag_slow_s
        self._started = False
        # Refusals kept in the replica's outbox from earlier sessions were shown then; this session
        # shows only its own (and forgets any the user dismisses).
        self._hidden: set[str] = set(_rejection_ids(client))

    def start(self) -> None:
        if not self._started:
            self.client.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                # A pull in flight ends within its (short) long-poll; a stuck one is abandoned.
                self.client.stop(timeout=self.client.wait + 1.0)
            except Exception:  # stopping must never stop the app from quitting
                pass
        close = getattr(self.client, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass

    def _enqueue(self, kind: str, body: dict, label: str, ref: str | None = None) -> Outcome:
        try:
            cid = self.client.enqueue(kind, body)
        except CqgovError as exc:
            return refused(exc)
        return Outcome(True, label, cid, pending=True, ref=ref)

    def act(self, event_id, action, note="", departments=None, target=None) -> Outcome:
        # ``ref`` is what the client's local effect resolves, ``event`` what the server's handler reads.
        body = {"ref": event_id, "event": event_id, "action": action, "note": note}
        if departments:
            body["departments"] = list(departments)
        if target:
            body["target"] = target
        return self._enqueue("act", body, action)

    def _enqueue_supervise(self, event_id: str, note: str) -> Outcome:
        event = self.store.get_event(event_id)
        return self._enqueue("supervise", {"event": event_id, "note": note}, event.number if event else event_id)

    def report(self, category: str, code: str, title: str = "", text: str = "") -> Outcome:
        now = self.clock.now()
        event_id = uuid7(int(now * 1000))  # the replica shows the event at once, under this id
        body = {"event_id": event_id, "category": category, "code": code, "title": title, "text": text,
                "source": "citizen", "reporter": self.user.user}
        return self._enqueue("report", body, title or category, ref=event_id)

    def owner(self, event) -> str | None:
        """The node that owns ``event`` when it is not the server this console talks to (it then
        refuses lifecycle actions: the owning tier acts, an upper tier supervises)."""
        try:
            state = self.client.cursor()
        except Exception:
            return None
        server = getattr(state, "server_node", None)
        if server and event.origin_node and event.origin_node != server:
            return event.origin_node
        return None

    def send_directive(self, draft: DirectiveDraft) -> Outcome:
        try:
            draft.validate()
        except CqgovError as exc:
            return refused(exc)
        now = self.clock.now()
        directive_id = uuid7(int(now * 1000))  # chosen here so the receipts screen can follow it at once
        body = {"directive_id": directive_id, "title": draft.title.strip(), "text": draft.text or draft.title.strip(),
                "targets": list(draft.targets), "priority": draft.priority, "require_ack": draft.require_ack,
                "deadline_at": now + draft.deadline_minutes * 60.0}
        return self._enqueue("directive.send", body, draft.title.strip(), ref=directive_id)

    def receipt(self, directive_id, jurisdiction_code, state) -> Outcome:
        return self._enqueue("receipt", {"directive": directive_id, "code": jurisdiction_code, "state": state}, state)

    def status(self) -> LinkStatus:
        try:
            st = self.client.status()
        except Exception as exc:  # a broken client shows in the status bar; it never kills the app
            return LinkStatus(mode="offline", server=self.server_url, last_error=str(exc).splitlines()[0][:200])
        link = link_status_of(st, self.server_url, self.lag_slow_s)
        if self._hidden and link.rejections:
            from dataclasses import replace

            link = replace(link, rejections=tuple(r for r in link.rejections if r.command_id not in self._hidden))
        return link

    def dismiss_rejections(self) -> int:
        ids = [cid for cid in _rejection_ids(self.client) if cid not in self._hidden]
        self._hidden.update(ids)
        outbox = getattr(self.client, "outbox", None)
        for cid in ids:
            try:
                outbox.dismiss(cid)  # read by the user: the outbox need not keep it
            except Exception:  # hidden either way; the row is only bookkeeping
                pass
        return len(ids)


def _rejection_ids(client) -> list[str]:
    outbox = getattr(client, "outbox", None)
    try:
        return [r.id for r in outbox.rejections(100)]
    except Exception:  # a client without a readable outbox has nothing to hide
        return []


_MODES = {"live": "live", "lagging": "lagging", "offline": "offline", "starting": "connecting"}


def link_status_of(st, server_url: str, lag_slow_s: float = 10.0) -> LinkStatus:
    """The sync client's ``SyncStatus`` (or its ``as_dict()``) as the status bar shows it."""
    data = st if isinstance(st, dict) else st.as_dict()
    mode = _MODES.get(str(data.get("state") or "starting"), "connecting")
    lag = data.get("lag_s")
    slow = lag is not None and lag > lag_slow_s
    if mode == "live" and slow:
        mode = "lagging"
    # The client lists the newest first; the console keeps the newest last.
    rejections = tuple(Rejection(str(r.get("id", "")), str(r.get("reason", "")), str(r.get("code") or "refused"))
                       for r in reversed(data.get("recent_rejections") or ()))
    return LinkStatus(
        mode=mode, server=server_url, lag_s=None if lag is None else float(lag),
        offline_since=data.get("offline_since"), outbox=int(data.get("outbox") or 0),
        last_error=str(data.get("last_error") or ""), rejections=rejections, slow=slow,
    )
