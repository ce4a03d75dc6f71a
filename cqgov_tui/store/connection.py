"""Open a DuckDB file, turning DuckDB's errors into one-line user messages.

Every store opens with DuckDB's extension auto-install and auto-load off: a
store needs no extension, and a file of another format (a SQLite database
given as ``--db``) must fail at once, not make DuckDB fetch a reader for it.
"""

from __future__ import annotations

import os
import re
from typing import Any

import duckdb

from ..errors import StoreCorrupt, StoreLocked, StoreMissing
from . import walmark

_PID = re.compile(r"PID (\d+)")
# No network, no extension directory: what a store needs is built into DuckDB.
# The unit of work's bulk statements name their Arrow tables as Python variables of the calling function
# (store/unit.py): replacement scans stay on, and look in that one frame only.
_CONFIG: dict[str, str | bool | int | float | list[str]] = {"autoinstall_known_extensions": False,
                                                             "autoload_known_extensions": False,
                                                             "python_enable_replacements": True,
                                                             "python_scan_all_frames": False}
CHECKPOINT_THRESHOLD = "128MB"
_DUCKDB_MAGIC = (8, b"DUCK")  # offset and bytes of DuckDB's file magic
_FOREIGN = ((b"SQLite format 3\x00", "a SQLite database"), (b"PAR1", "a Parquet file"),
            (b"PK\x03\x04", "a ZIP archive"))


# Stores this process has open, by real path. Reading a file it has open through a second descriptor and
# closing that would drop DuckDB's POSIX lock on it (every lock of a process on a file goes with any of its
# descriptors), so the checks that read the file are made only before the first open.
_OPEN_HERE: dict[str, int] = {}


def closed(path: str) -> None:
    """Told by the store when it closed its connection."""
    key = os.path.realpath(path)
    n = _OPEN_HERE.get(key, 0) - 1
    if n > 0:
        _OPEN_HERE[key] = n
    else:
        _OPEN_HERE.pop(key, None)


def _foreign(path: str) -> str | None:
    """What a file is when it is plainly not a DuckDB database (None when it may be one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None  # DuckDB reports what it cannot read
    offset, magic = _DUCKDB_MAGIC
    if head[offset:offset + len(magic)] == magic:
        return None
    for prefix, what in _FOREIGN:
        if head.startswith(prefix):
            return what
    return "not a DuckDB database"


def connect(path: str, *, create: bool, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if path != ":memory:":
        exists = os.path.exists(path)
        if not exists and not create:
            raise StoreMissing(f"{path}: no such store (create it with `cqgov init --db {path} …`)")
        if exists and os.path.isdir(path):
            raise StoreCorrupt(f"{path}: is a directory, not a store")
        if exists and os.path.getsize(path) == 0:
            raise StoreCorrupt(f"{path}: empty file, not a cqgov store")
        parent = os.path.dirname(os.path.abspath(path))
        if create and not os.path.isdir(parent):
            raise StoreMissing(f"{path}: directory {parent} does not exist")
        if exists and os.path.realpath(path) not in _OPEN_HERE:
            what = _foreign(path)
            if what is not None:
                raise StoreCorrupt(f"{path}: {what}, not a cqgov store")
            walmark.check(path)  # before DuckDB replays (and a read-write open checkpoints away) a cut log
    try:
        conn = duckdb.connect(path, read_only=read_only, config=_CONFIG)
        # DuckDB draws a progress bar on stdout for long statements, which would
        # corrupt JSON output and scribble over the console.
        conn.execute("SET enable_progress_bar = false")
        if not read_only:
            # DuckDB checkpoints inside the COMMIT that takes the log past this size, holding up every writer
            # behind it. At the 16 MB default a busy district server checkpointed every few seconds (half its
            # commit time); at 128 MB it does so far less often and an event's many versions fold into one
            # write. A crash replays at most this much log at the next open (a second or two).
            conn.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        if path != ":memory:":
            key = os.path.realpath(path)
            _OPEN_HERE[key] = _OPEN_HERE.get(key, 0) + 1
        return conn
    except duckdb.IOException as exc:
        msg = str(exc)
        if "Could not set lock" in msg:
            m = _PID.search(msg)
            who = f"process {m.group(1)}" if m else "another process"
            raise StoreLocked(
                f"{path}: store is in use by {who}; only one process may open it — talk to that process over HTTP"
            ) from None
        if "not a valid DuckDB database" in msg or "Could not read enough bytes" in msg or "xtension" in msg:
            raise StoreCorrupt(f"{path}: not a readable cqgov store (corrupt or truncated)") from None
        raise StoreCorrupt(f"{path}: cannot open store: {msg.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise StoreCorrupt(f"{path}: cannot open store: {str(exc).splitlines()[0]}") from None


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first value of the one row a query always answers (``count(*)``, ``max(…)``, ``coalesce(max(…), 0)``)."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, f"no row from {sql!r}"  # an aggregate without GROUP BY answers exactly one row
    return row[0]
