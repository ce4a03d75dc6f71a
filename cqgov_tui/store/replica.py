"""Replication writes: apply received changes and snapshot pages to a store, inside ``store.tx()``.

Rows are written through the change log with their remote origin preserved,
so a district that is a client of the city re-serves what it received to its
streets (and ``changelog.read_changes`` never sends a row back to its origin).

Two guards keep replication from undoing authority:
* a row this store owns (an event whose ``origin_node`` is this node, a
  directive this tier issued) is never overwritten by a copy from elsewhere;
* a row older than the one held (lower ``version``) is skipped, which also
  makes replaying changes over a newer snapshot row harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .. import ownership
from ..domain.entities import AuditEntry, Directive, Event, Receipt, Tier
from ..domain.attachments import Attachment
from ..domain.people import DutyOverride, Notification, Person, Task
from ..domain.schema import arrow_schema, column_names
from ..scope import covers
from .store import Store

if TYPE_CHECKING:
    from ..sync.wire import Change

Row = dict[str, Any]  # one stored row, column → value

_EVENT_COLS = column_names(Event)
_DIRECTIVE_COLS = column_names(Directive)
_RECEIPT_COLS = column_names(Receipt)
_AUDIT_COLS = column_names(AuditEntry)
_EVENT_ARROW = arrow_schema(Event)
_DIRECTIVE_ARROW = arrow_schema(Directive)
_RECEIPT_ARROW = arrow_schema(Receipt)
_AUDIT_ARROW = arrow_schema(AuditEntry)
_FULL = frozenset({"create", "upsert", "append"})


@dataclass
class Applied:
    applied: int = 0
    skipped_owned: int = 0
    skipped_stale: int = 0
    skipped_missing: int = 0  # an update for a row this store does not hold
    by_entity: dict[str, int] = field(default_factory=dict)


def apply_changes(store: Store, changes: Iterable[Change]) -> Applied:
    """Apply decoded changes (``wire.Change``) in order. Must run inside ``store.tx()``."""
    store._require_tx()
    result = Applied()
    groups: dict[str, list[Change]] = {}
    for ch in changes:
        groups.setdefault(ch.entity, []).append(ch)
    logged: list[Change] = []
    if "event" in groups:
        logged += _apply_events(store, groups["event"], result)
    tier_node = not store.is_replica
    if "directive" in groups:
        logged += _apply_keyed(store, groups["directive"], result, "directives", _DIRECTIVE_COLS, _DIRECTIVE_ARROW,
                               ("id",), lambda row: row["origin_code"] == store.code and row["origin_tier"] == store.tier.value,
                               lambda row: ",".join(row["targets"]),
                               refuse=_directive_from_above(store) if tier_node else None)
    if "receipt" in groups:
        logged += _apply_keyed(store, groups["receipt"], result, "receipts", _RECEIPT_COLS, _RECEIPT_ARROW,
                               ("directive_id", "jurisdiction_code"), lambda row: False,
                               lambda row: row["jurisdiction_code"],
                               refuse=_receipt_from_above(store) if tier_node else None)
    # Roster rows, tasks, notifications and attachment rows: whole rows by version; a row this node made is its own.
    for entity, table, cls, key, scope_of in (
            ("person", "people", Person, "user", lambda row: row["jurisdiction"]),
            ("duty_override", "duty_overrides", DutyOverride, "id", lambda row: row["jurisdiction"]),
            ("task", "tasks", Task, "id", lambda row: row["grid_code"] or row["street_code"] or row["district_code"]),
            ("notification", "notifications", Notification, "id", lambda row: row["scope"]),
            ("attachment", "attachments", Attachment, "id", lambda row: row["scope"])):
        if entity in groups:
            logged += _apply_keyed(store, groups[entity], result, table, column_names(cls), arrow_schema(cls), (key,),
                                   lambda row: row.get("origin_node") == store.node, scope_of)
    if "audit" in groups:
        logged += _apply_audit(store, groups["audit"], result)
    logged.sort(key=lambda ch: ch.seq)
    _log(store, logged)
    for ch in logged:
        result.by_entity[ch.entity] = result.by_entity.get(ch.entity, 0) + 1
    result.applied = len(logged)
    return result


def _current_rows(store: Store, table: str, key_expr: str, cols: list[str],
                  changes: list[Change]) -> dict[str, Row | None]:
    """The stored row (a dict) of every key the changes touch, None where there is none yet: one query."""
    keys = list(dict.fromkeys(ch.key for ch in changes))
    rows = store.conn.execute(
        f"SELECT {key_expr}, {', '.join(cols)} FROM {table} WHERE list_contains(?, {key_expr})", [keys]
    ).fetchall()
    current: dict[str, Row | None] = {k: None for k in keys}
    for r in rows:
        current[r[0]] = dict(zip(cols, r[1:]))
    return current


def _directive_from_above(store: Store) -> Callable[[Row, Row | None], bool]:
    def refuse(row: Row, have: Row | None) -> bool:
        held = f"{have['origin_tier']}-{have['origin_code']}" if have is not None else None
        return ownership.directive_refusal(store.node, row["origin_tier"], row["origin_code"], list(row["targets"]),
                                           held) is not None
    return refuse


def _receipt_from_above(store: Store) -> Callable[[Row, Row | None], bool]:
    def refuse(row: Row, have: Row | None) -> bool:
        mine = covers(store.code, row["jurisdiction_code"]) if store.tier is not Tier.CITY else True
        return have is not None and mine and ownership.receipt_goes_back(have["state"], row["state"])
    return refuse


def _apply_events(store: Store, changes: list[Change], result: Applied) -> list[Change]:
    current = _current_rows(store, "events", "id", _EVENT_COLS, changes)
    tier_node = not store.is_replica
    existed = {k for k, row in current.items() if row is not None}
    touched: set[str] = set()
    applied: list[Change] = []
    row: Row
    for ch in changes:
        have = current[ch.key]
        if have is not None and have["origin_node"] == store.node:
            result.skipped_owned += 1
            continue
        if ch.op in _FULL:
            if have is not None and ch.data["version"] < have["version"]:
                result.skipped_stale += 1
                continue
            row = {c: ch.data.get(c) for c in _EVENT_COLS}
        else:
            if have is None:
                result.skipped_missing += 1
                continue
            if "version" in ch.data and ch.data["version"] < have["version"]:
                result.skipped_stale += 1
                continue
            row = {**have, **{k: v for k, v in ch.data.items() if k in have}}
        if tier_node and ownership.copy_refusal(
                store.node, None, row["origin_node"], row["grid_code"] or row["street_code"] or row["district_code"],
                have["origin_node"] if have is not None else None, from_above=True) is not None:
            result.skipped_owned += 1  # from above, only the upper tiers' own rows (see cqgov_tui.ownership)
            continue
        current[ch.key] = row
        if not ch.scope:  # scopes are not sent on the wire: derive from the row
            ch.scope = row["grid_code"] or row["street_code"] or row["district_code"]
        touched.add(ch.key)
        applied.append(ch)
    # Every touched key's row was set above (never None).
    store.stage_events([(Event(**new), k in existed) for k in touched if (new := current[k]) is not None])
    return applied


def _apply_keyed(store: Store, changes: list[Change], result: Applied, table: str, cols: list[str], schema: pa.Schema,
                 key_cols: tuple[str, ...], owned: Callable[[Row], bool],
                 scope_of: Callable[[Row], str], *,
                 refuse: Callable[[Row, Row | None], bool] | None = None) -> list[Change]:
    """Full-row upserts (directives, receipts) with the owner and version guards."""
    key_expr = " || '/' || ".join(key_cols)
    current = _current_rows(store, table, key_expr, cols, changes)
    touched: set[str] = set()
    applied: list[Change] = []
    for ch in changes:
        have = current[ch.key]
        if have is not None and owned(have):
            result.skipped_owned += 1
            continue
        if have is not None and ch.data["version"] < have["version"]:
            result.skipped_stale += 1
            continue
        row = {c: ch.data.get(c) for c in cols}
        if refuse is not None and refuse(row, have):
            result.skipped_owned += 1
            continue
        current[ch.key] = row
        if not ch.scope:
            ch.scope = scope_of(row)
        touched.add(ch.key)
        applied.append(ch)
    if touched:
        # Every touched key's row was set above (never None); staged like the store's own writes.
        store.stage_keyed(table, [new for k in touched if (new := current[k]) is not None])
    return applied


def _apply_audit(store: Store, changes: list[Change], result: Applied) -> list[Change]:
    """Audit entries are immutable: keep each (node, seq) once; this node's own chain is never copied in."""
    fresh: list[Change] = []
    seen: set[tuple[str, int]] = set()
    applied: list[Change] = []
    for ch in changes:
        node, seq = ch.data["node"], ch.data["seq"]
        if node == store.node:
            result.skipped_owned += 1
            continue
        if (node, seq) in seen:
            continue
        seen.add((node, seq))
        fresh.append(ch)
    if not fresh:
        return applied
    have = set(store.conn.execute(
        "SELECT node, seq FROM audit_remote WHERE list_contains(?, node || '/' || CAST(seq AS VARCHAR))",
        [[f"{ch.data['node']}/{ch.data['seq']}" for ch in fresh]],
    ).fetchall())
    rows: list[Row] = []
    for ch in fresh:
        if (ch.data["node"], ch.data["seq"]) in have:
            result.skipped_stale += 1
            continue
        rows.append({c: ch.data.get(c) for c in _AUDIT_COLS})
        applied.append(ch)
    if rows:
        _insert(store, "audit_remote", rows, _AUDIT_COLS, _AUDIT_ARROW)
        unscoped = [ch for ch in applied if not ch.scope]
        if unscoped:
            ids = list({ch.data["event_id"] for ch in unscoped})
            where = dict(store.conn.execute(
                "SELECT id, coalesce(grid_code, street_code, district_code) FROM events WHERE list_contains(?, id)",
                [ids]).fetchall())
            for ch in unscoped:
                ch.scope = where.get(ch.data["event_id"]) or store.code
    return applied


