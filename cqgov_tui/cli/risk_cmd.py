"""`cqgov risk inspect`: 巡查 of a risk point and its grade, on a store or through a tier server.

An inspection (``ok`` or ``hazard``) is one input of the point's grade
(``engine.risk_grades``): the grade is recomputed at once and any change is
audited. With ``--db`` the store is written here; with ``--server``/``--token``
the server's ``risk.inspect`` command does it in the caller's jurisdiction.
"""

from __future__ import annotations

import click

from ..domain.entities import Role
from . import main
from .common import emit_json, field, handle_errors, json_option, out
from .roster_cmd import check_source, with_source


@main.group("risk")
def risk() -> None:
    """Risk points (风险点位): inspections and live grades."""


@risk.command("inspect")
@click.argument("point")
@click.option("--result", required=True, type=click.Choice(["ok", "hazard"]),
              help="ok: nothing found; hazard: a hazard found (the grade rises until an ok inspection).")
@click.option("--note", default="", help="What was found or done (kept in the audit).")
@with_source  # --db FILE, or --server URL --token T
@click.option("--user", default="operator", show_default=True, help="With --db: who inspected (recorded).")
@click.option("--role", default=Role.GRID_WORKER.value, show_default=True, type=click.Choice([r.value for r in Role]),
              help="With --db: the inspector's role.")
@json_option
@handle_errors
def inspect(point, result, note, db_path, server, token, user, role, as_json) -> None:
    """Record an inspection of POINT (e.g. RP-500105-septic_methane-00001) and print its grade."""
    check_source(db_path, server, token)
    if server:
        from .roster_cmd import remote

        with remote(server, token) as r:
            data = r.command("risk.inspect", {"point": point, "result": result, "note": note})
        return _show(data["point"], data["colour"], data.get("reasons") or [], as_json)
    from ..catalogue.loader import load_catalogue
    from ..domain.entities import User
    from ..engine.risk_grades import inspect as record
    from ..scope import CITY_CODE
    from ..store import open_store

    with open_store(db_path) as store:
        actor = User(user, user, Role(role), store.tier, CITY_CODE if store.tier.value == "city" else store.code)
        grade = record(store, load_catalogue(), point.strip(), result, actor, store.clock.now(), note)
    _show(grade.code, grade.colour.value, list(grade.reasons), as_json)


def _show(code: str, colour: str, reasons: list[str], as_json: bool) -> None:
    if as_json:
        emit_json({"point": code, "colour": colour, "reasons": reasons})
    else:
        out(f"{field(code)} {field(colour)}" + (f"  ({'; '.join(field(r) for r in reasons)})" if reasons else ""))
