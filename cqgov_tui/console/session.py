"""Open the console's backend from command-line options: a synced replica, a local store,
or (with neither) the built-in sample city."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..clock import Clock, SystemClock
from ..domain.entities import Role, Tier, User
from ..errors import BadInput
from ..scope import CITY_CODE
from .backend import Backend, LocalBackend, RemoteBackend, default_user, token_user


def replica_path(server_url: str) -> str:
    """Default replica file per server, under ``$XDG_DATA_HOME/cqgov`` (or ~/.local/share/cqgov)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "cqgov"
    base.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9]+", "-", server_url).strip("-") or "server"
    return str(base / f"replica-{name}.duckdb")


def open_backend(server_url: str | None = None, token: str | None = None, db_path: str | None = None,
                 clock: Clock | None = None, role: str | None = None) -> Backend:
    from ..store import init_store, open_store

    clock = clock or SystemClock()
    if server_url:
        try:
            from ..sync.client import SyncClient
        except ImportError:
            raise BadInput("this build has no sync client yet; use --db PATH for a local store") from None
        path = db_path or replica_path(server_url)
        if os.path.exists(path):
            store = open_store(path, clock)
        else:
            who = token_user(token, User("operator", "operator", Role.DUTY_OFFICER, Tier.CITY, CITY_CODE))
            store = init_store(path, Tier(who.tier).value, who.scope_code, clock, node=f"console-{who.user}")
        client = SyncClient(store, server_url, token, clock)
        return RemoteBackend(store, client, server_url, token, clock)
    if db_path:
        store = open_store(db_path, clock)
        user = default_user(store)
        # A local store has no server to grant roles; the person at the keyboard acts as admin unless told.
        user = User(user.user, user.name, Role(role or Role.ADMIN.value), user.tier, user.scope_code)
        # No sweep here: on a big store the SLA sweep is the owning server's job, not a viewer's.
        return LocalBackend(store, user=user, clock=clock, sweep=False)
    from .sample import build_sample_store, sample_user

    from ..clock import SimClock

    # The sample is walked on a simulated clock ending now, then runs on the real one.
    sim = clock if isinstance(clock, SimClock) else SimClock(clock.now() - 900)
    store, engine = build_sample_store(sim)
    store.clock = engine.clock = clock
    user = sample_user(Role(role) if role else Role.ADMIN)
    return LocalBackend(store, user=user, clock=clock, engine=engine)
