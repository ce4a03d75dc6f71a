"""Which server a replica belongs to: recorded when the replica is made, checked before every sync.

A replica is a store whose node is not its tier's own (``Store.is_replica``).
Syncing merges a server's rows into the store, so ``cqgov sync`` and the
console refuse, before any row moves, a store that is not a replica (a tier's
own store would be corrupted by another server's rows), a replica of another
jurisdiction, and a replica of another server. The server's node is recorded
in the replica's metadata at creation; replicas made before that are bound to
the node their sync cursor names, or, without one, to the first server they
sync with.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadInput
from ..store import Store
from ..store.outbox import get_cursor

UPSTREAM = "upstream"  # the replica's one upstream (its cursor row)
SERVER_KEY = "replica.server"  # store_meta: the node of the server the replica was made from
URL_KEY = "replica.url"  # store_meta: where that server was (named in messages)


def server_of(store: Store) -> str | None:
    """The node of the server ``store`` replicates, if known."""
    bound = store.meta(SERVER_KEY)
    if bound:
        return bound
    state = get_cursor(store, UPSTREAM)
    return state.server_node if state is not None and state.server_node else None


def bind(store: Store, info: dict[str, Any], url: str) -> None:
    """Record the server a replica belongs to (on creation, or the first sync of an older replica)."""
    with store.tx():
        store.set_meta(SERVER_KEY, str(info.get("node") or ""))
        store.set_meta(URL_KEY, url)


def check(store: Store, info: dict[str, Any], url: str) -> None:
    """Refuse (``BadInput``, one line) to sync ``store`` with the server ``info`` describes unless it is
    that server's replica for the caller's scope (``info`` is the server's ``/v1/sync/info``)."""
    path = store.path
    node = str(info.get("node") or "")
    if not store.is_replica:
        raise BadInput(f"{path} is the {store.tier.value} store of {store.code} (node {store.node}), not a replica: "
                       f"syncing would merge {url}'s rows into it; give --db a new file (it becomes a replica)")
    scope = str(info.get("scope") or "")
    if scope and store.code != scope:
        raise BadInput(f"{path} is a replica of {store.code}, but {url} serves {scope} to this token; "
                       "give --db another file")
    bound = server_of(store)
    if bound and node and bound != node:
        raise BadInput(f"{path} is a replica of {bound}, not of {node} at {url}; give --db another file")


def check_tier_store(store: Store) -> None:
    """Refuse a replica where a tier's own store is needed (``cqgov serve``)."""
    if store.is_replica:
        bound = server_of(store)
        of = f" of {bound}" if bound else ""
        raise BadInput(f"{store.path} is a replica{of} (node {store.node}), not a tier store: a server needs its own "
                       f"store; give --db the {store.tier.value} store of {store.code} (created if missing)")
