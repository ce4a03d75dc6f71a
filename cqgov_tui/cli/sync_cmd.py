"""`cqgov sync`: keep a local replica in step with a tier server, headless."""

from __future__ import annotations

import os
import time

import click

from ..errors import BadInput
from . import main
from .common import emit_json, handle_errors, json_option


def _info(url: str, token: str | None) -> dict:
    import httpx

    from ..sync.client import SyncError

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(url.rstrip("/") + "/v1/sync/info", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise SyncError(f"cannot reach {url}: {exc}") from None
    if r.status_code != 200:
        raise SyncError(f"{url} refused: HTTP {r.status_code} {r.text[:200]}")
    return r.json()


def open_replica(db_path: str, url: str, token: str | None):
    """Open the replica, creating it from the server's description on first use."""
    from ..ids import uuid7
    from ..store import init_store, open_store

    if os.path.exists(db_path):
        return open_store(db_path), False
    info = _info(url, token)
    tier = info.get("tier")
    scope = info.get("scope")
    if not tier or not scope:
        raise BadInput(f"{url} did not describe itself (tier/scope missing)")
    return init_store(db_path, tier, scope, node=f"replica-{uuid7()[-12:]}"), True


@main.command("sync")
@click.option("--server", "url", required=True, help="Base URL of the tier server, e.g. http://127.0.0.1:8700")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Replica store (created on first use).")
@click.option("--token", default=None, envvar="CQGOV_TOKEN", help="Bearer token (or $CQGOV_TOKEN).")
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
            pulled = client.pull_until_caught_up()
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
                click.echo(f"synced {db_path} with {url}: {summary['pulled']} rows in, {summary['accepted']} "
                           f"commands accepted, {summary['rejected']} rejected, outbox {summary['outbox']}")
            return
        client.start()
        click.echo(f"syncing {db_path} with {url} (Ctrl-C to stop)", err=True)
        while True:
            time.sleep(5)
            st = client.status()
            if as_json:
                emit_json(st.as_dict())
            else:
                click.echo(f"{st.state} lag={st.lag_s} outbox={st.outbox} rejected={st.rejected} in={st.bytes_in}B",
                           err=True)
    finally:
        client.close()
        store.close()
