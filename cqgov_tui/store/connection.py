"""Open a DuckDB file, turning DuckDB's errors into one-line user messages."""

from __future__ import annotations

import os
import re
from typing import Any

import duckdb

from ..errors import StoreCorrupt, StoreLocked, StoreMissing

_PID = re.compile(r"PID (\d+)")


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
    try:
        conn = duckdb.connect(path, read_only=read_only)
        # DuckDB draws a progress bar on stdout for long statements, which would
        # corrupt JSON output and scribble over the console.
        conn.execute("SET enable_progress_bar = false")
        return conn
    except duckdb.IOException as exc:
        msg = str(exc)
        if "Could not set lock" in msg:
            m = _PID.search(msg)
            who = f"process {m.group(1)}" if m else "another process"
            raise StoreLocked(
                f"{path}: store is in use by {who}; only one process may open it — talk to that process over HTTP"
            ) from None
        if "not a valid DuckDB database" in msg or "Could not read enough bytes" in msg:
            raise StoreCorrupt(f"{path}: not a readable cqgov store (corrupt or truncated)") from None
        raise StoreCorrupt(f"{path}: cannot open store: {msg.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise StoreCorrupt(f"{path}: cannot open store: {str(exc).splitlines()[0]}") from None


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first value of the one row a query always answers (``count(*)``, ``max(…)``, ``coalesce(max(…), 0)``)."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, f"no row from {sql!r}"  # an aggregate without GROUP BY answers exactly one row
    return row[0]
