"""Attachments on events, task completions and feedback (issue 14 item 6): upload with a size limit and a type
told by magic bytes, kept by SHA-256 beside the store; fetched from the tier server only when someone opens one
(and cached after the first fetch); opened with the system viewer.

Over HTTP: ``POST /v1/attachments?ref=…&kind=…&name=…`` (the raw bytes as the body) and
``GET /v1/attachments/{sha256}`` (the bytes, to a caller who may see something they are attached to).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..domain.attachments import ALLOWED_TYPES, KINDS, MAX_BYTES, Attachment
from ..domain.entities import Role, Tier, User
from ..domain.schema import to_row
from ..errors import BadInput, PermissionDenied, UnknownCode
from ..scope import covers
from ..store.attachments import digest, is_digest
from ..store.people import task_scope
from ..store.rows import event_scope

if TYPE_CHECKING:
    from ..server.remote import Remote
    from ..store import Store

MAX_NAME = 200


def sniff(data: bytes, max_bytes: int = MAX_BYTES) -> str:
    """The upload's media type by its magic bytes, or ``BadInput`` naming what is wrong with it."""
    import filetype

    if not data:
        raise BadInput("the file is empty")
    if len(data) > max_bytes:
        raise BadInput(f"the file is {len(data):,} bytes; attachments are at most {max_bytes:,}")
    kind = filetype.guess(data[:8192])
    if kind is None or kind.mime not in ALLOWED_TYPES:
        found = kind.mime if kind is not None else "an unrecognised type"
        raise BadInput(f"the file is {found}; attachments are photos, PDF or MP4 "
                       f"({', '.join(sorted(ALLOWED_TYPES))}), told by their content, not their name")
    return kind.mime


def clean_name(name: str) -> str:
    """The file name as shown: its last path part, without control characters, at most 200 characters."""
    base = os.path.basename((name or "").replace("\\", "/")) or "attachment"
    return "".join(ch for ch in base if ch.isprintable())[:MAX_NAME] or "attachment"


def _target(store: Store, actor: User, kind: str, ref: str) -> tuple[str, str, str | None]:
    """(id, scope, event id for the timeline) of what ``ref`` names, or the refusal."""
    if kind not in KINDS:
        raise BadInput(f"unknown attachment kind {kind!r} (expected {', '.join(KINDS)})")
    if kind == "task":
        from .tasks import _may_act  # the same rule as acting on the task

        task = store.get_task((ref or "").strip())
        if task is None:
            raise UnknownCode(f"no task {ref!r}")
        _may_act(task, actor)
        return task.id, task_scope(task), task.event_id
    event = store.resolve_event(ref)
    scope = event_scope(event)
    if not covers(actor.scope_code, scope):
        raise PermissionDenied(f"{actor.user} may not attach to {event.number}: outside {actor.scope_code}")
    return event.id, scope, event.id


def attach(store: Store, actor: User, ref: str, data: bytes, name: str, kind: str = "event",
           max_bytes: int = MAX_BYTES) -> Attachment:
    """Check, keep and record one file on an event (or task, or feedback); the same bytes twice on one target
    are one attachment. Refused whole (nothing written) when the type, size, target or caller is wrong."""
    mime = sniff(data, max_bytes)
    name = clean_name(name)
    with store.tx():
        target, scope, event_id = _target(store, actor, kind, ref)
        sha = digest(data)
        att_id = f"{target}/{sha}"
        have = store.attachments_of(target)
        for a in have:
            if a.id == att_id:
                return a
        store.write_blob(data)
        now = store.clock.now()
        att = Attachment(id=att_id, ref=target, sha256=sha, kind=kind, name=name, mime=mime, size=len(data),
                         added_at=now, added_by=actor.user, scope=scope, origin_node=store.node, version=1)
        store.put_attachment(att)
        store.append_audit(event_id=event_id or target, action="attach", from_status=None, to_status=None,
                           actor=actor.user, role=Role(actor.role).value, tier=Tier(actor.tier).value,
                           note=f"{kind} {name} ({mime}, {len(data):,} B) sha256:{sha[:12]}", scope=scope)
    return att


