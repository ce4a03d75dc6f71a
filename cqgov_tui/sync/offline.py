"""Commands made on a replica: recorded in its outbox with their local effect, sent by the next sync.

The console (through ``SyncClient.enqueue``) and the headless CLI (``cqgov
events report/act --db REPLICA``) both come here, so a write on a replica
takes one path whoever makes it: the event appears or moves in the replica at
once (``optimistic``), the command waits in the outbox until a sync client
pushes it, and the server's answer — its number for a new event, or a refusal
with the reason — comes back with the next pull.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..domain.entities import User
from ..ids import uuid7
from ..store import Store, replica
from ..store.outbox import Outbox, get_cursor
from . import optimistic
from .identity import SERVER_KEY, UPSTREAM

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..geo.registry import Registry



def enqueue(store: Store, ctype: str, body: dict[str, Any], *, now: float, user: User | None,
            local_effect: Callable[[Store], None] | None = None, catalogue: Catalogue | None = None,
            registry: Registry | None = None) -> str:
    """Record a command and its local effect in one transaction; returns the command id.

    Without ``local_effect`` the built-in effect of ``report``/``act`` is applied.
    A locally impossible command raises and nothing is recorded. (A tier server's federation pump
    queues its copies for the tier above here too, with an empty local effect.)"""
    cid = uuid7(int(now * 1000))
    with store.tx():
        body = optimistic.prepare(store, ctype, body, now)
        keys = optimistic.touched_events(store, ctype, body)
        pre = replica.event_rows(store, keys)
        if local_effect is not None:
            local_effect(store)
        else:
            state = get_cursor(store, UPSTREAM)
            optimistic.apply(store, ctype, body, now=now, user=user,
                             server_node=state.server_node if state else store.meta(SERVER_KEY),
                             server_tier=state.server_tier if state else None,
                             catalogue=catalogue, registry=registry)
        post = replica.event_rows(store, keys)
        Outbox(store).add(cid, ctype, body, now, {"event": pre}, {"event": post})
    return cid
