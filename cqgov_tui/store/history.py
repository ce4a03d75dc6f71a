"""Reads for the history export (``standards.export``): what changed after a change-log cursor, and
readings and indicator values newer than a per-key cursor, as rows or Arrow tables."""

from __future__ import annotations

import json
from typing import Any

from ..domain.entities import AuditEntry, Directive, Event, Receipt
from .store import Store

PAGE = 50_000


def log_floor(store: Store) -> int:
    """The oldest seq still in the change log (head + 1 when it is empty): below it, compaction removed rows."""
    with store.lock:
        row = store.conn.execute("SELECT min(seq) FROM changes").fetchall()[0][0]
    return int(row) if row is not None else store.head() + 1


def changed(store: Store, after: int, head: int) -> dict[str, list[tuple[int, float, str, dict[str, Any], str]]]:
    """Per entity, the change-log rows after < seq ≤ head: (seq, changed_at, key, data, scope)."""
    from .changes import change_rows

    out: dict[str, list[tuple[int, float, str, dict[str, Any], str]]] = {}
    cursor = after
    while cursor < head:
        rows = change_rows(store, cursor, head, PAGE)
        if not rows:
            break
        for seq, at, entity, key, _op, data, _origin, scope in rows:
            out.setdefault(entity, []).append((int(seq), float(at), key, json.loads(data), scope))
        cursor = int(rows[-1][0])
    return out


def _in(column: str) -> str:
    return f"{column} IN (SELECT unnest(?::VARCHAR[]))"


def events_by_id(store: Store, ids: list[str]) -> list[Event]:
    rows: list[Event] = store._select(Event, f"FROM events WHERE {_in('id')} ORDER BY id", [ids]) if ids else []
    return rows


def directives_by_id(store: Store, ids: list[str]) -> list[Directive]:
    rows: list[Directive] = (store._select(Directive, f"FROM directives WHERE {_in('id')} ORDER BY id", [ids])
                             if ids else [])
    return rows


def receipts_by_key(store: Store, keys: list[str]) -> list[Receipt]:
    """Receipts by change-log key ``directive_id/jurisdiction_code``."""
    if not keys:
        return []
    key = "(directive_id || '/' || jurisdiction_code)"
    rows: list[Receipt] = store._select(
        Receipt, f"FROM receipts WHERE {_in(key)} ORDER BY directive_id, jurisdiction_code", [keys])
    return rows


def all_current(store: Store) -> dict[str, list[Any]]:
    """Every event, directive, receipt and audit entry held (for a cursor the change log no longer reaches)."""
    with store.lock:
        return {
            "event": store._select(Event, "FROM events ORDER BY id", []),
            "directive": store._select(Directive, "FROM directives ORDER BY id", []),
            "receipt": store._select(Receipt, "FROM receipts ORDER BY directive_id, jurisdiction_code", []),
            "audit": store._select(AuditEntry, "FROM (SELECT * FROM audit_log UNION ALL SELECT * FROM audit_remote) "
                                               "ORDER BY node, seq", []),
        }


def newer_than(store: Store, table: str, cursor: Any) -> Any:
    """Rows of ``sensor_readings`` or ``indicator_history`` newer than the per-key cursor (an Arrow table
    of key columns and ``last_at``); keys absent from the cursor give all their rows."""
    keys = {"sensor_readings": ("sensor_code",), "indicator_history": ("indicator_code", "scope_code")}[table]
    on = " AND ".join(f"c.{k} = r.{k}" for k in keys)
    with store.lock:
        store._register("export_cursor", cursor)
        try:
            return store.conn.sql(
                f"SELECT r.* FROM {table} r LEFT JOIN export_cursor c ON {on} "
                "WHERE c.last_at IS NULL OR r.measured_at > c.last_at ORDER BY r.measured_at").to_arrow_table()
        finally:
            store.conn.unregister("export_cursor")