def attachment_dict(a: Attachment) -> dict[str, Any]:
    return to_row(a)


def visible(store: Store, sha256: str, user: User) -> Attachment | None:
    """An attachment row with these bytes that ``user`` may see (None: not found, or none of theirs)."""
    for a in store.attachments_by_hash(sha256):
        if covers(user.scope_code, a.scope):
            return a
    return None


# ------------------------------------------------------------ over HTTP


def upload(remote: Remote, ref: str, data: bytes, name: str, kind: str = "event") -> dict[str, Any]:
    """``POST /v1/attachments`` on a tier server: the bytes go up once, the row comes back."""
    import httpx

    from ..server.remote import RemoteError, _raise_for

    sniff(data)  # refused here, before the bytes cross the link
    try:
        resp = remote.http.post("/v1/attachments", params={"ref": ref, "kind": kind, "name": clean_name(name)},
                                content=data, headers={"Content-Type": "application/octet-stream"})
    except httpx.HTTPError as exc:
        raise RemoteError(f"attach: cannot reach {remote.base_url} ({type(exc).__name__})") from None
    remote.bytes_sent += len(data)
    _raise_for(resp, "attach")
    result: dict[str, Any] = resp.json()
    return result


def fetch_remote(remote: Remote, sha256: str) -> bytes:
    """``GET /v1/attachments/{sha256}``; bytes that do not hash to ``sha256`` are refused."""
    import httpx

    from ..server.remote import RemoteError, _raise_for

    if not is_digest(sha256):
        raise BadInput(f"{sha256[:80]!r} is not an attachment hash (64 hex digits)")
    try:
        resp = remote.http.get(f"/v1/attachments/{sha256}", headers={"Accept": "*/*"})
    except httpx.HTTPError as exc:
        raise RemoteError(f"attachment {sha256[:12]}: cannot reach {remote.base_url} ({type(exc).__name__})") from None
    remote.bytes_received += len(resp.content)
    if resp.status_code >= 400:
        _raise_for(resp, f"attachment {sha256[:12]}")
    if digest(resp.content) != sha256:
        raise RemoteError(f"attachment {sha256[:12]}: the server sent bytes that do not match the hash")
    return resp.content


def get_bytes(store: Store, sha256: str, remote: Remote | None = None) -> bytes:
    """The bytes from this store's area, else fetched once from ``remote`` and kept (the replica's cache)."""
    if not is_digest(sha256):
        raise BadInput(f"{sha256[:80]!r} is not an attachment hash (64 hex digits)")
    data = store.read_blob(sha256)
    if data is not None:
        return data
    if remote is None:
        raise UnknownCode(f"attachment {sha256[:12]} is not held here (give --server to fetch it)")
    data = fetch_remote(remote, sha256)
    store.write_blob(data)
    return data


# ------------------------------------------------------------ the system viewer


def viewer_command(path: str, platform: str | None = None) -> list[str]:
    """The command that shows ``path`` with the system's viewer."""
    platform = platform or sys.platform
    if platform == "darwin":
        return ["open", path]
    if platform.startswith("win"):
        return ["explorer", path]
    return ["xdg-open", path]


def view_path(store: Store, att: Attachment) -> str:
    """A copy of the bytes named ``<sha256>.<ext>`` (viewers pick an application by extension)."""
    src = store.blob_path(att.sha256)
    dest = os.path.join(store.files_dir, "view", f"{att.sha256}.{ALLOWED_TYPES.get(att.mime, 'bin')}")
    if not os.path.exists(dest):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(src, dest)
    return dest


Launcher = Callable[[list[str]], Any]


def _launch(cmd: list[str]) -> Any:
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def open_attachment(store: Store, att: Attachment, remote: Remote | None = None,
                    launch: Launcher | None = None) -> list[str]:
    """Fetch the bytes if this store does not hold them (once), then show them; returns the command run."""
    get_bytes(store, att.sha256, remote)
    cmd = viewer_command(view_path(store, att))
    (launch or _launch)(cmd)
    return cmd
