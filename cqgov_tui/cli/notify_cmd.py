"""`cqgov notify list|ack|check-config`: a person's notifications and acknowledging them."""

from __future__ import annotations

import click

from ..textsafe import plain
from . import main
from .common import emit_json, handle_errors, json_option, out
from .roster_cmd import check_source, local_store, local_user, need_user, remote, with_source


@main.group("notify")
def notify_group() -> None:
    """Notifications to people: the inbox, acknowledgement, the server's notify config."""


@notify_group.command("list")
@with_source
@click.option("--user", "who", default=None, help="With --db: whose inbox (default: every notification).")
@json_option
@handle_errors
def list_cmd(db_path, server, token, who, as_json) -> None:
    """The inbox (the token's user through a server), newest first."""
    from ..clock import fmt_local
    from ..notify.service import inbox, notification_dict

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            rows = r._get("/v1/notifications", "notifications", mine="true")
    else:
        with local_store(db_path) as store:
            found = inbox(store, who) if who else store.notifications(limit=500)
            rows = [notification_dict(n) for n in found]
    if as_json:
        emit_json({"notifications": rows})
        return
    if not rows:
        out("no notifications")
    for n in rows:
        ack = "已确认" if n.get("acked_at") else ("待确认" if n.get("needs_ack") else "")
        out(f"{n['id']}  {fmt_local(n['created_at'], True)}  {n['channel']:7} {n['state']:9} {ack:4} "
                   f"{plain(n['recipient'])}  {plain(n['subject'])}")


@notify_group.command("ack")
@with_source
@click.argument("notification")
@click.option("--user", "who", default=None, help="With --db: who acknowledges (a roster user).")
@json_option
@handle_errors
def ack_cmd(db_path, server, token, notification, who, as_json) -> None:
    """Acknowledge a notification (by id): it stops escalating for everyone it went to."""
    from ..notify.service import acknowledge

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            result = r.command("notify.ack", {"notification": notification})
    else:
        need_user(who)
        with local_store(db_path) as store:
            rows = acknowledge(store, notification, local_user(store, who, None), via="cli")
            result = {"message": rows[0].message_key, "acknowledged": len(rows), "by": who}
    emit_json(result) if as_json else out(f"acknowledged ({result['acknowledged']} copies) by {result['by']}")


@notify_group.command("flood")
@with_source
@click.option("--to", "targets", required=True, help="Streets or districts, comma-separated.")
@click.option("--step", required=True, type=click.IntRange(1, 3), help="1 通知转移, 2 准备转移, 3 立即转移.")
@click.option("--river", default="", help="The river or gauge (e.g. 苎溪河).")
@click.option("--text", default="", help="The message (a standard text per step otherwise).")
@click.option("--user", "who", default=None, help="With --db: who sends it.")
@json_option
@handle_errors
def flood_cmd(db_path, server, token, targets, step, river, text, who, as_json) -> None:
    """A three-step flood warning to streets; each street's 防汛责任人 is told and answers with a receipt."""
    from ..notify import flood

    check_source(db_path, server, token)
    codes = [c.strip() for c in targets.replace("，", ",").split(",") if c.strip()]
    if server:
        with remote(server, token) as r:
            result = r.command("flood.warn", {"targets": codes, "step": step, "river": river, "text": text})
    else:
        from ..geo.registry import get_registry

        with local_store(db_path) as store:
            d = flood.warn(store, get_registry(), local_user(store, who, None), codes, step, river, text)
            result = {"directive_id": d.id, "number": d.number, "title": d.title, "targets": d.targets}
    emit_json(result) if as_json else out(f"{result['number']} {result['title']} → {', '.join(result['targets'])}")


@notify_group.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
@handle_errors
def check_config(path, as_json) -> None:
    """Validate a notify config (TOML) without starting a server."""
    from ..notify.config import load_config

    cfg = load_config(path)
    if as_json:
        emit_json(cfg.model_dump())
    else:
        channels = ["inbox"] + [c for c, v in (("email", cfg.email), ("webhook", cfg.webhook)) if v is not None]
        out(f"{path}: ok; channels {', '.join(channels)}; ack after {cfg.escalation.ack_after:.0f}s")
