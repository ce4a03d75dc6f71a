"""Open the console's backend from command-line options: a replica synced with a tier server,
or a local store. The sample city is for tests and ``python -m cqgov_screens`` only."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..clock import Clock, SystemClock
from ..domain.entities import Role, Tier, User
from ..errors import BadInput
from ..scope import CITY_CODE
from .backend import Backend, LocalBackend, RemoteBackend, default_user, token_user

# The console's long-poll is the sync client's default (``sync.client.DEFAULT_WAIT``, 55 s; not imported
# here, to keep httpx off the console's start-up). A new event still arrives the moment it commits, and
# quitting cuts the poll in flight (SyncClient.stop), so a short wait bought nothing but traffic
# (2 s waits cost an idle console 43 MB down and 22 MB up a day).
CONSOLE_POLL_S: float | None = None
CONSOLE_BACKOFF_CAP_S = 5.0
HINT = ("cqgov tui needs a data source: --server URL --token TOKEN (a tier server, see `cqgov serve`) "
        "or --db PATH (a local store); `cqgov demo` starts a live city with the console")


def replica_path(server_url: str) -> str:
    """Default replica file per server, under ``$XDG_DATA_HOME/cqgov`` (or ~/.local/share/cqgov)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cqgov"
    base.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9]+", "-", server_url).strip("-") or "server"
    return str(base / f"replica-{name}.duckdb")


def open_backend(server_url: str | None = None, token: str | None = None, db_path: str | None = None,
                 clock: Clock | None = None, role: str | None = None, sample: bool = False,
                 low_bandwidth: bool = False) -> Backend:
    from ..store import init_store, open_store

    clock = clock or SystemClock()
    if server_url:
        from ..sync.client import SyncClient

        who = token_user(token, User("operator", "operator", Role.DUTY_OFFICER, Tier.CITY, CITY_CODE))
        path = db_path or replica_path(server_url)
        if os.path.exists(path):
            store = open_store(path, clock)
            if (store.tier.value, store.code) != (Tier(who.tier).value, who.scope_code):
                store.close()
                raise BadInput(f"{path} is the replica of {store.tier.value} {store.code}, but the token is for "
                               f"{Tier(who.tier).value} {who.scope_code}; give another --db")
        else:
            store = init_store(path, Tier(who.tier).value, who.scope_code, clock, node=f"console-{who.user}")
        # The user goes to the client too: its local effects check the same role the server will.
        # Long long-polls: changes still arrive at once, and stopping the client cuts a pull in flight.
        # A short backoff cap: a person watching "offline" should see "live" soon after the server returns.
        # On a weak link, smaller pages: each request finishes (and its cursor commits) before a drop.
        pages = {"limit": 100, "snapshot_limit": 500} if low_bandwidth else {}
        wait = {} if CONSOLE_POLL_S is None else {"wait": CONSOLE_POLL_S}
        client = SyncClient(store, server_url, token, clock, user=who, **wait,
                            backoff_cap=CONSOLE_BACKOFF_CAP_S, **pages)
        return RemoteBackend(store, client, server_url, token, clock, user=who)
    if db_path:
        if not os.path.exists(db_path):
            raise BadInput(f"no store at {db_path} (create one with `cqgov init`)")
        store = open_store(db_path, clock)
        if store.is_replica:
            # Acting on it directly would never reach its server (and a report would need a number only
            # the server gives): a replica is opened with its server, whose outbox carries the writes.
            from ..sync.identity import URL_KEY

            url = store.meta(URL_KEY) or "URL"
            store.close()
            raise BadInput(f"{db_path} is a replica; open it with its server: cqgov tui --server {url} --token TOKEN "
                           f"--db {db_path}")
        return _local_backend(store, role, clock)
    if not sample:
        raise BadInput(HINT)
    from ..clock import SimClock
    from .sample import build_sample_store, sample_user

    # The sample is walked on a simulated clock ending now, then runs on the real one.
    sim = clock if isinstance(clock, SimClock) else SimClock(clock.now() - 900)
    store, engine = build_sample_store(sim)
    store.clock = engine.clock = clock
    user = sample_user(Role(role) if role else Role.ADMIN)
    return LocalBackend(store, user=user, clock=clock, engine=engine)


def pending_local_backend(db_path: str, tier: str, code: str, node: str, role: str | None = None,
                          clock: Clock | None = None) -> Backend | None:
    """``open_backend(db_path=…)`` for a store whose metadata is already known (from its start snapshot, whose
    key proves the file unchanged): the same backend and user, on a store opened later
    (``console.pending_store``) with the same checks as ``open_backend``, raised then."""
    from .pending_store import PendingStore

    clock = clock or SystemClock()
    try:
        known = Tier(tier)
    except ValueError:
        return None

    def opener():
        store = open_backend(db_path=db_path, clock=clock, role=role).store
        if (store.tier, store.code, store.node) != (known, code, node):  # the snapshot's key said otherwise
            store.close()
            raise BadInput(f"{db_path} is no longer the store the console showed ({known.value} {code}); "
                           "start the console again")
        return store

    store = PendingStore(db_path, known, code, node, clock, opener)
    if store.is_replica:
        return None
    return _local_backend(store, role, clock)


def _local_backend(store, role: str | None, clock: Clock) -> Backend:
    """The console on a tier's own store (``--db``): its user from the store's tier and code."""
    user = default_user(store)
    # A local store has no server to grant roles; the person at the keyboard acts as admin unless told.
    user = User(user.user, user.name, Role(role or Role.ADMIN.value), user.tier, user.scope_code)
    # No sweep here: on a big store the SLA sweep is the owning server's job, not a viewer's.
    return LocalBackend(store, user=user, clock=clock, sweep=False)
