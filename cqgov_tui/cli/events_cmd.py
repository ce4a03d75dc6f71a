"""`cqgov events report/list/show/act`: the closed loop from a script, against a local store."""

from __future__ import annotations

import click

from ..clock import fmt_duration, fmt_local
from ..domain.colour import Colour
from ..domain.entities import Role, Status, User
from ..errors import BadInput
from ..scope import CITY_CODE
from . import main, values
from .common import db_option, emit_json, field, handle_errors, json_option, out
from .roster_cmd import with_source


def _actor(store, user: str, role: str) -> User:
    try:
        role_value = Role(role)
    except ValueError:
        raise BadInput(f"unknown role {role!r} (expected one of {', '.join(r.value for r in Role)})") from None
    scope = CITY_CODE if store.tier.value == "city" else store.code
    return User(user, user, role_value, store.tier, scope)


def _zh(kind, value, attr: str = "zh") -> str:
    """The Chinese word for a stored colour or status; the value itself (made visible) if this build does
    not know it (a newer peer may send one)."""
    try:
        return getattr(kind(value), attr)
    except ValueError:
        return field(value)


def _engine(store):
    from ..engine import Engine

    return Engine(store)


def event_dict(event, now: float | None = None) -> dict:
    from dataclasses import asdict

    d = asdict(event)
    if now is not None:
        d["time_left_s"] = None if event.due_at is None else round(event.due_at - now, 1)
    return d


user_options = [
    click.option("--user", default="operator", show_default=True, help="Who is acting (recorded in the audit)."),
    click.option("--role", default=Role.DUTY_OFFICER.value, show_default=True,
                 type=click.Choice([r.value for r in Role]), help="Acting role."),
]


def with_user(fn):
    for opt in reversed(user_options):
        fn = opt(fn)
    return fn


@main.group("events")
def events() -> None:
    """Report, list, show and act on events."""


@events.command("report")
@db_option
@click.option("--category", required=True, help="Category code (see `cqgov fixtures categories`).")
@click.option("--title", default="", help="Short title (defaults to the category name).")
@click.option("--text", default="", help="Free text from the reporter.")
@click.option("--lon", type=str, default=None, help="Longitude (WGS84).")
@click.option("--lat", type=str, default=None, help="Latitude (WGS84).")
@click.option("--code", default=None, help="Jurisdiction code instead of coordinates.")
@click.option("--colour", default=None, help="red/orange/yellow/blue/green (default: the category's).")
@click.option("--source", default="citizen", show_default=True)
@with_user
@json_option
@handle_errors
def report(db_path, category, title, text, lon, lat, code, colour, source, user, role, as_json) -> None:
    """Report a new event (感知发现)."""
    from ..store import open_store

    if (lon is None) != (lat is None):
        raise BadInput("give both --lon and --lat, or --code")
    with open_store(db_path) as store:
        if store.is_replica:  # its server numbers the event: the report waits in the outbox for `cqgov sync`
            from . import replica_writes

            return replica_writes.report(store, _actor(store, user, role), category=category, title=title, text=text,
                                         lon=lon, lat=lat, code=code, colour=colour, source=source, as_json=as_json)
        engine = _engine(store)
        event = engine.report(category=values.category(category), title=title, text=text, lon=lon, lat=lat, code=code,
                              colour=colour, source=source, reporter=user, actor=_actor(store, user, role))
        if as_json:
            emit_json(event_dict(event, store.clock.now()))
        else:
            out(f"{event.number} {event.id} {event.status} {event.colour} {field(event.address)}")


@events.command("list")
@db_option
@click.option("--district", default=None, help="District code or name (500108 or 南岸区).")
@click.option("--street", default=None, help="Street code or name (500108001 or 南坪街道).")
@click.option("--status", "statuses", multiple=True, help="reported … or the word the list prints (已上报); repeatable.")
@click.option("--colour", "colours", multiple=True, help="red … green or 红 … 绿; repeatable.")
@click.option("--category", "categories", multiple=True, help="Category code or name (muck_spill); repeatable.")
@click.option("--text", default=None, help="Substring of title, text or address.")
@click.option("--all", "include_closed", is_flag=True, help="Include closed, merged and rejected events.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000),
              help="At most this many rows (a note on stderr says when more matched).")