def _replace(store: Store, table: str, key_col: str, keys: list[str], rows: list[Row], cols: list[str],
             schema: pa.Schema) -> None:
    store.conn.execute(f"DELETE FROM {table} WHERE list_contains(?, {key_col})", [keys])
    _insert(store, table, rows, cols, schema)


def _register(store: Store, name: str, data: pa.Table) -> None:
    # DuckDB refuses register() while an earlier execute()'s result is still open (a fetchone()
    # leaves it open); finishing a trivial query closes it.
    store.conn.execute("SELECT 1").fetchall()
    store.conn.register(name, data)


def _insert(store: Store, table: str, rows: list[Row], cols: list[str], schema: pa.Schema) -> None:
    data = pa.Table.from_pylist(rows, schema=schema)
    name = f"_replica_{table}"
    _register(store, name, data)
    try:
        store.conn.execute(f"INSERT INTO {table} SELECT {', '.join(cols)} FROM {name}")
    finally:
        store.conn.unregister(name)


def _log(store: Store, changes: list[Change]) -> None:
    """Append applied changes to this store's change log, origin and scope preserved."""
    for c in changes:
        store.log_change(c.entity, c.key, c.op, c.data, c.origin, c.scope)


# ---------------------------------------------------------------- snapshots and reverts


def clear_replicated(store: Store) -> None:
    """Before a snapshot: drop the rows this store received from the tier above, nothing else.

    A snapshot from upstream replaces upstream's rows only. Rows this store
    owns stay. A tier server (node ``<tier>-<code>``) also keeps the rows
    its lower tiers sent up through federation commands — at a district its
    streets' events and receipts, at the city the districts' and streets'
    events — because no snapshot from above brings them back: the upper tier
    never sends a row back to the node it came from. A plain replica (a
    console's, ``cqgov sync``'s) receives everything from above, so
    everything but its own rows goes.

    At a tier server:
    * events: dropped when another node of this tier or above wrote them;
    * directives: dropped when issued at this tier or above by another node;
    * receipts: kept when their jurisdiction lies in this store's subtree
      (those streets answer here; a copy from above merges in by version)
      or their directive is kept;
    * replicated audit entries: dropped when a node of this tier or above wrote them.
    """
    store._require_tx()
    if not store.is_replica:
        above = _tiers_at_or_above(store.tier)
        store.conn.execute("DELETE FROM event_queue WHERE origin_node <> ? AND list_contains(?, origin_tier)",
                           [store.node, above])
        store.conn.execute("DELETE FROM events WHERE origin_node <> ? AND list_contains(?, origin_tier)",
                           [store.node, above])
        store.conn.execute(
            "DELETE FROM directives WHERE NOT (origin_code = ? AND origin_tier = ?) AND list_contains(?, origin_tier)",
            [store.code, store.tier.value, above])
        if store.tier is not Tier.CITY:
            store.conn.execute("DELETE FROM receipts WHERE NOT starts_with(jurisdiction_code, ?) "
                               "AND directive_id NOT IN (SELECT id FROM directives)", [store.code])
        store.conn.execute("DELETE FROM audit_remote WHERE list_contains(?, split_part(node, '-', 1))", [above])
        for table in ("tasks", "notifications", "attachments"):
            store.conn.execute(f"DELETE FROM {table} WHERE origin_node <> ? "
                               "AND list_contains(?, split_part(origin_node, '-', 1))", [store.node, above])
        store.invalidate_caches()  # the open-event index held rows these deletes removed
        return
    store.conn.execute("DELETE FROM event_queue WHERE origin_node <> ?", [store.node])
    store.conn.execute("DELETE FROM events WHERE origin_node <> ?", [store.node])
    store.conn.execute(
        "DELETE FROM directives WHERE NOT (origin_code = ? AND origin_tier = ?)", [store.code, store.tier.value]
    )
    store.conn.execute("DELETE FROM receipts WHERE directive_id NOT IN (SELECT id FROM directives)")
    store.conn.execute("DELETE FROM audit_remote")
    store.conn.execute("DELETE FROM people")  # a replica holds only what its server sends
    for table in ("tasks", "notifications", "attachments"):
        store.conn.execute(f"DELETE FROM {table} WHERE origin_node <> ?", [store.node])
    store.invalidate_caches()  # the open-event index held rows these deletes removed



