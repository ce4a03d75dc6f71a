"""A guard for DuckDB's write-ahead log: a store whose ``.wal`` lost committed bytes refuses to open.

What DuckDB does (2.0): every commit appends to ``<store>.wal`` and syncs it;
the main file changes only at a checkpoint (when the log passes 128 MB here, on
``CHECKPOINT`` and when the last connection closes), which also deletes the
log. Opening replays the log; if the log ends early — truncated by a copy, a
tool or a damaged disk — DuckDB replays what is there, silently drops the
rest, and a read-write open then checkpoints, so the loss becomes permanent.

The guard: after each commit, the process owning the store writes the log's
size to ``<store>.walmark``, together with a digest of the main file's headers
(which change at every checkpoint). Before DuckDB is allowed to open the store,
``check`` compares: a log shorter than the mark (or missing) while the headers
are the ones the mark saw means committed transactions would be lost — refused
with one line. A mark from before a checkpoint (other headers) says nothing
and is ignored, as is an unreadable mark, so a crash at any point never makes
a healthy store refuse to open: the log only shrinks at a checkpoint, and the
mark is written after the commit whose size it records.
"""

from __future__ import annotations

import os
import zlib

from ..errors import StoreCorrupt

SUFFIX = ".walmark"
_HEADERS = 3 * 4096  # DuckDB's file header and its two alternating database headers
_VERSION = "cqgov-walmark-2"


def mark_path(path: str) -> str:
    return path + SUFFIX


def _wal_size(path: str) -> int | None:
    try:
        return os.stat(path + ".wal").st_size
    except FileNotFoundError:
        return None


def _digest(head: bytes) -> str:
    # Tells one set of headers from the next (not a defence against forgery): CRC-32 costs microseconds.
    return f"{zlib.crc32(head):08x}{len(head):05d}"


def _headers(path: str) -> str:
    """Only before this process opens the store: closing any descriptor of a file drops every POSIX lock
    the process holds on it, DuckDB's included (``WalMark`` reads through one descriptor kept open)."""
    with open(path, "rb") as f:
        return _digest(f.read(_HEADERS))


def _read(path: str) -> tuple[int, str] | None:
    try:
        with open(mark_path(path), encoding="ascii") as f:
            version, size, digest = f.read(200).split()
        if version != _VERSION:
            return None
        return int(size), digest
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # no mark, or one torn by a crash: nothing to compare against


def check(path: str) -> None:
    """Refuse (``StoreCorrupt``) a store whose write-ahead log is shorter than its last recorded commit."""
    mark = _read(path)
    if mark is None or mark[0] == 0:
        return
    size, digest = mark
    have = _wal_size(path)
    if have is not None and have >= size:
        return
    try:
        # Other headers: checkpointed since the mark was written (the log it measured is in the main
        # file), possibly just now by the process holding the store (headers are written before the log goes).
        if _headers(path) != digest:
            return
    except OSError:
        return
    wal = os.path.basename(path) + ".wal"
    hint = (f"restore a backup (`cqgov store backup`), or delete {os.path.basename(mark_path(path))} "
            "to open what is left")
    if have is None:
        raise StoreCorrupt(f"{path}: the write-ahead log {wal} is missing but held {size} bytes of committed "
                           f"transactions; {hint}")
    raise StoreCorrupt(f"{path}: the write-ahead log {wal} was truncated ({have} of {size} bytes): its last "
                       f"committed transactions would be lost; {hint}")


class WalMark:
    """Kept by the process that writes the store; ``record`` after each commit, ``clear`` before closing."""

    def __init__(self, path: str):
        self.path = path
        self._mark = mark_path(path)
        # One descriptor on the store for its lifetime, closed only after DuckDB's (see _headers).
        self._fd: int | None = None
        self._mark_fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError:
            pass

    def record(self) -> None:
        if self._fd is None:
            return
        size = _wal_size(self.path) or 0
        try:
            # Fixed width, written in place through one descriptor without truncating (a truncating
            # rewrite cost ~2 ms a commit here) and without fsync: a stale mark only records less than
            # the synced log holds, never more.
            text = f"{_VERSION} {size:020d} {_digest(os.pread(self._fd, _HEADERS, 0))}\n".encode("ascii")
            if self._mark_fd is None:
                self._mark_fd = os.open(self._mark, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # once
            os.pwrite(self._mark_fd, text, 0)
        except OSError:
            pass  # the guard is best effort; the store itself is unaffected

    def clear(self) -> None:
        if self._mark_fd is not None:
            os.close(self._mark_fd)
            self._mark_fd = None
        try:
            os.remove(self._mark)
        except OSError:
            pass

    def close(self) -> None:
        """After DuckDB has closed the store."""
        self.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
