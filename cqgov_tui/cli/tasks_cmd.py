"""`cqgov tasks mine|act|create|generate|dispatch`: "my work" and grid tasks (网格任务), locally or via a server."""

from __future__ import annotations

from typing import Any

import click

from ..errors import BadInput
from ..textsafe import plain
from . import main
from .common import emit_json, handle_errors, json_option, out
from .roster_cmd import check_source, local_store, local_user, need_user, remote, with_source


def dispatch_here(engine, ref: str, action: str, to_user: str, actor, note: str, departments: list[str],
                  as_json: bool) -> None:
    """`cqgov events act REF dispatch --to USER` on a local store."""
    from ..people.tasks import dispatch_to_person

    if action != "dispatch":
        raise BadInput("--to goes with the dispatch action")
    event, task = dispatch_to_person(engine, ref, to_user, actor, note=note, departments=departments or None)
    if as_json:
        emit_json({"event_id": event.id, "number": event.number, "status": event.status, "task_id": task.id,
                   "assignee": task.assignee})
    else:
        out(f"{event.number} {event.status} → {task.assignee} (task {task.id})")


@main.group("tasks")
def tasks_group() -> None:
    """My work and grid tasks: list, accept / arrive / done, create ad-hoc, generate a day's periodic tasks."""


def _print_tasks(rows: list[dict[str, Any]]) -> None:
    from ..clock import fmt_local

    if not rows:
        out("no tasks")
    for t in rows:
        late = " 超时" if t.get("overdue") else ""
        out(f"{t['id']}  {t['kind']:8} {t['status']:9} due {fmt_local(t.get('due_at'), True)}{late}  "
                   f"{t.get('grid_code') or t.get('street_code') or ''}  {plain(t['title'])}")


@tasks_group.command("mine")
@with_source
@click.option("--user", "who", default=None, help="With --db: whose work (a roster user).")
@click.option("--all", "include_done", is_flag=True, help="Done tasks too.")
@json_option
@handle_errors
def mine(db_path, server, token, who, include_done, as_json) -> None:
    """The logged-in user's open tasks, overdue first (the token's user through a server)."""
    from ..people import tasks

    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            rows = r._get("/v1/tasks", "tasks", mine="true", all=str(include_done).lower())
    else:
        need_user(who)
        with local_store(db_path) as store:
            now = store.clock.now()
            rows = [tasks.task_dict(t, now) for t in tasks.my_work(store, who, now, include_done)]
    emit_json({"tasks": rows}) if as_json else _print_tasks(rows)


@tasks_group.command("act")
@with_source
@click.argument("task")
@click.argument("action", type=click.Choice(["accept", "arrive", "done", "complete", "dispose"]))
@click.option("--note", default="")
@click.option("--finding", type=click.Choice(["ok", "hazard"]), default=None, help="An inspection's outcome.")
@click.option("--photo", default=None, help="Content hash of an attached photo.")
@click.option("--user", "who", default=None, help="With --db: who acts (a roster user).")
@click.option("--role", default=None, help="With --db: their role (default: the roster's).")
@json_option
@handle_errors
def act(db_path, server, token, task, action, note, finding, photo, who, role, as_json) -> None:
    """Accept, arrive at or finish a task; an event's task moves its event (accept, arrive, dispose)."""
    from ..people import tasks

    check_source(db_path, server, token)
    if server:
        body = {"task": task, "action": action, "note": note}
        if finding:
            body["finding"] = finding
        if photo:
            body["photo"] = photo
        with remote(server, token) as r:
            result = r.command("task.act", body)
    else:
        from ..engine import Engine

        with local_store(db_path) as store:
            t = tasks.act_on_task(Engine(store), task, action, local_user(store, who, role), note, finding, photo)
            result = {"task_id": t.id, "status": t.status, "event_id": t.event_id, "version": t.version}
    emit_json(result) if as_json else out(f"{result['task_id']} {result['status']}")


@tasks_group.command("create")
@with_source
@click.option("--code", required=True, help="Grid (or street) code.")
@click.option("--title", required=True)
@click.option("--assignee", default=None, help="Roster user (default: the grid's worker).")
@click.option("--due", default=None, help="30m, 2h, 1d or YYYY-MM-DD HH:MM.")
@click.option("--note", default="")
@click.option("--user", "who", default=None, help="With --db: who creates it.")
@json_option
@handle_errors
def create(db_path, server, token, code, title, assignee, due, note, who, as_json) -> None:
    """An ad-hoc task (临时性任务) for a grid."""
    from ..engine.directives import parse_deadline
    from ..people import tasks

    check_source(db_path, server, token)
    if server:
        import time

        body: dict[str, Any] = {"code": code, "title": title, "note": note}
        if assignee:
            body["assignee"] = assignee
        if due:
            body["due_at"] = parse_deadline(due, time.time())
        with remote(server, token) as r:
            result = r.command("task.create", body)
    else:
        from ..geo.registry import get_registry

        with local_store(db_path) as store:
            now = store.clock.now()
            t = tasks.create_adhoc(store, get_registry(), local_user(store, who, "dispatcher" if not who else None),
                                   code, title, assignee, parse_deadline(due, now) if due else None, note)
            result = {"task_id": t.id, "assignee": t.assignee, "status": t.status}
    emit_json(result) if as_json else out(f"{result['task_id']} → {result['assignee'] or '(unassigned)'}")


@tasks_group.command("generate")
@with_source
@click.option("--scope", default=None, help="District, street or grid code (default: the store's own).")
@click.option("--day", default=None, help="YYYY-MM-DD (default: today).")
@json_option
@handle_errors
def generate(db_path, server, token, scope, day, as_json) -> None:
    """A day's periodic grid tasks from the templates, exactly once (a second run makes none)."""
    from ..people import tasks

    check_source(db_path, server, token)
    if server:
        body = {k: v for k, v in (("scope", scope), ("day", day)) if v}
        with remote(server, token) as r:
            result = r.command("tasks.generate", body)
    else:
        from ..catalogue.loader import load_catalogue
        from ..geo.registry import get_registry

        with local_store(db_path) as store:
            now = store.clock.now()
            g = tasks.generate_day(store, get_registry(), load_catalogue(), scope or store.code, now,
                                   tasks.parse_day(day, now))
            result = {"day": g.day, "scope": g.scope, "created": g.created, "already": g.already,
                      "unassigned": g.unassigned}
    if as_json:
        emit_json(result)
    elif result["already"]:
        out(f"{result['scope']} {result['day']}: already generated")
    else:
        out(f"{result['scope']} {result['day']}: {result['created']} tasks ({result['unassigned']} unassigned)")


@tasks_group.command("dispatch")
@with_source
@click.argument("event")
@click.option("--to", "to_user", required=True, help="The person (roster user) who takes the event.")
@click.option("--note", default="")
@click.option("--user", "who", default=None, help="With --db: the dispatcher.")
@json_option
@handle_errors
def dispatch(db_path, server, token, event, to_user, note, who, as_json) -> None:
    """Dispatch an event to a person (the same as `cqgov events act EVENT dispatch --to USER`)."""
    check_source(db_path, server, token)
    if server:
        with remote(server, token) as r:
            result = r.command("dispatch.person", {"event": event, "to": to_user, "note": note})
        emit_json(result) if as_json else out(f"{result['number']} {result['status']} → {result['assignee']}")
        return
    from ..engine import Engine

    with local_store(db_path) as store:
        engine = Engine(store)
        ref = store.resolve_event(event, prefix=True).id
        dispatch_here(engine, ref, "dispatch", to_user, local_user(store, who, "dispatcher" if not who else None),
                      note, [], as_json)
