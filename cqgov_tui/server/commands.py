"""Command handlers: one envelope type → one engine call, scoped and audited.

The sync router calls ``CommandHandler.execute(user, type, body)`` inside
``store.tx()`` once per command; what it returns goes back to the client,
what it raises (a ``CqgovError``) is the command's rejection. A refused
command rolls its transaction back, so refusals for lack of scope or
permission are counted here (``denials.DenialLedger``: per caller and minute)
and written to the audit log by ``flush_denials``, one entry per caller and
minute with the count, in a transaction of their own.

Types: ``report``, ``act``, ``supervise``, ``directive.send``, ``receipt``,
``sensor.reading`` (at a district or street server), and, from a lower
tier's server only, ``federate.event`` and ``federate.receipt``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from .. import ownership
from ..domain.entities import Role, Tier, User
from ..engine import access, directives
from ..engine.lifecycle import rule_for
from ..engine.sensors import Rejection, SensorMonitor
from ..errors import BadInput, CqgovError, PermissionDenied
from ..scope import CITY_CODE, covers
from . import bodies, denials
from .auth import Principal



def effective_user(user: User, store) -> User:
    """The caller narrowed to this server's subtree (a city token used at a district acts for that district)."""
    if covers(store.code, user.scope_code):
        return user
    if covers(user.scope_code, store.code):
        narrowed = store.code if store.tier is not Tier.CITY else CITY_CODE
        return replace(user, scope_code=narrowed)
    raise PermissionDenied(f"{user.user} (scope {user.scope_code}) has no access to the {store.tier.value} server {store.code}")


# ------------------------------------------------------------ handler


