"""The event detail's attachments (issue 14 item 6), UI-free: the list, and opening one with the system viewer —
on a replica the bytes are fetched from its tier server the first time (then kept), never before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..people import attachments
from ..textsafe import plain


@dataclass(frozen=True)
class AttachmentRow:
    n: int  # 1-based, what the user types to open it
    name: str
    mime: str
    size: int
    kind: str
    added_by: str
    held: bool  # the bytes are in this store's area (opened before, or this store received them)
    sha256: str


def attachment_rows(store: Any, event_id: str) -> list[AttachmentRow]:
    out = []
    for i, a in enumerate(store.attachments_of(event_id), 1):
        out.append(AttachmentRow(i, plain(a.name), a.mime, a.size, a.kind, plain(a.added_by), _exists(store, a.sha256),
                                 a.sha256))
    return out


def _exists(store: Any, sha256: str) -> bool:
    import os

    return os.path.exists(store.blob_path(sha256))


def remote_for(backend: Any) -> Any:
    """A client of the backend's tier server with its token, or None for a local store."""
    url = getattr(backend, "server_url", None)
    client = getattr(backend, "client", None)
    if not url or client is None:
        return None
    from ..server.remote import Remote

    auth = str(getattr(client, "_push_http").headers.get("authorization", ""))
    return Remote(url, auth.removeprefix("Bearer ").strip() or None)


def open_nth(backend: Any, event_id: str, n: int, launch: attachments.Launcher | None = None) -> list[str]:
    """Open the ``n``-th attachment of the event (fetching it once on a replica); returns the command run."""
    from ..errors import BadInput

    found = backend.store.attachments_of(event_id)
    if not 1 <= n <= len(found):
        raise BadInput(f"no attachment {n} (this event has {len(found)})")
    remote = remote_for(backend)
    try:
        return attachments.open_attachment(backend.store, found[n - 1], remote, launch)
    finally:
        if remote is not None:
            remote.close()
