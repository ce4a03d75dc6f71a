"""`cqgov roster import|list|who-is-on|status|on-call|override|overrides`: the people of a store, or of a running server.

Every subcommand takes either ``--db FILE`` (a store this process opens) or
``--server URL --token T`` (a tier server, through its people endpoints and
command types, ``server/people_api.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import click

from ..errors import BadInput
from ..textsafe import plain
from . import main
from .common import emit_json, handle_errors, json_option, out, server_option, token_option

db_or_server = [
    click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False), help="A local store."),
    server_option(required=False),  # flag > CQGOV_SERVER > config file
    token_option(required=False),
]


def with_source(fn):
    for opt in reversed(db_or_server):
        fn = opt(fn)
    return fn


def check_source(db_path: str | None, server: str | None, token: str | None) -> None:
    if bool(db_path) == bool(server):
        raise BadInput("give either --db FILE or --server URL --token T")
    if server and not token:
        raise BadInput("--server needs --token")


def need_user(who: str | None) -> None:
    """A local store has no token to say who acts: ``--user`` must."""
    if not who:
        raise BadInput("--user is needed with --db")


@contextlib.contextmanager
def local_store(db_path: str) -> Iterator[Any]:
    from ..store import open_store

    with open_store(db_path) as store:
        yield store


def remote(server: str, token: str):
    from ..server.remote import Remote

    return Remote(server, token)


def local_user(store, user: str | None, role: str | None):
    """Who acts on a local store: the roster's row for ``user`` when there is one, else an operator."""
    from ..domain.entities import Role, User
    from ..scope import CITY_CODE

    scope = CITY_CODE if store.tier.value == "city" else store.code
    person = store.get_person(user) if user else None
    try:
        role_value = Role(role) if role else (Role(person.role) if person else Role.DUTY_OFFICER)
    except ValueError:
        raise BadInput(f"unknown role {role!r}") from None
    return User(user or "operator", person.name if person else (user or "operator"), role_value, store.tier, scope,
                person.department if person else None)


@main.group("roster")
def roster_group() -> None:
    """People: import the roster, list it, who is on duty, status and position reports."""