class CommandHandler:
    def __init__(self, engine, on_applied: Callable[[str], None] | None = None,
                 denial_limit: int = denials.DEFAULT_LIMIT):
        self.engine = engine
        self.store = engine.store
        self.registry = engine.registry
        self.sensors = SensorMonitor(engine)
        self.denials = denials.DenialLedger(denial_limit)
        self.on_applied = on_applied  # e.g. wakes the federation pump
        self.handlers: dict[str, Callable[[User, Any], dict]] = {
            "report": self._report,
            "act": self._act,
            "supervise": self._supervise,
            "directive.send": self._directive_send,
            "receipt": self._receipt,
            "sensor.reading": self._sensor_reading,
            "federate.event": self._federate_event,
            "federate.receipt": self._federate_receipt,
            "risk.inspect": self._risk_inspect,
            "figure.feed": self._figure_feed,
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
                # Only plausible points (an integer too large for a float must not fail the batch here:
                # its command is refused on its own by the body model).
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) and -180 <= v <= 180
                       for v in (lon, lat)):
                    points.append((float(lon), float(lat)))
        self.engine.preplace(points)

    def execute(self, user: User, command_type: str, body: Any) -> dict:
        handler = self.handlers.get(command_type) if isinstance(command_type, str) else None
        if handler is None:
            raise BadInput(f"unknown command type {command_type!r} (expected one of {', '.join(self.types)})")
        try:
            actor = effective_user(user, self.store)
            if command_type.startswith("federate."):
                self._require_peer(actor)  # who may send rows at all comes before what the rows say
            elif isinstance(actor, Principal) and actor.peer:
                # A server's token stands for the server, not for a person: it carries federation only.
                raise PermissionDenied(f"{actor.user} is a peer token: it may send federate.* commands only")
            # The typed body (bodies.py) or BadInput with the reason: a malformed command is rejected here,
            # before its handler runs, so nothing it carries can fail deeper down.
            typed = bodies.parse(command_type, body, self.store.clock.now()) if command_type in bodies.BODIES \
                else body  # (a handler registered without a model: tests only; test_server_bodies checks)
            result = handler(actor, typed)
        except PermissionDenied as exc:
            self._deny(user, command_type, body, str(exc))
            raise
        if self.on_applied is not None:
            self.on_applied(command_type)
        return result

    # ---- refusals, audited outside the refused transaction (counted per caller and minute)

    def deny(self, user: User, kind: str, reason: str) -> None:
        """Count one refusal of ``user`` (audited with the rest of its minute)."""
        self.denials.record(user, kind, reason, self.store.clock.now())

    def _deny(self, user: User, command_type: str, body: Any, reason: str) -> None:
        self.deny(user, command_type if isinstance(command_type, str) else "?", reason)

    def pending_denials(self) -> int:
        return self.denials.pending()

    def flush_denials(self, final: bool = False) -> int:
        """Audit each (caller, minute) of denials whose minute has ended (all of them when ``final``):
        one entry with the count. Returns how many denials the entries cover."""
        due = self.denials.take_due(self.store.clock.now(), final=final)
        if not due:
            return 0
        try:
            with self.store.tx():
                self.store.append_audits([denials.audit_fields(t) for t in due])
        except Exception:
            self.denials.put_back(due)  # counted again at the next flush
            raise
        return sum(t.count for t in due)

    # ---- the closed loop

    def _report(self, actor: User, body: bodies.ReportBody) -> dict:
        event = self.engine.report(
            category=body.category, title=body.title, text=body.text, lon=body.lon, lat=body.lat, code=body.code,
            colour=body.colour, source=body.source, reporter=body.reporter or actor.user, address=body.address,
            actor=actor, event_id=body.event_id,
        )
        return {"event_id": event.id, "number": event.number, "status": event.status, "colour": event.colour}

    def _act(self, actor: User, body: bodies.ActBody) -> dict:
        ref, action = body.event, body.action
        rule = rule_for(action)
        event = access.find_event(self.store, ref, actor)  # exact id or number, in the caller's jurisdiction
        if rule.target is not None and event.origin_node != self.store.node:
            # The owning tier applies lifecycle actions; an upper tier supervises (see federation.py).
            raise PermissionDenied(
                f"{event.number} is owned by {event.origin_node}; its tier acts on it — send `supervise` instead",
                code="owned_elsewhere")
        event = self.engine.act(event.id, action, actor, note=body.note,
                                departments=[d.strip() for d in body.departments] if body.departments is not None
                                else None, target=body.target)
        return {"event_id": event.id, "number": event.number, "status": event.status, "version": event.version}

    def _supervise(self, actor: User, body: bodies.SuperviseBody) -> dict:
        """督办 an event from an upper tier: a directive to the owning jurisdiction, noted on the event."""
        d, event = directives.supervise(self.store, self.registry, actor=actor, event_ref=body.event, note=body.note,
                                        deadline_at=body.deadline_at)
        return {"directive_id": d.id, "number": d.number, "event_id": event.id}

    # ---- directives

    def _directive_send(self, actor: User, body: bodies.DirectiveSendBody) -> dict:
        assert body.deadline_at is not None  # the model fills it from ``deadline`` (parsed against our clock)
        d = directives.send(self.store, self.registry, actor=actor, targets=body.targets, text=body.text,
                            title=body.title, priority=body.priority, deadline_at=body.deadline_at,
                            require_ack=body.require_ack, directive_id=body.directive_id,
                            departments=self.engine.catalogue.departments)
        return {"directive_id": d.id, "number": d.number, "targets": d.targets,
                "recipients": len(directives.recipients(self.registry, d.targets))}

    def _receipt(self, actor: User, body: bodies.ReceiptBody) -> dict:
        code = body.code or self.store.code
        r = directives.advance(self.store, body.directive, code, body.state, actor)
        return {"directive_id": r.directive_id, "code": r.jurisdiction_code, "state": r.state}

    # ---- the board's inputs: risk-point inspections and 一表通 figures

    def _risk_inspect(self, actor: User, body: bodies.RiskInspectBody) -> dict:
        from ..engine.risk_grades import inspect

        grade = inspect(self.store, self.engine.catalogue, body.point.strip(), body.result, actor,
                        self.store.clock.now(), body.note)
        return {"point": grade.code, "colour": grade.colour.value, "reasons": list(grade.reasons)}

    def _figure_feed(self, actor: User, body: bodies.FigureFeedBody) -> dict:
        scope = (body.scope or "").strip() or (CITY_CODE if self.store.tier is Tier.CITY else self.store.code)
        if not covers(actor.scope_code, scope):
            raise PermissionDenied(f"{actor.user} may not feed figures for {scope}: outside {actor.scope_code}",
                                   code="not_in_jurisdiction")
        self.registry.get(scope)  # an unknown jurisdiction is refused (UnknownCode)
        if Role(actor.role) in (Role.AUDITOR, Role.GRID_WORKER):
            raise PermissionDenied(f"a {Role(actor.role).value} may not feed 一表通 figures")
        now = self.store.clock.now()
        self.store.feed_figure(body.name, scope, now, body.value, body.source)
        return {"name": body.name, "scope_code": scope, "value": body.value, "measured_at": now}

    # ---- sensors

    def _sensor_reading(self, actor: User, body: bodies.SensorReadingBody) -> dict:
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
        readings = body.readings  # 1–500 readings of JSON scalars (bodies.py); their shape is checked one by one
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

    def _require_peer(self, actor: User) -> str:
        """The peer's own node (``street-500108001``), named by its token; refused for anyone else."""
        lower = {Tier.CITY: Tier.DISTRICT, Tier.DISTRICT: Tier.STREET}.get(self.store.tier)
        if not (isinstance(actor, Principal) and actor.peer and actor.node) or Tier(actor.tier) is not lower:
            raise PermissionDenied(f"{actor.user} is not a {lower.value if lower else 'lower'}-tier server of this {self.store.tier.value} server")
        return actor.node

    def _federate_event(self, actor: User, body: bodies.FederateEventBody) -> dict:
        peer = self._require_peer(actor)
        event = body.event.entity()
        if event.origin_node == self.store.node:
            return {"event_id": event.id, "applied": False, "reason": "own event"}  # never take our own back
        place = event.grid_code or event.street_code or event.district_code
        stored = self.store.get_event(event.id)
        refusal = ownership.copy_refusal(self.store.node, peer, event.origin_node, place,
                                         stored.origin_node if stored is not None else None)
        if refusal is None and stored is not None:
            # The held row must lie inside the peer's subtree too (a copy cannot move a row out of another's).
            refusal = ownership.copy_refusal(self.store.node, peer, stored.origin_node,
                                             stored.grid_code or stored.street_code or stored.district_code)
        owner = ownership.parse_node(event.origin_node)
        if refusal is None and owner is not None and owner.tier.value != event.origin_tier:
            refusal = f"origin_tier {event.origin_tier} disagrees with origin_node {event.origin_node}"
        if refusal is not None:
            raise PermissionDenied(f"federate.event {event.id} refused: {refusal}")
        written, previous = self.store.upsert_event_copy(event, origin=event.origin_node)
        if written:
            self.store.append_audit(
                event_id=event.id, action="federate", from_status=previous.status if previous else None,
                to_status=event.status, actor=actor.user, role=Role(actor.role).value, tier=Tier(actor.tier).value,
                note=f"{event.number} v{event.version} from {event.origin_node}")
        return {"event_id": event.id, "applied": written, "version": event.version}

    def _federate_receipt(self, actor: User, body: bodies.FederateReceiptBody) -> dict:
        peer = self._require_peer(actor)
        receipt = body.receipt.entity()
        code = receipt.jurisdiction_code
        # A receipt is owned by the street that answers it; the sender names it as the origin.
        origin = body.origin or peer
        refusal = ownership.copy_refusal(self.store.node, peer, f"street-{code}", code)
        if refusal is None and origin != peer and not ownership.node_within(peer, origin):
            refusal = f"origin {origin!r} is not {peer} or inside its jurisdiction"
        if refusal is None:
            d = self.store.get_directive(receipt.directive_id)
            if d is None or d.id != receipt.directive_id or not directives.addressed_to(d, code):
                refusal = f"no directive {receipt.directive_id} addressed to {code}"
        if refusal is not None:
            raise PermissionDenied(f"federate.receipt refused: {refusal}")
        applied = directives.apply_receipt(self.store, receipt, origin=origin)
        return {"directive_id": receipt.directive_id, "code": receipt.jurisdiction_code, "applied": applied}


def safe_message(exc: BaseException) -> str:
    """One line for a client: our own errors verbatim, anything else generic."""
    if isinstance(exc, CqgovError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "internal error"
