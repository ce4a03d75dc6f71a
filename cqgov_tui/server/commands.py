"""Command handlers: one envelope type → one engine call, scoped and audited.

The sync router calls ``CommandHandler.execute(user, type, body)`` inside
``store.tx()`` once per command; what it returns goes back to the client,
what it raises (a ``CqgovError``) is the command's rejection. A refused
command rolls its transaction back, so refusals for lack of scope or
permission are queued here and written to the audit log by ``flush_denials``
in a transaction of their own once the request is done.

Types: ``report``, ``act``, ``supervise``, ``directive.send``, ``receipt``,
``sensor.reading`` (at a district or street server), and, from a lower
tier's server only, ``federate.event`` and ``federate.receipt``.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import fields
from typing import Any, Callable

from ..domain.entities import Event, Receipt, Role, Status, Tier, User
from ..engine import directives
from ..engine.lifecycle import rule_for
from ..engine.sensors import Rejection, SensorMonitor
from ..errors import BadInput, CqgovError, PermissionDenied
from ..scope import CITY_CODE, covers
from .auth import Principal, require_visible

MAX_TEXT = 4000
MAX_READINGS = 500  # per sensor.reading command: a bounded transaction, well inside the batch's byte limit
_EVENT_FIELDS = {f.name: f for f in fields(Event)}
_RECEIPT_FIELDS = {f.name for f in fields(Receipt)}


def effective_user(user: User, store) -> User:
    """The caller narrowed to this server's subtree (a city token used at a district acts for that district)."""
    if covers(store.code, user.scope_code):
        return user
    if covers(user.scope_code, store.code):
        narrowed = store.code if store.tier is not Tier.CITY else CITY_CODE
        if isinstance(user, Principal):
            return Principal(user.user, user.name, user.role, user.tier, narrowed, user.department, user.expires_at,
                             user.peer)
        return User(user.user, user.name, user.role, user.tier, narrowed, user.department)
    raise PermissionDenied(f"{user.user} (scope {user.scope_code}) has no access to the {store.tier.value} server {store.code}")


# ------------------------------------------------------------ body validation


