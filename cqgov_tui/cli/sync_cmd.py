"""`cqgov sync`: keep a local replica in step with a tier server, headless."""

from __future__ import annotations

import os
import time

import click

from ..errors import BadInput
from . import main
from .common import emit_json, field, handle_errors, json_option, out, progress, server_option, token_option


def _info(url: str, token: str | None) -> dict:
    import httpx

    from ..sync.client import SyncError, _detail

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(url.rstrip("/") + "/v1/sync/info", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise SyncError(f"cannot reach {url}: {exc}") from None
    if r.status_code != 200 or not r.headers.get("content-type", "").startswith("application/json"):
        raise SyncError(f"{url} refused: HTTP {r.status_code} {_detail(r)}")
    try:
        return r.json()
    except ValueError:
        raise SyncError(f"{url}: {_detail(r)}") from None


def open_replica(db_path: str, url: str, token: str | None):
    """Open the replica, creating it from the server's description on first use; a store that is not
    this server's replica is refused before anything is pulled into it (``sync.identity``)."""
    from ..ids import uuid7
    from ..store import init_store, open_store
    from ..sync import identity
    from ..sync.client import SyncError

    if os.path.exists(db_path):
        store = open_store(db_path)
        try:
            if not store.is_replica:
                identity.check(store, {}, url)  # refuses without asking the server
            try:
                info = _info(url, token)
            except SyncError:
                if identity.server_of(store) is None:
                    raise
                # Bound already: sync offline-first as before; the client refuses another server's snapshot.
                return store, False
            identity.check(store, info, url)
            if not store.meta(identity.SERVER_KEY):
                identity.bind(store, info, url)
        except BaseException:
            store.close()
            raise
        return store, False
    info = _info(url, token)
    tier = info.get("tier")
    scope = info.get("scope")
    if not tier or not scope:
        raise BadInput(f"{url} did not describe itself (tier/scope missing)")
    store = init_store(db_path, tier, scope, node=f"replica-{uuid7()[-12:]}")
    identity.bind(store, info, url)
    return store, True


@main.command("sync")
@server_option("url")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Replica store (created on first use).")
@token_option(required=False)
@click.option("--once", is_flag=True, help="Pull until caught up, push the outbox, print a summary and exit.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 5000), help="Changes per request.")
@click.option("--wait", default=55.0, show_default=True, type=click.FloatRange(0, 60),
              help="Long-poll seconds (new changes still arrive at once; a long wait keeps idle traffic tiny).")
@json_option
@handle_errors
def sync(url: str, db_path: str, token: str | None, once: bool, limit: int, wait: float, as_json: bool) -> None:
    """Pull deltas into a local replica and push its outbox (runs until Ctrl-C unless --once)."""
    from ..sync.client import SyncClient

    store, created = open_replica(db_path, url, token)
    client = SyncClient(store, url, token=token, limit=limit, wait=wait)
    try:
        if once:
            pulled = client.pull_until_caught_up(progress=None if as_json else _pull_progress())
            pushed = client.push_until_drained()
            if pushed.accepted or pushed.duplicate:
                more = client.pull_until_caught_up()  # bring back the server's rows for what was pushed
                pulled.rows += more.rows
            st = client.status()
            summary = {"db": db_path, "server": url, "created": created, "pulled": pulled.rows,
                       "resynced": pulled.resynced, "caught_up": pulled.caught_up, "pushed": pushed.sent,
                       "accepted": pushed.accepted, "duplicate": pushed.duplicate, "rejected": pushed.rejected,
                       "outbox": st.outbox, "cursor": st.cursor, "events": store.count_events(),
                       "bytes_in": st.bytes_in, "bytes_out": st.bytes_out, "last_error": pushed.error}
            if as_json:
                emit_json(summary)
            else:
                out(f"synced {field(db_path)} with {field(url)}: {summary['pulled']} rows in, {summary['accepted']} "
                    f"commands accepted, {summary['rejected']} rejected, outbox {summary['outbox']}")
            return
        client.start()
        progress(f"syncing {field(db_path)} with {field(url)} (Ctrl-C to stop)")
        while True:
            time.sleep(5)
            st = client.status()
            if as_json:
                emit_json(st.as_dict())
            else:
                progress(f"{st.state} lag={st.lag_s} outbox={st.outbox} rejected={st.rejected} in={st.bytes_in}B")
    finally:
        client.close()
        store.close()


def _pull_progress():
    """A line on stderr at most every 2 s while pulling many pages (a snapshot resync of a large store)."""
    last = [time.monotonic()]

    def report(total) -> None:
        if time.monotonic() - last[0] >= 2.0:
            last[0] = time.monotonic()
            progress(f"  {'snapshot' if total.resynced else 'pulling'}: {total.rows:,} rows so far …")

    return report
