"""`cqgov store …`: upkeep of a store file — archive old history to Parquet (see ``store.archive``)."""

from __future__ import annotations

import datetime as _dt
import os

import click

from ..errors import BadInput
from . import main
from .common import db_option, emit_json, field, handle_errors, json_option, out


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' or plain seconds → seconds (positive): the CLI's one duration reader."""
    from .values import parse_duration

    return parse_duration(text)


def parse_date(text: str) -> float:
    """A local (Asia/Shanghai) date 'YYYY-MM-DD' (its midnight) or ISO date-time → epoch seconds."""
    from ..clock import CST

    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"unreadable date {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CST)
    return when.timestamp()


@main.group("store")
def store_group() -> None:
    """Store upkeep: check a store, back it up (also through its server), archive old history to Parquet."""


@store_group.command("archive")
@db_option
@click.option("--before", default=None, help="Archive what is older than this local date (YYYY-MM-DD).")
@click.option("--older-than", default=None, help="Archive what is older than this age (e.g. 30d, 12h).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the Parquet files (one subdirectory per kind; created if missing).")
@json_option
@handle_errors
def archive_cmd(db_path, before, older_than, out_dir, as_json) -> None:
    """Export raw readings, roll-ups and closed events older than a cutoff to Parquet, then drop them.

    Open events are never archived, nor closed ones an open event still points
    at. Audit entries of archived events are copied out and kept (the chain
    still verifies). Replicas keep their copies of dropped events; archive the
    owning tier server's store (stopped), never a replica.
    """
    from ..clock import SystemClock, fmt_local
    from ..store import open_store
    from ..store.archive import archive

    if (before is None) == (older_than is None):
        raise BadInput("give exactly one of --before DATE or --older-than AGE")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BadInput(f"{out_dir}: not a directory")
    cutoff = parse_date(before) if before is not None else SystemClock().now() - parse_age(older_than)
    store = open_store(db_path)
    try:
        if store.is_replica:
            raise BadInput(f"{db_path} is a replica (node {store.node}) of {store.tier.value} {store.code}: "
                           "archive the owning server's store instead")
        result = archive(store, cutoff, out_dir)
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
        return
    out(f"archived what is older than {fmt_local(cutoff, with_date=True)} to {field(result.out_dir)}")
    for kind, n in result.rows.items():
        note = " (copied; kept in the store)" if kind == "audit" and n else ""
        where = f" → {result.files[kind]}" if kind in result.files else ""
        out(f"  {kind:<16} {n:>10,}{note}{field(where)}")


@store_group.command("check")
@db_option
@json_option
@handle_errors
def check_cmd(db_path, as_json) -> None:
    """Read the whole store and stop at the first fault: every table (every block), the open-event queue
    against the open events, the change log gapless, the audit chain. Exit 0 when sound, 1 naming the fault."""
    from ..errors import CqgovError
    from ..store import open_store
    from ..store.check import check_store

    with open_store(db_path, read_only=True) as store:
        report = check_store(store)
    if as_json:
        emit_json({"db": db_path, **report.as_dict()})
    elif report.ok:
        out(f"{field(db_path)}: sound — {report.tables} tables, {report.rows:,} rows read, "
            f"{report.open_events} open events queued, change log {report.change_log}, "
            f"audit chain of {report.audit_entries} entries intact ({report.seconds:.2f} s)")
    if not report.ok:
        raise CqgovError(f"{db_path}: {report.fault}")


@store_group.command("backup")
@db_option
@click.option("--to", "dest", required=True, type=click.Path(dir_okay=False),
              help="The copy to write (a new file; never overwritten).")
@click.option("--server", "url", default=None,
              help="The server holding the store: the copy is made by that server (needs an admin --token).")
@click.option("--token", default=None, envvar="CQGOV_TOKEN", help="Admin token for --server (or $CQGOV_TOKEN).")
@json_option
@handle_errors
def backup_cmd(db_path, dest, url, token, as_json) -> None:
    """A consistent copy of a store, then `store check` on the copy.

    A closed store is copied directly (its write-ahead log included; the store is not changed). A store a
    running server holds is copied by that server while it keeps serving: give --server and an admin
    --token of its jurisdiction. Copying the .duckdb file by hand is not a backup while a server runs."""
    from ..errors import CqgovError, StoreLocked
    from ..store import open_store
    from ..store.backup import backup_to
    from ..store.check import check_store

    if os.path.exists(dest):
        raise BadInput(f"{dest}: already exists; a backup never overwrites a file")
    if url:
        result = _backup_through(url, token, db_path, dest)
    else:
        try:
            store = open_store(db_path, read_only=True)
        except StoreLocked as exc:
            raise StoreLocked(f"{exc}; to back it up, ask that server: cqgov store backup --db {db_path} --to {dest} "
                              "--server URL --token ADMIN_TOKEN") from None
        with store:
            result = backup_to(store, dest).as_dict()
    with open_store(dest, read_only=True) as copy:
        report = check_store(copy)
    if as_json:
        emit_json({"db": db_path, "backup": result, "check": report.as_dict()})
    else:
        out(f"backed up {field(db_path)} to {field(result['path'])}: {result['bytes']:,} bytes, change log head "
            f"{result['head']}; check of the copy: {'sound' if report.ok else report.fault}")
    if not report.ok:
        raise CqgovError(f"{dest}: the copy fails its check: {report.fault}")


def _backup_through(url: str, token: str | None, db_path: str, dest: str) -> dict:
    """GET /v1/store/backup into ``dest`` (written beside it, renamed when complete)."""
    import httpx

    from ..server.upkeep import STORE_FILE_HEADER
    from ..sync.client import SyncError as Unreachable  # exit 6: the server failed or could not be reached

    if not token:
        raise BadInput("--server needs --token (an admin token of that server's jurisdiction, or $CQGOV_TOKEN)")
    part = f"{dest}.part"
    try:
        with httpx.stream("GET", url.rstrip("/") + "/v1/store/backup", headers={"Authorization": f"Bearer {token}"},
                          timeout=httpx.Timeout(30.0, read=600.0)) as r:
            if r.status_code != 200:
                r.read()
                try:
                    detail = str(r.json().get("detail", ""))[:300]
                except ValueError:
                    detail = r.reason_phrase
                raise Unreachable(f"{url} refused the backup: HTTP {r.status_code}: {detail}")
            held = r.headers.get(STORE_FILE_HEADER, "")
            if held != os.path.basename(db_path):
                raise BadInput(f"{url} holds the store {held or '(unnamed)'}, not {os.path.basename(db_path)}")
            size = 0
            with open(part, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
                    size += len(chunk)
            os.replace(part, dest)
            head = int(r.headers.get("X-Cqgov-Head", "0") or 0)
            epoch = r.headers.get("X-Cqgov-Epoch", "")
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach {url}: {exc}") from None
    finally:
        if os.path.exists(part):
            os.remove(part)
    return {"path": os.path.abspath(dest), "bytes": size, "head": head, "epoch": epoch, "through": url}