@roster_group.command("import")
@with_source
@click.argument("csv_file", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def import_cmd(db_path, server, token, csv_file, as_json) -> None:
    """Import a roster CSV (user,name,role,department,jurisdiction,phone,email,on_duty[,rotation,duties])."""
    from ..people import roster

    check_source(db_path, server, token)
    try:
        with open(csv_file, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise BadInput(f"{csv_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{csv_file}: not UTF-8 text") from None
    if server:
        roster.parse_csv(text, csv_file)  # refused here before anything is sent
        with remote(server, token) as r:
            result = r.command("roster.import", {"csv": text, "source": csv_file})
    else:
        from ..geo.registry import get_registry

        rows = roster.parse_csv(text, csv_file)
        with local_store(db_path) as store:
            result = roster.import_rows(store, get_registry(), rows, source=csv_file)
    if as_json:
        emit_json(result)
    else:
        out(f"{result['rows']} rows: {result['added']} added, {result['updated']} updated, "
                   f"{result['unchanged']} unchanged")


def _people(db_path, server, token, role, on_duty) -> list[dict[str, Any]]:
    from ..people import roster

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            params = {"role": role} if role else {}
            if on_duty:
                params["on_duty"] = "true"
            return r._get("/v1/roster", "roster", **params)
    with local_store(db_path) as store:
        now = store.clock.now()
        people = roster.who_is_on(store, now, None, role) if on_duty else store.people(None, role)
        return [roster.person_dict(p, now) for p in people]


def _print_people(rows: list[dict[str, Any]]) -> None:
    from ..clock import fmt_local
    from ..domain.entities import Role

    if not rows:
        out("nobody")
    for p in rows:
        where = f"{p['lon']:.4f},{p['lat']:.4f}" if p.get("lon") is not None else "-"
        role = Role(p["role"]).zh if p["role"] in {r.value for r in Role} else p["role"]
        out(f"{plain(p['user']):16} {plain(p['name']):8} {role:5} {p['jurisdiction']:12} "
                   f"{p['status']:8} {p['on_duty']:5} {where:20} {fmt_local(p.get('seen_at'))}")


@roster_group.command("list")
@with_source
@click.option("--role", default=None, help="Only this role (duty_officer, grid_worker …).")
@json_option
@handle_errors
def list_cmd(db_path, server, token, role, as_json) -> None:
    """Everyone on the roster (in the token's jurisdiction, through a server)."""
    rows = _people(db_path, server, token, role, False)
    emit_json({"people": rows}) if as_json else _print_people(rows)


@roster_group.command("who-is-on")
@with_source
@click.option("--role", default=None, help="Only this role.")
@json_option
@handle_errors
def who_is_on_cmd(db_path, server, token, role, as_json) -> None:
    """Who is on duty now (their shift covers now and their client has not reported them off)."""
    rows = _people(db_path, server, token, role, True)
    emit_json({"people": rows}) if as_json else _print_people(rows)


@roster_group.command("status")
@with_source
@click.option("--user", "who", default=None, help="Whose status (default: the token's user).")
@click.option("--status", type=click.Choice(["on_duty", "busy", "off"]), default=None)
@click.option("--lon", type=float, default=None)
@click.option("--lat", type=float, default=None)
@json_option
@handle_errors
def status_cmd(db_path, server, token, who, status, lon, lat, as_json) -> None:
    """Report a person's status and/or position (what each person's client sends)."""
    from ..people import roster

    check_source(db_path, server, token)
    if server:
        body = {k: v for k, v in (("user", who), ("status", status), ("lon", lon), ("lat", lat)) if v is not None}
        with remote(server, token) as r:
            result = r.command("person.status", body)
    else:
        need_user(who)
        with local_store(db_path) as store:
            p = roster.report_status(store, who, status, lon, lat, store.clock.now())
            result = {"user": p.user, "status": p.status, "lon": p.lon, "lat": p.lat, "version": p.version}
    emit_json(result) if as_json else out(f"{result['user']} {result['status']}")


@roster_group.command("on-call")
@with_source
@click.option("--role", required=True, help="Role (duty_officer …) or 'flood' for 防汛责任人.")
@click.option("--code", required=True, help="The place (a grid, street or district code).")
@json_option
@handle_errors
def on_call_cmd(db_path, server, token, role, code, as_json) -> None:
    """Who would be told, in order: the rotation for the role at the place, then the duty chief."""
    from ..people import roster

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            result = r._get("/v1/roster/on-call", "on-call", role=role, code=code)
    else:
        with local_store(db_path) as store:
            duty = "flood" if role == "flood" else None
            oc = roster.on_call(store, role, code, store.clock.now(), duty=duty)
            result = {"role": oc.role, "level": oc.level_code, "chain": [p.user for p in oc.chain],
                      "chief": oc.chief.user if oc.chief else None}
    emit_json(result) if as_json else out(" → ".join(result["chain"]) or "nobody on call")


@roster_group.command("override")
@with_source
@click.option("--user", "who", required=True, help="Who covers (a roster user).")
@click.option("--role", required=True, help="The role covered (duty_officer, grid_worker …).")
@click.option("--jurisdiction", required=True, help="Where (a grid, street or district code).")
@click.option("--from", "starts", required=True, help="Start: YYYY-MM-DD HH:MM (local), epoch seconds, or 30m/2h/1d from now.")
@click.option("--to", "ends", required=True, help="End, in the same forms.")
@click.option("--as", "as_user", default=None, help="Who sets it, with --db (default: operator).")
@json_option
@handle_errors
def override_cmd(db_path, server, token, who, role, jurisdiction, starts, ends, as_user, as_json) -> None:
    """A duty override: USER covers ROLE in JURISDICTION between --from and --to, first in that rotation."""
    import time

    from ..engine.directives import parse_deadline
    from ..people import roster

    check_source(db_path, server, token)
    now = time.time()
    starts_at, ends_at = parse_deadline(starts, now), parse_deadline(ends, now)
    body = {"user": who, "role": role, "jurisdiction": jurisdiction, "starts_at": starts_at, "ends_at": ends_at}
    if server:
        with remote(server, token) as r:
            result = r.command("roster.override", body)
    else:
        from ..server.people_api import parse_body

        b = parse_body("roster.override", body)  # the same typed body as through a server
        with local_store(db_path) as store:
            actor = local_user(store, as_user, None)
            o = roster.set_override(store, b.role, b.jurisdiction, b.user, b.starts_at, b.ends_at, actor.user)
            result = roster.override_dict(o)
    if as_json:
        emit_json(result)
    else:
        from ..clock import fmt_local

        out(f"{plain(result['user'])} covers {result['role']} at {result['jurisdiction']} "
            f"{fmt_local(result['starts_at'])} – {fmt_local(result['ends_at'])}")


@roster_group.command("overrides")
@with_source
@json_option
@handle_errors
def overrides_cmd(db_path, server, token, as_json) -> None:
    """Duty overrides not ended yet (in the token's jurisdiction, through a server)."""
    from ..people import roster

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            rows = r._get("/v1/roster/overrides", "overrides")
    else:
        with local_store(db_path) as store:
            rows = [roster.override_dict(o) for o in store.overrides(None, store.clock.now())]
    if as_json:
        emit_json({"overrides": rows})
        return
    from ..clock import fmt_local

    if not rows:
        out("no overrides")
    for o in rows:
        out(f"{plain(o['user']):16} {o['role']:14} {o['jurisdiction']:12} {fmt_local(o['starts_at'])} – "
            f"{fmt_local(o['ends_at'])}")
