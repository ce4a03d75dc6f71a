"""Typed access to one tier's DuckDB store: ``Store`` is the core (``base``) with one module per entity.

No module outside ``store/`` writes SQL or reaches into the connection. Writes
happen inside ``Store.tx()`` as a unit of work (``unit``); hot reads come from
the unit and the open-event index (``open_events``).
"""

from __future__ import annotations

import duckdb

from ..clock import Clock, SystemClock
from ..domain.entities import Tier
from ..errors import BadInput, StoreCorrupt, StoreError
from ..ids import uuid7
from ..ownership import Node
from .attachments import AttachmentRows
from .audit_log import AuditRows
from .base import StoreCore
from .commands import CommandRows
from .connection import closed, connect
from .directives import DirectiveRows
from .events import EventRows
from .figures import EventFigures
from .indicators import IndicatorRows
from .migrations import LATEST, applied, migrate
from .people import PeopleRows
from .sensors import SensorQueries
from .unit import FlushedPastMark, Mark

__all__ = ["Store", "open_store", "init_store", "FlushedPastMark", "Mark"]


class Store(AuditRows, EventRows, DirectiveRows, CommandRows, IndicatorRows, EventFigures, SensorQueries, PeopleRows,
            AttachmentRows, StoreCore):
    """One DuckDB file owned by this process.

    Writes go through ``tx()``: they are staged in a ``WriteBatch`` and written
    with one statement per table at commit (``unit.py``). Hot reads (an event
    by id or number, open events near a place, overdue ones) come from the
    batch and the in-memory ``OpenEvents`` index, so a command's cost does not
    grow with the archive. Any other read goes through ``conn``, which first
    flushes what the running transaction staged, so SQL always sees it.
    """

    def count_rows(self, table_name: str) -> int:
        if table_name not in ("events", "directives", "receipts", "audit_log", "changes", "event_queue",
                              "sensor_readings", "applied_commands", "people", "tasks", "notifications",
                              "attachments"):
            raise BadInput(f"unknown table {table_name!r}")
        with self.lock:
            return int(self.conn.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0][0])


def init_store(path: str, tier: str, code: str, clock: Clock | None = None, node: str | None = None) -> Store:
    """Create a new store (fails if the file exists) with a fresh epoch."""
    import os

    clock = clock or SystemClock()
    if path != ":memory:" and os.path.exists(path):
        raise BadInput(f"{path}: already exists; refusing to overwrite a store")
    try:
        tier_value = Tier(tier).value
    except ValueError:
        raise BadInput(f"unknown tier {tier!r} (expected city, district or street)") from None
    conn = connect(path, create=True)
    try:
        migrate(conn, clock.now())
        conn.execute("BEGIN TRANSACTION")
        for key, value in (
            ("epoch", uuid7()),
            ("tier", tier_value),
            ("code", code),
            ("node", node or Node(Tier(tier_value), code).name),
            ("created_at", repr(clock.now())),
        ):
            conn.execute("INSERT INTO store_meta VALUES (?, ?)", [key, value])
        conn.execute("COMMIT")
    except BaseException:
        _close(conn, path)
        if path != ":memory:":
            for p in (path, path + ".wal", path + ".walmark"):
                if os.path.exists(p):
                    os.remove(p)
        raise
    return Store(path, conn, clock)


def open_store(path: str, clock: Clock | None = None, read_only: bool = False) -> Store:
    """Open an existing store, applying pending migrations.

    ``read_only`` is for pure reads: DuckDB then replays the write-ahead log in memory and leaves the
    files as they were. A store that still needs a migration is opened for writing instead (once)."""
    clock = clock or SystemClock()
    conn = connect(path, create=False, read_only=read_only)
    try:
        has_meta = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'store_meta'"
        ).fetchall()[0][0]
        if not has_meta:
            raise StoreCorrupt(f"{path}: a DuckDB file but not a cqgov store (no store_meta)")
        version = applied(conn)
        if version > LATEST:
            raise StoreError(f"{path}: schema version {version} is newer than this cqgov ({LATEST}); upgrade cqgov")
        if version == LATEST or not read_only:
            if version < LATEST:
                migrate(conn, clock.now())
            store = Store(path, conn, clock, read_only=read_only)
            store.conn.execute("SELECT count(*), max(seq) FROM changes").fetchone()  # touches data blocks early
            return store
    except duckdb.Error as exc:
        _close(conn, path)
        raise StoreCorrupt(f"{path}: not a readable cqgov store ({str(exc).splitlines()[0]})") from None
    except BaseException:
        _close(conn, path)
        raise
    _close(conn, path)  # read-only, but a migration is due: once for writing
    return open_store(path, clock)


def _close(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    conn.close()
    closed(path)
