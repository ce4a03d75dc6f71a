"""Attachments (issue 14 item 6): photos and files on an event, a task's completion or a feedback, declared once.

Stored by content hash: the metadata row replicates like other rows (it is the
reference sync sends); the bytes stay in the content-addressed area beside the
store that received them and travel only when someone opens them
(``GET /v1/attachments/{sha256}``), never pushed down a slow link unasked.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import table

# What an upload may be, told by its magic bytes (never by the file name): photos, scans and short videos.
ALLOWED_TYPES: dict[str, str] = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp", "image/heic": "heic",
    "application/pdf": "pdf", "video/mp4": "mp4",
}
# One photo or a short clip, and the tier server's request body limit (server.app.MAX_BODY): a 64 kbit/s link
# moves 8 MiB in ~18 minutes, which is why the bytes travel only when someone opens them.
MAX_BYTES = 8 * 1024 * 1024
KINDS = ("event", "task", "feedback")


@table("attachments", key=("id",))
@dataclass
class Attachment:
    id: str  # "<ref>/<sha256>": one file on one event or task
    ref: str  # the event id or task id it belongs to
    sha256: str  # hex digest of the bytes: their name in the content-addressed area
    kind: str  # event | task (a completion's photo) | feedback (回访)
    name: str  # the uploader's file name, shown only (never used as a path)
    mime: str  # by magic bytes, one of ALLOWED_TYPES
    size: int
    added_at: float
    added_by: str
    scope: str  # the jurisdiction of what it is attached to (replication scope)
    origin_node: str
    version: int