@click.option("--geojson", "as_geojson", is_flag=True, help="Print a GeoJSON FeatureCollection (for GIS tools).")
@click.option("--risk-points", is_flag=True, help="With --geojson: add the store's risk points as features.")
@json_option
@handle_errors
def list_events(db_path, district, street, statuses, colours, categories, text, include_closed, limit, as_json,
                as_geojson=False, risk_points=False):
    """List events by colour, then by time left on their SLA."""
    from ..store import open_store

    # Every filter value is checked before the store opens: a typo is refused, never "no events".
    statuses = [values.status(s) for s in statuses]
    colours = [values.colour(c) for c in colours]
    categories = [values.category(c) for c in categories]
    district = values.jurisdiction(district, "district") if district else None
    street = values.jurisdiction(street, "street", within=district) if street else None
    if district and street and not street.startswith(district):
        raise BadInput(f"street {street} is not in district {district}")
    with open_store(db_path, read_only=True) as store:  # a read leaves the store's files as they were
        now = store.clock.now()
        rows = store.queue(district=district, street=street, statuses=statuses, colours=colours,
                           categories=categories, text=text, include_closed=include_closed, limit=limit + 1)
        truncated = len(rows) > limit
        rows = rows[:limit]
        if as_geojson:
            from .geojson_out import emit_geojson

            emit_geojson(store, rows, risk_points)
            return
        if as_json:
            emit_json({"events": [event_dict(e, now) for e in rows], "limit": limit, "truncated": truncated})
            return
        if not rows:
            out("no events")
        for e in rows:
            left = "-" if e.due_at is None else fmt_duration(e.due_at - now)
            out(f"{field(e.number)}  {_zh(Colour, e.colour)}  {_zh(Status, e.status):4}  {left:>8}  {field(e.address)}  "
                f"{field(e.title)}")
        if truncated:
            out(f"cqgov: showing the first {limit} events; more match (raise --limit or narrow the filters)", err=True)


@events.command("show")
@db_option
@click.argument("ref")
@json_option
@handle_errors
def show(db_path, ref, as_json):
    """Show one event with its audit timeline (by number, id or id prefix)."""
    from ..store import open_store

    with open_store(db_path, read_only=True) as store:
        event = store.resolve_event(ref, prefix=True)
        trail = store.audit_entries(event.id)
        now = store.clock.now()
        if as_json:
            data = event_dict(event, now)
            data["audit"] = [dict(a.__dict__) for a in trail]
            emit_json(data)
            return
        out(f"{field(event.number)}  {field(event.id)}")
        out(f"  {_zh(Colour, event.colour)}{_zh(Colour, event.colour, 'zh_level')}  {_zh(Status, event.status)} "
            f"({field(event.status)})")
        out(f"  {field(event.title)} — {field(event.address)}")
        if event.text:
            out(f"  {field(event.text)}")
        out(f"  category {field(event.category_code)}  SLA {field(event.sla_profile)}  "
            f"due {fmt_local(event.due_at, True)}")
        if event.supervised_by:
            out(f"  督办 supervised by {field(event.supervised_by)} (level {event.escalation_level})")
        for a in trail:
            out(f"  #{a.seq} {fmt_local(a.acted_at, True)} {field(a.action):14} {field(a.from_status or '-')} → "
                f"{field(a.to_status or '-')}  {field(a.actor)} ({field(a.role)}@{field(a.tier)}) {field(a.note)}")


