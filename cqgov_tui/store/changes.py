"""Reading the change log and the current rows for deltas and snapshots (the sync layer's queries)."""

from __future__ import annotations

from ..domain.entities import AuditEntry, Directive, Event, Receipt
from ..domain.attachments import Attachment
from ..domain.people import DutyOverride, Notification, Person, Task
from ..domain.schema import column_names
from ..errors import BadInput
from .store import Store

_EVENT_COLS = column_names(Event)
_DIRECTIVE_COLS = column_names(Directive)
_RECEIPT_COLS = column_names(Receipt)
_AUDIT_COLS = column_names(AuditEntry)
_PEOPLE_TABLES = {"person": ("people", Person, "user"), "duty_override": ("duty_overrides", DutyOverride, "id"),
                  "task": ("tasks", Task, "id"),
                  "notification": ("notifications", Notification, "id"), "attachment": ("attachments", Attachment, "id")}
# The node a directive or receipt last came from, as the change log remembers it (this node if compacted away).
_LAST_ORIGIN = "SELECT key, arg_max(origin, seq) AS origin FROM changes WHERE entity = ? GROUP BY key"


def change_rows(store: Store, after: int, head: int, limit: int) -> list[tuple]:
    """(seq, changed_at, entity, key, op, data JSON, origin, scope) for after < seq ≤ head, in order."""
    with store.lock:
        return store.conn.execute(
            "SELECT seq, changed_at, entity, key, op, data, origin, scope FROM changes "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            [after, head, limit],
        ).fetchall()


def delete_changes_through(store: Store, cut: int) -> int:
    """Compaction: drop change-log rows up to ``cut``; returns how many went."""
    with store.tx():
        dropped = store.conn.execute("SELECT count(*) FROM changes WHERE seq <= ?", [cut]).fetchall()[0][0]
        store.conn.execute("DELETE FROM changes WHERE seq <= ?", [cut])
    return dropped


def snapshot_rows(store: Store, entity: str, after: str, chunk: int) -> list[tuple[str, str, str, dict]]:
    """Current rows of one entity after key ``after``: (key, scope, origin node, row dict), in key order."""
    conn = store.conn
    if entity == "event":
        rows = conn.execute(
            f"SELECT {', '.join(_EVENT_COLS)} FROM events WHERE id > ? ORDER BY id LIMIT ?", [after, chunk]
        ).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_EVENT_COLS, r))
            out.append((d["id"], d["grid_code"] or d["street_code"] or d["district_code"], d["origin_node"], d))
        return out
    if entity == "directive":
        rows = conn.execute(
            f"SELECT coalesce(o.origin, ?), {', '.join('d.' + c for c in _DIRECTIVE_COLS)} FROM directives d "
            f"LEFT JOIN ({_LAST_ORIGIN}) o ON o.key = d.id WHERE d.id > ? ORDER BY d.id LIMIT ?",
            [store.node, "directive", after, chunk],
        ).fetchall()
        return [(d["id"], ",".join(d["targets"]), r[0], d) for r, d in ((r, dict(zip(_DIRECTIVE_COLS, r[1:]))) for r in rows)]
    if entity == "receipt":
        rows = conn.execute(
            f"SELECT coalesce(o.origin, ?), {', '.join('r.' + c for c in _RECEIPT_COLS)} FROM receipts r "
            f"LEFT JOIN ({_LAST_ORIGIN}) o ON o.key = r.directive_id || '/' || r.jurisdiction_code "
            "WHERE r.directive_id || '/' || r.jurisdiction_code > ? "
            "ORDER BY r.directive_id || '/' || r.jurisdiction_code LIMIT ?",
            [store.node, "receipt", after, chunk],
        ).fetchall()
        return [(f"{d['directive_id']}/{d['jurisdiction_code']}", d["jurisdiction_code"], r[0], d)
                for r, d in ((r, dict(zip(_RECEIPT_COLS, r[1:]))) for r in rows)]
    if entity in _PEOPLE_TABLES:
        table, cls, key = _PEOPLE_TABLES[entity]
        names = column_names(cls)
        rows = conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?",
                            [after, chunk]).fetchall()
        out = []
        for r in rows:
            d = dict(zip(names, r))
            scope = (d["jurisdiction"] if entity in ("person", "duty_override") else d["scope"] if entity in ("notification", "attachment")
                     else d["grid_code"] or d["street_code"] or d["district_code"])
            out.append((d[key], scope, d.get("origin_node") or store.node, d))
        return out
    if entity == "audit":
        # Own chain and entries received from other nodes, keyed node/seq (zero-padded so text order is seq order).
        cols = ", ".join(f"a.{c}" for c in _AUDIT_COLS)
        rows = conn.execute(
            f"""SELECT k, sc, {', '.join(_AUDIT_COLS)} FROM (
                  SELECT a.node || '/' || lpad(CAST(a.seq AS VARCHAR), 19, '0') AS k,
                         coalesce(e.grid_code, e.street_code, e.district_code, ?) AS sc, {cols}
                  FROM (SELECT * FROM audit_log UNION ALL SELECT * FROM audit_remote) a
                  LEFT JOIN events e ON e.id = a.event_id)
                WHERE k > ? ORDER BY k LIMIT ?""",
            [store.code, after, chunk],
        ).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_AUDIT_COLS, r[2:]))
            out.append((r[0], r[1], d["node"], d))
        return out
    raise BadInput(f"unknown snapshot entity {entity!r}")