def _body(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadInput("command body must be a JSON object")
    return body


def _str(body: dict, key: str, *, required: bool = False, default: str | None = None, max_len: int = MAX_TEXT) -> str | None:
    value = body.get(key, default)
    if value is None:
        if required:
            raise BadInput(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise BadInput(f"field {key!r} must be a string")
    if len(value) > max_len:
        raise BadInput(f"field {key!r} is too long ({len(value)} > {max_len})")
    if required and not value.strip():
        raise BadInput(f"field {key!r} is empty")
    return value


def _num(body: dict, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadInput(f"field {key!r} must be a number")
    try:
        out = float(value)
    except ValueError:
        raise BadInput(f"field {key!r} must be a number") from None
    if not math.isfinite(out):
        raise BadInput(f"field {key!r} must be finite")
    return out


def _str_list(body: dict, key: str, max_items: int = 2000) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 64 for v in value):
        raise BadInput(f"field {key!r} must be a list of codes")
    if len(value) > max_items:
        raise BadInput(f"field {key!r} has too many items")
    return [v.strip() for v in value]


def event_from_wire(data: Any) -> Event:
    """Validate a whole event row sent by another tier."""
    if not isinstance(data, dict):
        raise BadInput("federated event must be an object")
    missing = [k for k in _EVENT_FIELDS if k not in data]
    if missing:
        raise BadInput(f"federated event lacks {', '.join(missing[:5])}")
    values = {}
    for name in _EVENT_FIELDS:
        v = data[name]
        if name == "departments":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise BadInput("federated event field 'departments' must be a list of strings")
        elif name in ("lon", "lat", "reported_at", "stage_started_at", "due_at", "closed_at", "updated_at"):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise BadInput(f"federated event field {name!r} must be a number")
            v = None if v is None else float(v)
        elif name in ("escalation_level", "version"):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInput(f"federated event field {name!r} must be a non-negative integer")
        elif v is not None and not isinstance(v, str):
            raise BadInput(f"federated event field {name!r} must be a string")
        elif isinstance(v, str) and len(v) > MAX_TEXT:
            raise BadInput(f"federated event field {name!r} is too long")
        values[name] = v
    for required in ("id", "district_code", "status", "colour", "origin_node", "origin_tier"):
        if not values[required]:
            raise BadInput(f"federated event field {required!r} is empty")
    try:
        Status(values["status"])
        Tier(values["origin_tier"])
    except ValueError as exc:
        raise BadInput(f"federated event: {exc}") from None
    if values["version"] < 1:
        raise BadInput("federated event version must be at least 1")
    return Event(**values)


def receipt_from_wire(data: Any) -> Receipt:
    if not isinstance(data, dict):
        raise BadInput("federated receipt must be an object")
    missing = [k for k in _RECEIPT_FIELDS if k not in data]
    if missing:
        raise BadInput(f"federated receipt lacks {', '.join(missing)}")
    for k in ("directive_id", "jurisdiction_code", "state"):
        if not isinstance(data[k], str) or not data[k] or len(data[k]) > 64:
            raise BadInput(f"federated receipt field {k!r} must be a non-empty string")
    for k in ("delivered_at", "read_at", "acknowledged_at", "executed_at"):
        v = data[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise BadInput(f"federated receipt field {k!r} must be a number")
    for k in ("renotified", "version"):
        if isinstance(data[k], bool) or not isinstance(data[k], int) or data[k] < 0:
            raise BadInput(f"federated receipt field {k!r} must be a non-negative integer")
    if data["actor"] is not None and not isinstance(data["actor"], str):
        raise BadInput("federated receipt field 'actor' must be a string")
    if data["state"] not in directives.RANK:
        raise BadInput(f"unknown receipt state {data['state']!r}")
    return Receipt(**{k: data[k] for k in _RECEIPT_FIELDS})


# ------------------------------------------------------------ handler


class CommandHandler:
    def __init__(self, engine, on_applied: Callable[[str], None] | None = None):
        self.engine = engine
        self.store = engine.store
        self.registry = engine.registry
        self.sensors = SensorMonitor(engine)
        self._denials: collections.deque = collections.deque(maxlen=10_000)
        self._denial_lock = threading.Lock()
        self.on_applied = on_applied  # e.g. wakes the federation pump
        self.handlers: dict[str, Callable[[User, dict], dict]] = {
            "report": self._report,
            "act": self._act,
            "supervise": self._supervise,
            "directive.send": self._directive_send,
            "receipt": self._receipt,
            "sensor.reading": self._sensor_reading,
            "federate.event": self._federate_event,
            "federate.receipt": self._federate_receipt,
        }

    @property
    def types(self) -> list[str]:
        return sorted(self.handlers)

    def prepare(self, commands: list[dict]) -> None:
        """Work a batch can share before its commands run one by one: the reports' places, in one lookup."""
        points = []
        for cmd in commands:
            body = cmd.get("body")
            if cmd.get("type") == "report" and isinstance(body, dict):
                lon, lat = body.get("lon"), body.get("lat")
                if isinstance(lon, (int, float)) and isinstance(lat, (int, float)) \
                        and not isinstance(lon, bool) and not isinstance(lat, bool):
                    points.append((float(lon), float(lat)))
        self.engine.preplace(points)

    def execute(self, user: User, command_type: str, body: Any) -> dict:
        handler = self.handlers.get(command_type) if isinstance(command_type, str) else None
        if handler is None:
            raise BadInput(f"unknown command type {command_type!r} (expected one of {', '.join(self.types)})")
        try:
            actor = effective_user(user, self.store)
            result = handler(actor, _body(body))
        except PermissionDenied as exc:
            self._deny(user, command_type, body, str(exc))
            raise
        if self.on_applied is not None:
            self.on_applied(command_type)
        return result

    # ---- refusals, audited outside the refused transaction

    def _deny(self, user: User, command_type: str, body: Any, reason: str) -> None:
        target = ""
        if isinstance(body, dict):
            for key in ("event", "directive", "event_id"):
                if isinstance(body.get(key), str):
                    target = body[key][:64]
                    break
        with self._denial_lock:
            self._denials.append((self.store.clock.now(), user, command_type if isinstance(command_type, str) else "?",
                                  target, reason))

    def pending_denials(self) -> int:
        return len(self._denials)

    def flush_denials(self) -> int:
        with self._denial_lock:
            batch = list(self._denials)
            self._denials.clear()
        if not batch:
            return 0
        with self.store.tx():
            for at, user, ctype, target, reason in batch:
                self.store.append_audit(event_id=target or "-", action="denied", from_status=None, to_status=None,
                                        actor=user.user, role=Role(user.role).value, tier=Tier(user.tier).value,
                                        note=f"{ctype} refused: {reason}", at=at)
        return len(batch)

    # ---- the closed loop

    def _report(self, actor: User, body: dict) -> dict:
        if body.get("source") == "sensor":
            # Sensor alarms open from readings only, so a client cannot fake (or mask) a sensor's episode.
            raise BadInput("sensor events open from readings: send them as sensor.reading")
        lon, lat = _num(body, "lon"), _num(body, "lat")
        if (lon is None) != (lat is None):
            raise BadInput("give both lon and lat, or a code")
        event = self.engine.report(
            category=_str(body, "category", required=True, max_len=64),
            title=_str(body, "title", default="", max_len=200), text=_str(body, "text", default=""),
            lon=lon, lat=lat, code=_str(body, "code", max_len=32), colour=_str(body, "colour", max_len=16),
            source=_str(body, "source", default="citizen", max_len=32),
            reporter=_str(body, "reporter", default="", max_len=64) or actor.user,
            address=_str(body, "address", default="", max_len=200), actor=actor,
            event_id=_str(body, "event_id", max_len=64),
        )
        return {"event_id": event.id, "number": event.number, "status": event.status, "colour": event.colour}

    def _act(self, actor: User, body: dict) -> dict:
        ref = _str(body, "event", required=True, max_len=64)
        action = _str(body, "action", required=True, max_len=32)
        rule = rule_for(action)
        event = self.store.resolve_event(ref)
        require_visible(actor, event.grid_code or event.street_code or event.district_code, f"event {event.number}")
        if rule.target is not None and event.origin_node != self.store.node:
            # The owning tier applies lifecycle actions; an upper tier supervises (see federation.py).
            raise PermissionDenied(
                f"{event.number} is owned by {event.origin_node}; its tier acts on it — send `supervise` instead")
        event = self.engine.act(event.id, action, actor, note=_str(body, "note", default=""),
                                departments=_str_list(body, "departments"), target=_str(body, "target", max_len=64))
        return {"event_id": event.id, "number": event.number, "status": event.status, "version": event.version}

    def _supervise(self, actor: User, body: dict) -> dict:
        """督办 an event from an upper tier: a directive to the owning jurisdiction, noted on the event."""
        ref = _str(body, "event", required=True, max_len=64)
        note = _str(body, "note", required=True)
        event = self.store.resolve_event(ref)
        owner = event.street_code or event.district_code
        require_visible(actor, owner, f"event {event.number}")
        now = self.store.clock.now()
        deadline = _num(body, "deadline_at") or now + 3600.0
        d = directives.send(self.store, self.registry, actor=actor, targets=[owner],
                            title=f"督办 {event.number}", text=f"督办 {event.number} {event.title}: {note}",
                            priority="high", deadline_at=deadline, require_ack=True)
        self.store.append_audit(event_id=event.id, action="supervise_request", from_status=event.status,
                                to_status=event.status, actor=actor.user, role=Role(actor.role).value,
                                tier=Tier(actor.tier).value, note=f"{d.number}: {note}")
        return {"directive_id": d.id, "number": d.number, "event_id": event.id}

    # ---- directives

    def _directive_send(self, actor: User, body: dict) -> dict:
        deadline = _num(body, "deadline_at")
        if deadline is None:
            text = _str(body, "deadline", required=True, max_len=40)
            deadline = directives.parse_deadline(text, self.store.clock.now())
        require_ack = body.get("require_ack", True)
        if not isinstance(require_ack, bool):
            raise BadInput("field 'require_ack' must be true or false")
        targets = _str_list(body, "targets")
        if not targets:
            raise BadInput("missing field 'targets'")
        d = directives.send(self.store, self.registry, actor=actor, targets=targets,
                            text=_str(body, "text", required=True), title=_str(body, "title", default="", max_len=200),
                            priority=_str(body, "priority", default="normal", max_len=16), deadline_at=deadline,
                            require_ack=require_ack, directive_id=_str(body, "directive_id", max_len=64),
                            departments=self.engine.catalogue.departments)
        return {"directive_id": d.id, "number": d.number, "targets": d.targets,
                "recipients": len(directives.recipients(self.registry, d.targets))}

    def _receipt(self, actor: User, body: dict) -> dict:
        code = _str(body, "code", max_len=32) or self.store.code
        r = directives.advance(self.store, _str(body, "directive", required=True, max_len=64), code,
                               _str(body, "state", required=True, max_len=16), actor)
        return {"directive_id": r.directive_id, "code": r.jurisdiction_code, "state": r.state}

    # ---- sensors

    def _sensor_reading(self, actor: User, body: dict) -> dict:
        """Readings of sensors in the caller's jurisdiction → alarm episodes (``SensorMonitor.ingest``).

        Readings are local telemetry: they stay in this server's store (never in
        the change log); the events they open federate up like any other. So the
        city ingests none, and a sensor whose running alarm another server owns
        is refused here (its readings belong there). A sensor outside the
        caller's jurisdiction refuses the whole command before anything is
        written; other bad readings are refused one by one and the rest applied.
        """
        if self.store.tier is Tier.CITY:
            raise BadInput("the city server ingests no readings: send them to the district or street server "
                           "that owns the sensor's location (the events they open reach the city)")
        readings = body.get("readings")
        if not isinstance(readings, list) or not readings:
            raise BadInput("field 'readings' must be a non-empty list of [sensor_code, measured_at, value]")
        if len(readings) > MAX_READINGS:
            raise BadInput(f"field 'readings' has {len(readings)} readings; at most {MAX_READINGS} per command")
        catalogue = self.engine.catalogue
        # code → (sensor code, grid) or None: each of a district's sensors is looked up once, not per reading
        points: dict[str, tuple[str, str] | None] = self.__dict__.setdefault("_sensor_points", {})
        located: dict[int, str] = {}  # index → sensor code, for readings naming a known sensor
        for i, reading in enumerate(readings):
            code = reading[0] if isinstance(reading, list) and reading and isinstance(reading[0], str) else None
            if code is None:
                continue
            if code not in points:
                sensor = catalogue.sensors.get(code.strip())
                point = catalogue.risk_points.get(sensor.risk_point_code) if sensor else None
                points[code] = (sensor.code, point.grid_code) if point is not None else None
            found = points[code]
            if found is None:
                continue  # the monitor gives the reason
            if not covers(actor.scope_code, found[1]):
                raise PermissionDenied(f"sensor {found[0]} (grid {found[1]}) is outside "
                                       f"{actor.user}'s jurisdiction {actor.scope_code}")
            located[i] = found[0]
        with self.store.tx():  # (the router's, when it runs the command)
            # Keyed: the in-memory sensor state and the running events by id (store.sensors), no scan;
            # read once here and handed to the monitor in the same transaction.
            states = self.store.sensor_states(sorted(set(located.values())))
            running = self.store.episode_events(states)
            elsewhere = {code: e.origin_node for code, e in running.items() if e.origin_node != self.store.node}
            refused = [Rejection(i, code, f"{code}: its running alarm {running[code].number} is owned by "
                                          f"{elsewhere[code]}; send its readings there")
                       for i, code in located.items() if code in elsewhere]
            kept = [i for i in range(len(readings)) if not (i in located and located[i] in elsewhere)]
            result = self.sensors.ingest([readings[i] for i in kept], states=states)
        refused += [Rejection(kept[r.index], r.sensor_code, r.reason) for r in result.rejected]
        refused.sort(key=lambda r: r.index)
        if not result.stored:
            # Nothing applied (so nothing written): the command itself is refused, first reasons given.
            more = f" (+{len(refused) - 2} more)" if len(refused) > 2 else ""
            raise BadInput(f"no reading applied: {'; '.join(str(r) for r in refused[:2])}{more}")
        opened = [e for e in (self.store.get_event(i) for i in result.opened) if e is not None]
        return {"stored": result.stored, "opened": result.opened, "cleared": result.cleared,
                "attached": result.attached, "raised": result.raised,
                # plans may have moved a new event on already; callers walking the loop need where it stands
                "opened_events": [{"event_id": e.id, "number": e.number, "status": e.status, "colour": e.colour}
                                  for e in opened],
                "rejected": [{"index": r.index, "sensor": r.sensor_code, "reason": r.reason} for r in refused]}

    # ---- federation (from the lower tier's server)

    def _require_peer(self, actor: User) -> None:
        lower = {Tier.CITY: Tier.DISTRICT, Tier.DISTRICT: Tier.STREET}.get(self.store.tier)
        if not (isinstance(actor, Principal) and actor.peer) or Tier(actor.tier) is not lower:
            raise PermissionDenied(f"{actor.user} is not a {lower.value if lower else 'lower'}-tier server of this {self.store.tier.value} server")

    def _federate_event(self, actor: User, body: dict) -> dict:
        self._require_peer(actor)
        event = event_from_wire(body.get("event"))
        require_visible(actor, event.grid_code or event.street_code or event.district_code, f"event {event.id}")
        if event.origin_node == self.store.node:
            return {"event_id": event.id, "applied": False, "reason": "own event"}  # never take our own back
        written, previous = self.store.upsert_event_copy(event, origin=event.origin_node)
        if written:
            self.store.append_audit(
                event_id=event.id, action="federate", from_status=previous.status if previous else None,
                to_status=event.status, actor=actor.user, role=Role(actor.role).value, tier=Tier(actor.tier).value,
                note=f"{event.number} v{event.version} from {event.origin_node}")
        return {"event_id": event.id, "applied": written, "version": event.version}

    def _federate_receipt(self, actor: User, body: dict) -> dict:
        self._require_peer(actor)
        receipt = receipt_from_wire(body.get("receipt"))
        require_visible(actor, receipt.jurisdiction_code, f"receipt of {receipt.jurisdiction_code}")
        origin = _str(body, "origin", max_len=64) or actor.user  # apply_receipt refuses an unknown directive
        applied = directives.apply_receipt(self.store, receipt, origin=origin)
        return {"directive_id": receipt.directive_id, "code": receipt.jurisdiction_code, "applied": applied}


def safe_message(exc: BaseException) -> str:
    """One line for a client: our own errors verbatim, anything else generic."""
    if isinstance(exc, CqgovError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "internal error"
