"""`cqgov directive send/status/list/receipt`: directives (政令一键智达) through a tier server."""

from __future__ import annotations

import click

from ..clock import fmt_local
from . import main
from .common import emit_json, field, handle_errors, json_option, out
from .common import server_option as _server_option
from .common import token_option as _token_option

server_option = _server_option()
token_option = _token_option()


def _remote(server: str, token: str):
    from ..server.remote import Remote

    return Remote(server, token)


@main.group("directive")
def directive() -> None:
    """Send directives down the tiers and follow their receipts."""


@directive.command("send")
@server_option
@token_option
@click.option("--to", "targets", required=True,
              help="Comma-separated targets: jurisdiction codes below the sending tier, and optionally who must "
                   "answer there — departments (cgj or 城管) and roles (grid_worker or 网格员). With only "
                   "departments or roles, all of the sender's jurisdiction.")
@click.option("--deadline", required=True, help="30m, 2h, 1d, or a local time YYYY-MM-DD HH:MM.")
@click.option("--text", required=True, help="The directive's text.")
@click.option("--title", default="", help="Short title (default: the start of the text).")
@click.option("--priority", default="normal", show_default=True, help="urgent/high/normal (特急/加急/平急).")
@click.option("--no-ack", is_flag=True, help="Do not require acknowledgement.")
@json_option
@handle_errors
def send(server, token, targets, deadline, text, title, priority, no_ack, as_json) -> None:
    """Send a directive; prints its id and number."""
    with _remote(server, token) as remote:
        result = remote.command("directive.send", {
            "targets": [t.strip() for t in targets.replace("，", ",").split(",") if t.strip()], "deadline": deadline,
            "text": text,
            "title": title, "priority": priority, "require_ack": not no_ack,
        })
    if as_json:
        emit_json(result)
    else:
        out(f"{field(result.get('number'))} {field(result.get('directive_id'))} → "
            f"{', '.join(field(t) for t in result.get('targets') or [])} ({field(result.get('recipients'))} streets)")


@directive.command("status")
@server_option
@token_option
@click.argument("ref")
@json_option
@handle_errors
def status(server, token, ref, as_json) -> None:
    """Receipt counts and the jurisdictions still missing (by id or number)."""
    with _remote(server, token) as remote:
        data = remote.directive_status(ref)
    if as_json:
        emit_json(data)
        return
    out(f"{field(data['number'])}  {field(data['title'])}  deadline {fmt_local(data['deadline_at'], True)}")
    out(f"  expected {field(data['expected'])}  " + "  ".join(f"{field(k)} {field(v)}" for k, v in data["counts"].items()))
    for state, codes in data["missing"].items():
        if codes:
            shown = ", ".join(field(c) for c in codes[:12]) + (f" … (+{len(codes) - 12})" if len(codes) > 12 else "")
            out(f"  not {field(state)}: {shown}")


@directive.command("receipt")
@server_option
@token_option
@click.argument("ref")
@click.argument("state", type=click.Choice(["read", "acknowledged", "executed"]))
@click.option("--code", default=None, help="Answering jurisdiction (default: the server's own).")
@json_option
@handle_errors
def receipt(server, token, ref, state, code, as_json) -> None:
    """Answer a directive at a street: read, acknowledged or executed."""
    body = {"directive": ref, "state": state}
    if code:
        body["code"] = code
    with _remote(server, token) as remote:
        result = remote.command("receipt", body)
    if as_json:
        emit_json(result)
    else:
        out(f"{field(result.get('code'))} {field(result.get('state'))}")


from . import cap_cmd  # noqa: E402,F401  (show --cap and import --cap register on this group)