def _tiers_at_or_above(tier: Tier) -> list[str]:
    order = [Tier.CITY.value, Tier.DISTRICT.value, Tier.STREET.value]
    return order[: order.index(Tier(tier).value) + 1]


def event_rows(store: Store, keys: Iterable[str]) -> dict[str, Row | None]:
    """Full current rows of events (None where absent): the pre- and post-images of a local command."""
    wanted = list(keys)
    out: dict[str, Row | None] = {k: None for k in wanted}
    if not wanted:
        return out
    with store.lock:
        rows = store.conn.execute(
            f"SELECT {', '.join(_EVENT_COLS)} FROM events WHERE list_contains(?, id)", [wanted]
        ).fetchall()
    for r in rows:
        out[r[0]] = dict(zip(_EVENT_COLS, r))
    return out


def restore_events(store: Store, pre: dict[str, Row | None], post: dict[str, Row | None]) -> list[str]:
    """Undo a refused local command: put back each event's pre-image, but only where the row is
    still what the command left (a newer row from the server wins). Returns the keys restored."""
    store._require_tx()
    now_rows = event_rows(store, pre.keys())
    restored: list[str] = []
    for key, before in pre.items():
        if now_rows.get(key) != post.get(key):
            continue
        if before is None:
            store.delete_events([key])
        else:
            store.stage_events([(Event(**before), now_rows.get(key) is not None)])
            store.log_change("event", key, "upsert", before, store.node,
                             before["grid_code"] or before["street_code"] or before["district_code"])
        restored.append(key)
    return restored