@events.command("act")
@db_option
@click.argument("ref")
@click.argument("action")
@click.option("--note", default="", help="Reason or remark (required for reject and comment).")
@click.option("--department", "departments", multiple=True, help="Dispatch target (repeatable; first is the owner).")
@click.option("--into", "target", default=None, help="Event to merge into.")
@click.option("--to", "to_user", default=None, help="dispatch: the person (roster user) who takes the event.")
@with_user
@json_option
@handle_errors
def act(db_path, ref, action, note, departments, target, to_user, user, role, as_json):
    """Perform a lifecycle action: verify, assess, dispatch, accept, arrive, dispose, feedback, close, review,
    reject, merge, escalate, comment."""
    from ..store import open_store

    with open_store(db_path) as store:
        if store.is_replica:  # its server applies the action: it waits in the outbox for `cqgov sync`
            from . import replica_writes

            return replica_writes.act(store, _actor(store, user, role), ref, action, note=note,
                                      departments=list(departments) or None, target=target, as_json=as_json)
        engine = _engine(store)
        ref = store.resolve_event(ref, prefix=True).id  # a person may give a number, an id or an id prefix
        if to_user is not None:
            from .tasks_cmd import dispatch_here

            return dispatch_here(engine, ref, action, to_user, _actor(store, user, role), note, list(departments),
                                 as_json)
        event = engine.act(ref, action, _actor(store, user, role), note=note, departments=list(departments) or None,
                           target=target)
        if as_json:
            emit_json(event_dict(event, store.clock.now()))
        else:
            out(f"{event.number} {event.status}")


@events.command("supervise")
@click.argument("ref")
@click.option("--note", required=True, help="What the owning tier must do (sent with the 督办 directive).")
@click.option("--deadline", default=None, metavar="WHEN",
              help="When it must be acknowledged: 30m, 2h, 1d or a local time (default: in one hour).")
@with_source  # --db FILE (a store, or a replica: through its outbox), or --server URL --token T
@with_user
@json_option
@handle_errors
def supervise(ref, note, deadline, db_path, server, token, user, role, as_json):
    """督办 an open event: a directive (acknowledgement required) to the street or district that owns it,
    noted on the event. By number or id."""
    from ..engine import directives
    from .roster_cmd import check_source

    check_source(db_path, server, token)
    if not note.strip():
        raise BadInput("--note must say what the owning tier must do", code="note_required")
    if server:
        from .roster_cmd import remote

        import time

        body: dict = {"event": ref, "note": note.strip()}
        if deadline is not None:
            body["deadline_at"] = directives.parse_deadline(deadline, time.time())
        with remote(server, token) as r:
            result = r.command("supervise", body)
        return _supervised(result.get("number"), result.get("directive_id"), result.get("event_id"), as_json)
    from ..store import open_store

    with open_store(db_path) as store:
        when = directives.parse_deadline(deadline, store.clock.now()) if deadline is not None else None
        if store.is_replica:
            from . import replica_writes

            return replica_writes.supervise(store, _actor(store, user, role), ref, note=note.strip(),
                                            deadline_at=when, as_json=as_json)
        engine = _engine(store)
        d, event = directives.supervise(store, engine.registry, actor=_actor(store, user, role), event_ref=ref,
                                        note=note.strip(), deadline_at=when)
        directives.deliver_to_all(store, engine.registry, d, _actor(store, user, role))  # no lower tier here
        _supervised(d.number, d.id, event.id, as_json, event.number)


def _supervised(number, directive_id, event_id, as_json: bool, event_number: str | None = None) -> None:
    if as_json:
        emit_json({"directive_id": directive_id, "number": number, "event_id": event_id})
    else:
        out(f"{field(event_number or event_id)} 督办 → {field(number)}")


@events.command("attach")
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False))
@with_source  # --db FILE, or --server URL --token T (the bytes go up once)
@click.option("--kind", type=click.Choice(["event", "task", "feedback"]), default="event", show_default=True,
              help="task: REF is a task id (a completion's photo); feedback: a 回访's file on the event.")
@click.option("--user", default=None, help="With --db: who attaches (a roster user; recorded in the audit).")
@click.option("--role", default=None, type=click.Choice([r.value for r in Role]), help="With --db: acting role.")
@json_option
@handle_errors
def attach(ref, file, db_path, server, token, kind, user, role, as_json):
    """Attach a photo or file (JPEG, PNG, GIF, WebP, HEIC, PDF, MP4; at most 8 MiB; type told by content)."""
    from .attachments_cmd import attach_file

    attach_file(db_path, server, token, ref, file, kind, user, role, as_json)
