"""A tier server's people endpoints and command types: roster, who is on duty, dispatch to a person, tasks,
notifications and their acknowledgement.

Command types (``POST /v1/commands``, so a console's outbox carries them like any other):
``roster.import``, ``person.status``, ``dispatch.person``, ``task.create``, ``task.act``, ``task.complete``,
``tasks.generate``, ``notify.ack``, ``roster.override``, and ``federate.person_status`` (a lower tier server
sending on a status report for a roster row held here: see ``route_status``). Each body is a pydantic model: a malformed body is refused with one line
naming the field, and nothing changes.

Reads: ``GET /v1/roster`` (``?role=&on_duty=1``), ``GET /v1/roster/on-call?role=&code=``, ``GET /v1/roster/overrides``,
``GET /v1/tasks`` (``?mine=1&all=1``), ``GET /v1/notifications`` (``?mine=1``), and
``GET /v1/notify/ack/{id}?k=…`` — the acknowledgement link sent in a message (its key is the proof).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..domain.entities import Role, User
from ..errors import BadInput, CqgovError, PermissionDenied, UnknownCode
from ..notify.service import acknowledge, notification_dict
from ..people import roster, tasks
from ..ownership import parse_node
from ..scope import covers
from .bodies import Lat, Lon, Timestamp

if TYPE_CHECKING:
    from .app import TierServer

_COMMAND = (Role.ADMIN.value, Role.DUTY_OFFICER.value, Role.DISPATCHER.value)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RosterImport(_Body):
    csv: str = Field(max_length=20_000_000)
    source: str = Field("roster.csv", max_length=200)


class PersonStatus(_Body):
    user: str | None = Field(None, max_length=64)
    status: Literal["on_duty", "busy", "off"] | None = None
    lon: Lon | None = None  # finite and on the globe (bodies.py's field kinds)
    lat: Lat | None = None

    @model_validator(mode="after")
    def _something(self) -> "PersonStatus":
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give both lon and lat")
        if self.status is None and self.lon is None:
            raise ValueError("report a status, a position or both")
        return self


class FederatePersonStatus(PersonStatus):
    """A status report a lower tier received for a roster row this tier (or one above) holds."""

    user: str = Field(min_length=1, max_length=64)
    at: Timestamp  # when the person's client reported it, at the lower tier


class DispatchPerson(_Body):
    event: str = Field(min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)
    note: str = Field("", max_length=2000)
    departments: list[str] | None = Field(None, max_length=50)


class TaskCreate(_Body):
    code: str = Field(min_length=1, max_length=32)
    title: str = Field(min_length=1, max_length=200)
    assignee: str | None = Field(None, max_length=64)
    due_at: Timestamp | None = None
    note: str = Field("", max_length=2000)
    task_id: str | None = Field(None, max_length=64)


class TaskAct(_Body):
    task: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=16)
    note: str = Field("", max_length=2000)
    finding: str | None = Field(None, max_length=16)
    photo: str | None = Field(None, max_length=80)


class TaskComplete(_Body):
    items: list[tuple[str, str | None, str]] = Field(min_length=1, max_length=500)


class TasksGenerate(_Body):
    scope: str | None = Field(None, max_length=32)
    day: str | None = Field(None, max_length=10)


class FloodWarn(_Body):
    targets: list[str] = Field(min_length=1, max_length=2000)
    step: int = Field(ge=1, le=3)
    river: str = Field("", max_length=60)
    text: str = Field("", max_length=4000)


class DutyOverrideBody(_Body):
    user: str = Field(min_length=1, max_length=64)
    role: str = Field(min_length=1, max_length=32)
    jurisdiction: str = Field(pattern=r"^[0-9]{6,15}$")
    starts_at: Timestamp
    ends_at: Timestamp


class NotifyAck(_Body):
    notification: str = Field(min_length=1, max_length=300)


BODIES: dict[str, type[_Body]] = {
    "roster.import": RosterImport, "person.status": PersonStatus, "dispatch.person": DispatchPerson,
    "task.create": TaskCreate, "task.act": TaskAct, "task.complete": TaskComplete, "tasks.generate": TasksGenerate,
    "notify.ack": NotifyAck, "flood.warn": FloodWarn, "roster.override": DutyOverrideBody,
    "federate.person_status": FederatePersonStatus,
}


def parse_body(command_type: str, body: dict[str, Any]) -> Any:
    try:
        return BODIES[command_type](**body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err.get("loc", ())) or "body"
        raise BadInput(f"{command_type}: {where}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}") from None
    except TypeError as exc:
        raise BadInput(f"{command_type}: {exc}") from None


def handlers(server: TierServer) -> dict[str, Callable[[User, dict[str, Any]], dict[str, Any]]]:
    """Command type → handler, merged into the server's ``CommandHandler``."""
    store, engine = server.store, server.engine

    def need_command(actor: User, what: str) -> None:
        if Role(actor.role).value not in _COMMAND:
            raise PermissionDenied(f"a {Role(actor.role).value} may not {what}")

    def roster_import(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: RosterImport = parse_body("roster.import", body)
        if Role(actor.role).value not in (Role.ADMIN.value, Role.DUTY_OFFICER.value):
            raise PermissionDenied(f"a {Role(actor.role).value} may not import the roster")
        rows = roster.parse_csv(b.csv, b.source)
        return roster.import_rows(store, engine.registry, rows, scope_code=actor.scope_code, source=b.source)

    def person_status(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: PersonStatus = parse_body("person.status", body)
        user = b.user or actor.user
        if user != actor.user and Role(actor.role).value not in _COMMAND:
            raise PermissionDenied(f"{actor.user} may report only their own status")
        person = store.get_person(user)
        if person is not None and not covers(actor.scope_code, person.jurisdiction):
            raise PermissionDenied(f"{user} works outside {actor.scope_code}")
        return route_status(user, b.status, b.lon, b.lat, store.clock.now())

    def route_status(user: str, status: str | None, lon: float | None, lat: float | None,
                     at: float) -> dict[str, Any]:
        """Apply a status report where the roster row is held, or send it on to that server: a row that came
        from a tier above (its latest change's origin) is that tier's, so the report goes up through the
        outbox (kept while the link is down) and comes back down as the owner's new version."""
        person = store.get_person(user)
        if person is None:
            raise UnknownCode(f"no person {user!r} in the roster")
        me, owner = parse_node(store.node), parse_node(store.row_origin("person", user))
        if me is not None and owner is not None and owner.above(me) and server.client is not None:
            body = {"user": user, "status": status, "lon": lon, "lat": lat, "at": at}
            server.client.enqueue("federate.person_status", {k: v for k, v in body.items() if v is not None},
                                  local_effect=lambda _store: None)
            return {"user": user, "status": status or person.status, "lon": lon, "lat": lat,
                    "version": person.version, "forwarded_to": owner.name}
        if person.seen_at is not None and at < person.seen_at:
            # An older report arriving after a newer one (a link that was down): the newer one stands.
            return {"user": user, "status": person.status, "lon": person.lon, "lat": person.lat,
                    "version": person.version, "stale": True}
        p = roster.report_status(store, user, status, lon, lat, at)
        return {"user": p.user, "status": p.status, "lon": p.lon, "lat": p.lat, "version": p.version}

    def federate_person_status(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: FederatePersonStatus = parse_body("federate.person_status", body)
        peer = parse_node(getattr(actor, "node", None))  # the command handler admitted peers only
        if peer is None:
            raise PermissionDenied(f"{actor.user} is not a lower-tier server")
        person = store.get_person(b.user)
        if person is None:
            raise UnknownCode(f"no person {b.user!r} in the roster")
        if not covers(peer.code, person.jurisdiction):
            raise PermissionDenied(f"{b.user} works outside {peer.name}")
        return route_status(b.user, b.status, b.lon, b.lat, b.at)

    def dispatch_person(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: DispatchPerson = parse_body("dispatch.person", body)
        need_command(actor, "dispatch")
        event = store.resolve_event(b.event)
        if event.origin_node != store.node:
            raise PermissionDenied(f"{event.number} is owned by {event.origin_node}; its tier dispatches it")
        event, task = tasks.dispatch_to_person(engine, event.id, b.to, actor, note=b.note, departments=b.departments)
        server.notifier.wake()
        return {"event_id": event.id, "number": event.number, "status": event.status, "task_id": task.id,
                "assignee": task.assignee}

    def task_create(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: TaskCreate = parse_body("task.create", body)
        t = tasks.create_adhoc(store, engine.registry, actor, b.code, b.title, b.assignee, b.due_at, b.note, b.task_id)
        return {"task_id": t.id, "assignee": t.assignee, "status": t.status}

    def task_act(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: TaskAct = parse_body("task.act", body)
        t = tasks.act_on_task(engine, b.task, b.action, actor, b.note, b.finding, b.photo)
        return {"task_id": t.id, "status": t.status, "event_id": t.event_id, "version": t.version}

    def task_complete(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: TaskComplete = parse_body("task.complete", body)
        return {"done": tasks.complete_tasks(store, [tuple(i) for i in b.items], actor)}  # type: ignore[misc]

    def tasks_generate(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: TasksGenerate = parse_body("tasks.generate", body)
        need_command(actor, "generate tasks")
        scope = b.scope or actor.scope_code
        if not covers(actor.scope_code, scope):
            raise PermissionDenied(f"{scope} is outside {actor.scope_code}")
        now = store.clock.now()
        g = tasks.generate_day(store, engine.registry, engine.catalogue, scope, now, tasks.parse_day(b.day, now))
        return {"day": g.day, "scope": g.scope, "created": g.created, "already": g.already, "unassigned": g.unassigned}

    def notify_ack(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: NotifyAck = parse_body("notify.ack", body)
        rows = acknowledge(store, b.notification, actor, via="console")
        return {"message": rows[0].message_key, "acknowledged": len(rows), "by": actor.user}

    def roster_override(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        b: DutyOverrideBody = parse_body("roster.override", body)
        need_command(actor, "set duty overrides")
        if not covers(actor.scope_code, b.jurisdiction):
            raise PermissionDenied(f"{b.jurisdiction} is outside {actor.scope_code}")
        o = roster.set_override(store, b.role, b.jurisdiction, b.user, b.starts_at, b.ends_at, actor.user)
        return roster.override_dict(o)

    def flood_warn(actor: User, body: dict[str, Any]) -> dict[str, Any]:
        from ..notify import flood

        b: FloodWarn = parse_body("flood.warn", body)
        d = flood.warn(store, engine.registry, actor, b.targets, b.step, b.river, b.text)
        return {"directive_id": d.id, "number": d.number, "title": d.title, "targets": d.targets}

    return {"flood.warn": flood_warn, "roster.import": roster_import, "person.status": person_status, "dispatch.person": dispatch_person,
            "task.create": task_create, "task.act": task_act, "task.complete": task_complete,
            "tasks.generate": tasks_generate, "notify.ack": notify_ack, "roster.override": roster_override,
            "federate.person_status": federate_person_status}


def mount(app: FastAPI, server: TierServer) -> None:
    """The people read endpoints and the acknowledgement link."""
    store = server.store

    @app.get("/v1/roster", tags=["people"], summary="Roster rows in the caller's scope, with who is on duty now")
    def roster_list(request: Request, role: str | None = None, on_duty: bool = False) -> list[dict[str, Any]]:
        user = server.authenticate(request)
        now = store.clock.now()
        people = roster.who_is_on(store, now, user.scope_code, role) if on_duty else store.people(user.scope_code, role)
        return [roster.person_dict(p, now) for p in people]

    @app.get("/v1/roster/overrides", tags=["people"], summary="Duty overrides in the caller's scope not ended yet")
    def roster_overrides(request: Request) -> list[dict[str, Any]]:
        user = server.authenticate(request)
        return [roster.override_dict(o) for o in store.overrides(user.scope_code, store.clock.now())]

    @app.get("/v1/roster/on-call", tags=["people"], summary="Who answers for a role at a place now, in order")
    def on_call(request: Request, role: str = Query(..., max_length=32),
                code: str = Query(..., max_length=32)) -> dict[str, Any]:
        user = server.authenticate(request)
        if not covers(user.scope_code, code):
            raise HTTPException(403, f"{code} is outside {user.scope_code}")
        oc = roster.on_call(store, role, code, store.clock.now())
        return {"role": oc.role, "level": oc.level_code, "chain": [p.user for p in oc.chain],
                "chief": oc.chief.user if oc.chief else None}

    @app.get("/v1/tasks", tags=["people"], summary="Tasks: the caller's (mine=1) or all in scope")
    def task_list(request: Request, mine: bool = True, all: bool = False,  # noqa: A002 - a query parameter
                  limit: int = Query(200, ge=1, le=5000)) -> list[dict[str, Any]]:
        user = server.authenticate(request)
        now = store.clock.now()
        if mine:
            rows = tasks.my_work(store, user.user, now, include_done=all, limit=limit)
        else:
            rows = store.tasks(scope_code=user.scope_code, open_only=not all, limit=limit)
        return [tasks.task_dict(t, now) for t in rows if covers(user.scope_code, t.grid_code or t.street_code
                                                                 or t.district_code)]

    @app.get("/v1/notifications", tags=["people"], summary="Notifications: the caller's inbox (mine=1) or in scope")
    def notification_list(request: Request, mine: bool = True,
                          limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        user = server.authenticate(request)
        rows = store.notifications(recipient=user.user if mine else None, channel=None if not mine else "inbox",
                                   limit=limit)
        return [notification_dict(n) for n in rows if mine or covers(user.scope_code, n.scope)]

    @app.get("/v1/notify/ack/{notification_id}", tags=["people"], response_class=HTMLResponse,
             summary="The acknowledgement link in a message (its key proves it came from the message)")
    def ack_link(notification_id: str, k: str = Query("", max_length=64)) -> HTMLResponse:
        try:
            rows = server.notifier.ack_by_link(notification_id[:64], k)
        except CqgovError as exc:
            status = 403 if isinstance(exc, PermissionDenied) else 409
            return HTMLResponse(f"<p>未确认 / not acknowledged: {_esc(str(exc))}</p>", status_code=status)
        return HTMLResponse(f"<p>已确认 / acknowledged: {_esc(rows[0].subject)}</p>")


def _esc(text: str) -> str:
    import html

    return html.escape(text.splitlines()[0] if text else "")
