"""A consistent copy of a store, made while it is open (by its server, or by ``cqgov store backup``).

Copying the file is not a backup: a running server keeps its recent commits —
at first everything, schema included — in the write-ahead log beside it. Here
DuckDB copies the database itself (``COPY FROM DATABASE``) on a connection of
its own, as of one snapshot, into a new file that is complete on its own (no
log); the server keeps serving and writing meanwhile. The copy is written
beside its destination and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import duckdb

from ..errors import BadInput, StoreError
from ..ids import uuid7
from .store import Store


@dataclass
class BackupResult:
    path: str
    bytes: int
    head: int
    epoch: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def backup_to(store: Store, dest: str, *, checkpoint: bool = True) -> BackupResult:
    """Write a consistent copy of ``store`` to the new file ``dest`` (refused if it exists)."""
    dest = os.path.abspath(dest)
    if os.path.exists(dest):
        raise BadInput(f"{dest}: already exists; a backup never overwrites a file")
    if not os.path.isdir(os.path.dirname(dest)):
        raise BadInput(f"{dest}: directory {os.path.dirname(dest)} does not exist")
    if os.path.abspath(store.path) == dest:
        raise BadInput(f"{dest}: is the store itself")
    started = time.monotonic()
    if checkpoint and not store.read_only:
        with store.lock, contextlib.suppress(duckdb.Error):
            # Not needed for the copy: it folds the log into the main file while we are at it.
            store._conn.execute("CHECKPOINT")
    part = f"{dest}.part-{uuid7()[-12:]}"
    alias = f"cqgov_backup_{uuid7()[-12:].replace('-', '')}"
    conn = store._conn.cursor()
    try:
        source = conn.execute("SELECT current_database()").fetchall()[0][0]
        conn.execute(f"ATTACH {_sql_string(part)} AS {alias} (READ_WRITE)")  # even beside a read-only store
        try:
            conn.execute("BEGIN TRANSACTION")  # the head reported is the copy's: one snapshot for both
            head = int(conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchall()[0][0])
            conn.execute(f'COPY FROM DATABASE "{source}" TO {alias}')
            conn.execute("COMMIT")
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute(f"DETACH {alias}")  # closing the copy checkpoints it: one self-contained file
        os.replace(part, dest)
    except duckdb.Error as exc:
        raise StoreError(f"backup of {store.path} failed: {str(exc).strip().splitlines()[0]}") from None
    finally:
        conn.close()
        for leftover in (part, part + ".wal"):
            with contextlib.suppress(OSError):
                os.remove(leftover)
    return BackupResult(dest, os.path.getsize(dest), head, store.epoch, round(time.monotonic() - started, 3))
