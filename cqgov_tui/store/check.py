"""``cqgov store check``: read everything a store holds and stop at the first fault.

In order: every table read in full (each value of each row, so DuckDB verifies
the checksum of every block: a damaged block fails here even when the queue,
the audit log and the metadata a server reads at start are intact), the
open-event queue against the open events, the change log gapless from its
compaction floor to its head, and the audit hash chain.

It reads on a connection of its own (``conn.cursor()``), so a server can check
its store while it keeps serving: every step is one statement, consistent in
itself.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from ..domain.entities import AuditEntry
from ..domain.schema import column_names
from . import audit as audit_chain
from .rows import TERMINAL_VALUES
from .store import Store

FLOOR_KEY = "log_floor"  # the change log's compaction floor (sync.changelog keeps it)


@dataclass
class CheckReport:
    ok: bool
    fault: str | None = None
    tables: int = 0
    rows: int = 0
    open_events: int = 0
    change_log: str = ""  # "floor+1..head"
    audit_entries: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Fault(Exception):
    pass


# store_meta: "seq hash" of the last audit entry a check verified. A server's start-up check walks the chain
# only after it, so its cost follows what was written since, not the store's whole history (5M entries for a
# district's 1M events); ``cqgov store check`` walks all of it.
AUDIT_MARK_KEY = "audit_checked"


def check_store(store: Store, *, audit_from_mark: bool = False) -> CheckReport:
    """Check ``store``; never raises for what it finds (the report names the first fault).

    ``audit_from_mark``: verify the audit chain from the entry the last check recorded (which must still be
    there, unchanged) instead of from its start; a passing check records its last entry either way."""
    started = time.monotonic()
    report = CheckReport(ok=True)
    try:
        conn = store._conn.cursor()
    except duckdb.Error as exc:
        return _failed(report, f"cannot read the store: {_first_line(exc)}", started)
    try:
        _tables(conn, report)
        _queue(conn, report)
        _change_log(conn, store, report)
        mark = _audit(conn, report, _mark(store) if audit_from_mark else None)
    except _Fault as fault:
        return _failed(report, str(fault), started)
    except duckdb.Error as exc:
        return _failed(report, f"read failed: {_first_line(exc)}", started)
    finally:
        conn.close()
    if mark is not None:
        try:
            store.set_meta(AUDIT_MARK_KEY, f"{mark[0]} {mark[1]}")
        except duckdb.Error:  # a read-only store (a backup copy, a replica opened to read): nothing recorded
            pass
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _mark(store: Store) -> tuple[int, str] | None:
    raw = store.meta(AUDIT_MARK_KEY)
    try:
        seq, digest = (raw or "").split()
        return int(seq), digest
    except ValueError:
        return None


def _failed(report: CheckReport, fault: str, started: float) -> CheckReport:
    report.ok = False
    report.fault = fault
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tables(conn: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    names = [r[0] for r in conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "ORDER BY table_name").fetchall()]
    for name in names:
        try:
            # hash() of the whole row reads every column of every row group, and so every block.
            n = conn.execute(f'SELECT count(*), sum(hash(t)) FROM "{name}" t').fetchall()[0][0]
        except duckdb.Error as exc:
            raise _Fault(f"table {name} is unreadable: {_first_line(exc)}") from None
        report.counts[name] = int(n)
        report.rows += int(n)
    report.tables = len(names)


def _queue(conn: duckdb.DuckDBPyConnection, report: CheckReport) -> None:
    terminal = list(TERMINAL_VALUES)
    row = conn.execute(
        "SELECT (SELECT count(*) FROM event_queue), "
        "(SELECT min(q.id) FROM event_queue q LEFT JOIN events e USING (id) "
        " WHERE e.id IS NULL OR list_contains(?, e.status) OR e.version <> q.version OR e.status <> q.status), "
        "(SELECT min(e.id) FROM events e LEFT JOIN event_queue q USING (id) "
        " WHERE q.id IS NULL AND NOT list_contains(?, e.status))", [terminal, terminal]).fetchall()[0]
    report.open_events = int(row[0])
    if row[1] is not None:
        raise _Fault(f"event_queue holds {row[1]}, which is not that open event in events")
    if row[2] is not None:
        raise _Fault(f"open event {row[2]} is missing from event_queue")


def _change_log(conn: duckdb.DuckDBPyConnection, store: Store, report: CheckReport) -> None:
    floor_row = conn.execute("SELECT value FROM store_meta WHERE key = ?", [FLOOR_KEY]).fetchall()
    floor = int(floor_row[0][0]) if floor_row else 0
    n, low, high = conn.execute("SELECT count(*), min(seq), max(seq) FROM changes").fetchall()[0]
    if not n:
        report.change_log = "empty"
        return
    if low != floor + 1:
        raise _Fault(f"change log starts at seq {low}, not {floor + 1} (after its compaction floor {floor})")
    if high - low + 1 != n:
        gap = conn.execute("SELECT prev + 1 FROM (SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev FROM changes) "
                           "WHERE seq <> prev + 1 ORDER BY seq LIMIT 1").fetchall()
        where = f" at seq {gap[0][0]}" if gap else ""
        raise _Fault(f"change log has a gap{where}: {n} rows for seq {low}..{high}")
    report.change_log = f"{low}..{high}"


def _audit(conn: duckdb.DuckDBPyConnection, report: CheckReport,
           after: tuple[int, str] | None) -> tuple[int, str] | None:
    """Verify the chain (after the entry ``after`` names, which must still hold its hash); the last entry."""
    cols = column_names(AuditEntry)
    if after is not None:
        held = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", [after[0]]).fetchall()
        if not held or held[0][0] != after[1]:
            raise _Fault(f"audit chain broken at seq {after[0]}: the entry a previous check verified has changed")
    start = after or (0, audit_chain.GENESIS)
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM audit_log WHERE seq > ? ORDER BY seq", [start[0]]).fetchall()
    verdict = audit_chain.verify([AuditEntry(**dict(zip(cols, r))) for r in rows], after=start)
    report.audit_entries = verdict.entries
    if not verdict.ok:
        raise _Fault(f"audit chain broken at seq {verdict.first_bad_seq}: {verdict.reason}")
    if not verdict.entries:
        return after  # nothing new (or an empty log): the mark stays as it was
    return start[0] + verdict.entries, verdict.head
