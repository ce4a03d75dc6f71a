"""`cqgov events report/list/show/act`: the closed loop from a script, against a local store."""

from __future__ import annotations

import click

from ..clock import fmt_duration, fmt_local
from ..domain.colour import Colour
from ..domain.entities import Role, Status, User
from ..errors import BadInput
from ..scope import CITY_CODE
from ..textsafe import plain as _plain
from . import main
from .common import db_option, emit_json, handle_errors, json_option


def _actor(store, user: str, role: str) -> User:
    try:
        role_value = Role(role)
    except ValueError:
        raise BadInput(f"unknown role {role!r} (expected one of {', '.join(r.value for r in Role)})") from None
    scope = CITY_CODE if store.tier.value == "city" else store.code
    return User(user, user, role_value, store.tier, scope)


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
        engine = _engine(store)
        event = engine.report(category=category, title=title, text=text, lon=lon, lat=lat, code=code,
                              colour=colour, source=source, reporter=user, actor=_actor(store, user, role))
        if as_json:
            emit_json(event_dict(event, store.clock.now()))
        else:
            click.echo(f"{event.number} {event.id} {event.status} {event.colour} {event.address}")


@events.command("list")
@db_option
@click.option("--district", default=None)
@click.option("--street", default=None)
@click.option("--status", "statuses", multiple=True, help="Repeatable.")
@click.option("--colour", "colours", multiple=True, help="Repeatable.")
@click.option("--category", "categories", multiple=True, help="Repeatable.")
@click.option("--text", default=None, help="Substring of title, text or address.")
@click.option("--all", "include_closed", is_flag=True, help="Include closed, merged and rejected events.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000))
@click.option("--geojson", "as_geojson", is_flag=True, help="Print a GeoJSON FeatureCollection (for GIS tools).")
@click.option("--risk-points", is_flag=True, help="With --geojson: add the store's risk points as features.")
@json_option
@handle_errors
def list_events(db_path, district, street, statuses, colours, categories, text, include_closed, limit, as_json,
                as_geojson=False, risk_points=False):
    """List events by colour, then by time left on their SLA."""
    from ..store import open_store

    for s in statuses:
        try:
            Status(s)
        except ValueError:
            raise BadInput(f"unknown status {s!r}") from None
    colours = [Colour.parse(c).value for c in colours] if colours else []
    with open_store(db_path, read_only=False) as store:
        now = store.clock.now()
        rows = store.queue(district=district, street=street, statuses=statuses, colours=colours,
                           categories=categories, text=text, include_closed=include_closed, limit=limit)
        if as_geojson:
            from .geojson_out import emit_geojson

            emit_geojson(store, rows, risk_points)
            return
        if as_json:
            emit_json([event_dict(e, now) for e in rows])
            return
        if not rows:
            click.echo("no events")
        for e in rows:
            left = "-" if e.due_at is None else fmt_duration(e.due_at - now)
            click.echo(f"{e.number}  {Colour(e.colour).zh}  {Status(e.status).zh:4}  {left:>8}  {e.address}  {_plain(e.title)}")


@events.command("show")
@db_option
@click.argument("ref")
@json_option
@handle_errors
def show(db_path, ref, as_json):
    """Show one event with its audit timeline (by number, id or id prefix)."""
    from ..store import open_store

    with open_store(db_path) as store:
        event = store.resolve_event(ref, prefix=True)
        trail = store.audit_entries(event.id)
        now = store.clock.now()
        if as_json:
            data = event_dict(event, now)
            data["audit"] = [a.__dict__ for a in trail]
            emit_json(data)
            return
        click.echo(f"{event.number}  {event.id}")
        click.echo(f"  {Colour(event.colour).zh}{Colour(event.colour).zh_level}  {Status(event.status).zh} ({event.status})")
        click.echo(f"  {_plain(event.title)} — {event.address}")
        if event.text:
            click.echo(f"  {_plain(event.text)}")
        click.echo(f"  category {event.category_code}  SLA {event.sla_profile}  due {fmt_local(event.due_at, True)}")
        if event.supervised_by:
            click.echo(f"  督办 supervised by {event.supervised_by} (level {event.escalation_level})")
        for a in trail:
            click.echo(f"  #{a.seq} {fmt_local(a.acted_at, True)} {a.action:14} {a.from_status or '-'} → {a.to_status or '-'}  {a.actor} ({a.role}@{a.tier}) {_plain(a.note)}")


@events.command("act")
@db_option
@click.argument("ref")
@click.argument("action")
@click.option("--note", default="", help="Reason or remark (required for reject and comment).")
@click.option("--department", "departments", multiple=True, help="Dispatch target (repeatable; first is the owner).")
@click.option("--into", "target", default=None, help="Event to merge into.")
@with_user
@json_option
@handle_errors
def act(db_path, ref, action, note, departments, target, user, role, as_json):
    """Perform a lifecycle action: verify, assess, dispatch, accept, arrive, dispose, feedback, close, review,
    reject, merge, escalate, comment."""
    from ..store import open_store

    with open_store(db_path) as store:
        engine = _engine(store)
        ref = store.resolve_event(ref, prefix=True).id  # a person may give a number, an id or an id prefix
        event = engine.act(ref, action, _actor(store, user, role), note=note, departments=list(departments) or None,
                           target=target)
        if as_json:
            emit_json(event_dict(event, store.clock.now()))
        else:
            click.echo(f"{event.number} {event.status}")
