"""`cqgov events attach NUMBER FILE` and `cqgov attachments get HASH --out F | list REF`: photos and files on
events and tasks, kept by content hash (``people/attachments.py``).

``--db FILE`` works on a local store; ``--server URL --token T`` on a tier server. ``attachments get`` with both
reads the local store's copy, or fetches it once from the server and keeps it there (a replica's cache).
"""

from __future__ import annotations

import os

import click

from ..errors import BadInput
from ..textsafe import plain
from . import main
from .common import emit_json, handle_errors, json_option, out
from .roster_cmd import local_store, local_user, remote, with_source


def _read_file(path: str) -> bytes:
    from ..domain.attachments import MAX_BYTES

    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise BadInput(f"{path}: {size:,} bytes; attachments are at most {MAX_BYTES:,}")
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None


def attach_file(db_path: str | None, server: str | None, token: str | None, ref: str, path: str, kind: str,
                user: str | None, role: str | None, as_json: bool) -> None:
    from ..people import attachments

    data = _read_file(path)
    name = os.path.basename(path)
    if server and not db_path:
        if not token:
            raise BadInput("--server needs --token")
        with remote(server, token) as r:
            row = attachments.upload(r, ref, data, name, kind)
    elif db_path and not server:
        with local_store(db_path) as store:
            if store.is_replica:
                raise BadInput(f"{db_path} is a replica: attach through its server (--server URL --token T)")
            row = attachments.attachment_dict(attachments.attach(store, local_user(store, user, role), ref, data,
                                                                 name, kind))
    else:
        raise BadInput("give either --db FILE or --server URL --token T")
    if as_json:
        emit_json(row)
    else:
        out(f"{row['sha256']}  {row['mime']}  {row['size']:,} B  {plain(row['name'])}  → {row['kind']} {row['ref']}")


@main.group("attachments")
def attachments_group() -> None:
    """Photos and files on events and tasks: fetch one by its hash, list an event's."""


@attachments_group.command("get")
@with_source
@click.argument("sha256")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the bytes.")
@handle_errors
def get(db_path, server, token, sha256, out_path) -> None:
    """Write an attachment's bytes to --out (fetched from --server when the --db store does not hold them)."""
    from ..people import attachments

    sha = sha256.strip().lower()
    if not db_path and not server:
        raise BadInput("give --db FILE, --server URL --token T, or both")
    if server and not token:
        raise BadInput("--server needs --token")
    if db_path:
        with local_store(db_path) as store:
            if server:
                with remote(server, token) as r:
                    data = attachments.get_bytes(store, sha, r)
            else:
                data = attachments.get_bytes(store, sha)
    else:
        with remote(server, token) as r:
            data = attachments.fetch_remote(r, sha)
    try:
        with open(out_path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise BadInput(f"{out_path}: cannot write ({exc.strerror})") from None
    out(f"{sha[:12]}… {len(data):,} B → {out_path}")


@attachments_group.command("list")
@with_source
@click.argument("ref")
@json_option
@handle_errors
def list_attachments(db_path, server, token, ref, as_json) -> None:
    """The attachments of an event (number or id) or task (id)."""
    from ..people import attachments

    if bool(db_path) == bool(server):
        raise BadInput("give either --db FILE or --server URL --token T")
    if server:
        if not token:
            raise BadInput("--server needs --token")
        with remote(server, token) as r:
            rows = r._get("/v1/attachments", "attachments", ref=ref)
    else:
        with local_store(db_path) as store:
            try:
                target = store.resolve_event(ref, prefix=True).id
            except Exception:  # noqa: BLE001 - not an event: a task id
                target = ref
            rows = [attachments.attachment_dict(a) for a in store.attachments_of(target)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out("no attachments")
    for a in rows:
        out(f"{a['sha256']}  {a['mime']:16} {a['size']:>10,} B  {plain(a['name'])}  ({a['kind']}, {a['added_by']})")
