"""`cqgov directive show [--cap]` and `cqgov directive import --cap FILE`: directives in CAP 1.2.

``show`` reads through a tier server (``--server``/``--token``) or a local store
(``--db``); ``import`` turns an incoming CAP alert into a ``directive.send``
command for a tier server, whose jurisdiction decides which of the alert's
areas become targets.
"""

from __future__ import annotations

import sys

import click

from ..errors import BadInput
from .common import db_option, emit_json, handle_errors, json_option, out, server_option, token_option
from .directive_cmd import directive

_server = server_option(required=False)  # flag > CQGOV_SERVER > config file
_token = token_option(required=False)


@directive.command("show")
@click.argument("ref")
@_server
@_token
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
              help="Read a local store instead of a server.")
@click.option("--cap", "as_cap", is_flag=True, help="Print the directive as a CAP 1.2 alert (XML).")
@json_option
@handle_errors
def show(ref, server, token, db_path, as_cap, as_json) -> None:
    """Show a directive (by id or number); --cap gives the OASIS CAP 1.2 <alert>."""
    if bool(db_path) == bool(server):
        raise BadInput("give --server (with --token) or --db")
    if db_path:
        from ..engine import directives
        from ..geo.registry import get_registry
        from ..standards import cap
        from ..store import open_store

        with open_store(db_path, read_only=True) as store:
            d = store.get_directive(ref)
            if d is None:
                raise BadInput(f"no directive {ref!r} in {db_path}")
            if as_cap:
                sys.stdout.buffer.write(cap.alert(d, get_registry()))
                return
            data = directives.status(store, get_registry(), d.id)
    else:
        if not token:
            raise BadInput("--server needs --token (or CQGOV_TOKEN)")
        from ..server.remote import Remote
        from ..standards import cap

        with Remote(server, token) as remote:
            if as_cap:
                sys.stdout.buffer.write(remote.fetch(f"/v1/directives/{ref}.cap", f"directive {ref}", cap.MEDIA_TYPE))
                return
            data = remote.directive_status(ref)
    if as_json:
        emit_json(data)
        return
    out(f"{data['number']}  {data['title']}  ({data['priority']}) → {', '.join(data['targets'])}")
    out(f"  expected {data['expected']}  " + "  ".join(f"{k} {v}" for k, v in data["counts"].items()))


@directive.command("import")
@click.option("--cap", "cap_file", required=True, type=click.Path(dir_okay=False), help="A CAP 1.2 alert (XML file).")
@_server
@_token
@click.option("--deadline", default=None, help="Deadline when the alert has no <expires> (30m, 2h, YYYY-MM-DD HH:MM).")
@json_option
@handle_errors
def import_cap(cap_file, server, token, deadline, as_json) -> None:
    """Turn an incoming CAP alert (e.g. a flood warning from the hydrology bureau) into a directive
    sent down from this tier; importing the same alert twice is refused."""
    from ..engine.directives import parse_deadline
    from ..geo.registry import get_registry
    from ..scope import CITY_CODE
    from ..server.remote import Remote
    from ..standards import cap

    if not server or not token:
        raise BadInput("give --server and --token (or CQGOV_SERVER and CQGOV_TOKEN)")
    try:
        with open(cap_file, "rb") as fh:
            raw = fh.read(cap.MAX_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"{cap_file}: cannot read ({exc.strerror})") from None
    with Remote(server, token) as remote:
        health = remote.health()
        scope = CITY_CODE if health.get("tier") == "city" else str(health.get("code"))
        now = float(health.get("now") or 0.0)
        due = parse_deadline(deadline, now) if deadline else None
        body = cap.directive_body(raw, get_registry(), scope_code=scope, what=cap_file, deadline_at=due)
        result = remote.command("directive.send", body)
    if as_json:
        emit_json(result)
    else:
        out(f"{result['number']} {result['directive_id']} → {', '.join(result['targets'])} "
                   f"({result['recipients']} streets)")
