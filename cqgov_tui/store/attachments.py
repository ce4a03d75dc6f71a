"""Attachments: their metadata rows (staged by key in the unit of work, logged for sync) and the bytes, kept
by SHA-256 in a content-addressed directory beside the store (``<store>.files/ab/abcdef…``).

Why files and not a DuckDB BLOB table: photos are written once and never change, so a file named by its
hash needs no transaction, deduplicates itself and is verified on every read; the store file, its write-ahead
log, checkpoints, backups and snapshots stay the size of the metadata, and a replica holds only the bytes
someone opened. A file is written (temporary name, fsync, rename) before its row commits: a crash in between
leaves an unreferenced file, never a row without its bytes at the store that received it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from ..domain.attachments import Attachment
from ..domain.schema import to_row
from ..errors import StoreError
from .base import StoreCore
from .unit import register_keyed

register_keyed("attachments", Attachment)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class AttachmentRows(StoreCore):
    """Attachment metadata and the content-addressed bytes (mixed into ``Store``)."""

    _files_dir: str | None = None

    # ------------------------------------------------------------ bytes

    @property
    def files_dir(self) -> str:
        if self._files_dir is None:
            self._files_dir = (tempfile.mkdtemp(prefix="cqgov-files-") if self.path == ":memory:"
                               else self.path + ".files")
        return self._files_dir

    def blob_path(self, sha256: str) -> str:
        if not is_digest(sha256):
            raise StoreError(f"internal: {sha256[:80]!r} is not a SHA-256 digest")
        return os.path.join(self.files_dir, sha256[:2], sha256)

    def read_blob(self, sha256: str) -> bytes | None:
        """The bytes if held here and whole (a file whose hash does not match is removed: fetch it again)."""
        path = self.blob_path(sha256)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if digest(data) != sha256:
            os.remove(path)
            return None
        return data

    def write_blob(self, data: bytes) -> str:
        """Keep ``data`` under its hash (atomically; nothing to do when already held). Returns the hash."""
        sha = digest(data)
        path = self.blob_path(sha)
        if os.path.exists(path):
            return sha
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return sha

    # ------------------------------------------------------------ metadata

    def put_attachment(self, att: Attachment, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("attachments", (att.id,), att)
            self.log_change("attachment", att.id, "upsert", to_row(att), origin, att.scope)

    def attachments_of(self, ref: str) -> list[Attachment]:
        """What is attached to an event or task (by its id), oldest first."""
        return self._select(Attachment, "FROM attachments WHERE ref = ? ORDER BY added_at, id", [ref])

    def attachments_by_hash(self, sha256: str) -> list[Attachment]:
        return self._select(Attachment, "FROM attachments WHERE sha256 = ? ORDER BY added_at, id", [sha256])

    def attachment_counts(self, refs: list[str]) -> dict[str, Any]:
        with self.lock:
            rows = self.conn.execute("SELECT ref, count(*) FROM attachments WHERE ref IN (SELECT unnest(?::VARCHAR[])) "
                                     "GROUP BY ref", [refs]).fetchall()
        return {r[0]: int(r[1]) for r in rows}
