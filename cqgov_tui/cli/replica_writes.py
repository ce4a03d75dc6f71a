"""`cqgov events report/act/supervise` on a replica: the command goes into the replica's outbox, as the console's do.

A replica never applies a command itself (only its server numbers events and
writes their audit): the event appears or moves in the replica at once, and the
next ``cqgov sync`` pushes the command; the server's row (with its number) or
its refusal (with the reason, shown by ``sync``) comes back with that sync.
"""

from __future__ import annotations

import math

from ..domain.entities import User
from ..errors import BadInput
from ..sync import identity, offline
from ..sync.optimistic import PENDING_NUMBER
from .common import emit_json, field, out


def _sync_hint(store) -> str:
    url = store.meta(identity.URL_KEY) or "URL"
    return f"`cqgov sync --server {url} --db {store.path} --once` sends it"


def _coordinate(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"--{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise BadInput(f"--{name} must be a finite number, got {text!r}")
    return value


def _done(store, cid: str, event, what: str, as_json: bool) -> None:
    from ..store.outbox import Outbox

    waiting = Outbox(store).count()
    if as_json:
        from .events_cmd import event_dict

        emit_json({"queued": True, "command_id": cid, "outbox": waiting, "server": store.meta(identity.URL_KEY),
                   "event": event_dict(event, store.clock.now()) if event is not None else None})
        return
    out(f"{what}: queued in the outbox of replica {field(store.path)} ({waiting} waiting); {_sync_hint(store)}")


def report(store, actor: User, *, category: str, title: str, text: str, lon: str | None, lat: str | None,
           code: str | None, colour: str | None, source: str, as_json: bool) -> None:
    now = store.clock.now()
    body = {"category": category, "title": title, "text": text, "source": source, "reporter": actor.user}
    for key, value in (("lon", _coordinate(lon, "lon")), ("lat", _coordinate(lat, "lat")), ("code", code),
                       ("colour", colour)):
        if value is not None:
            body[key] = value
    cid = offline.enqueue(store, "report", body, now=now, user=actor)
    body_id = _queued_body(store, cid)["event_id"]
    event = store.get_event(body_id)
    _done(store, cid, event, f"{PENDING_NUMBER} {body_id} reported", as_json)


def act(store, actor: User, ref: str, action: str, *, note: str, departments: list[str] | None,
        target: str | None, as_json: bool) -> None:
    event = store.resolve_event(ref, prefix=True)  # a person may give a number, an id or an id prefix
    body: dict = {"event": event.id, "action": action, "note": note}
    if departments:
        body["departments"] = departments
    if target:
        body["target"] = store.resolve_event(target, prefix=True).id
    cid = offline.enqueue(store, "act", body, now=store.clock.now(), user=actor)
    after = store.get_event(event.id)
    _done(store, cid, after, f"{field(event.number)} {action} → {field(after.status if after else '?')}", as_json)


def supervise(store, actor: User, ref: str, *, note: str, deadline_at: float | None, as_json: bool) -> None:
    """督办 from a replica: checked against what the replica holds (the event, open, a note), then queued."""
    from ..domain.entities import Status
    from ..engine.access import find_event
    from ..errors import IllegalTransition

    event = find_event(store, ref, actor)
    if not Status(event.status).is_open:
        raise IllegalTransition(f"cannot supervise {event.number}: it is {event.status}")
    body: dict = {"event": event.id, "note": note}
    if deadline_at is not None:
        body["deadline_at"] = deadline_at
    cid = offline.enqueue(store, "supervise", body, now=store.clock.now(), user=actor)
    _done(store, cid, event, f"{field(event.number)} supervise", as_json)


def _queued_body(store, cid: str) -> dict:
    from ..store.outbox import Outbox

    row = Outbox(store).get(cid)
    assert row is not None  # enqueue committed it
    return row.body
