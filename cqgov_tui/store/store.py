"""Typed access to one tier's DuckDB store. No other module writes SQL for these tables.

Every write happens inside ``Store.tx()`` and appends to the change log in the
same transaction (SYNC.md), so a reader of ``changes`` never sees an effect
without its log row or a log row without its effect.
"""

from __future__ import annotations

import contextlib
import enum
import json
import threading
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

import duckdb

from ..clock import Clock, SystemClock, local
from ..domain.entities import AuditEntry, Directive, Event, Receipt, Status, Tier
from ..domain.schema import arrow_schema, column_names, to_row
from ..errors import BadInput, StoreCorrupt, StoreError
from ..ids import uuid7
from . import audit as audit_chain
from .connection import connect
from .engine_queries import EngineQueries
from .migrations import LATEST, applied, migrate
from .rows import (COLOUR_RANK, EVENT_COLUMNS, EVENT_PLACEHOLDERS, EVENT_SELECT, QUEUE_COLUMNS, QueueRow,
                   TERMINAL_VALUES, event_from_row, event_scope)
from .server_queries import ServerQueries

class Store(ServerQueries, EngineQueries):
    """One DuckDB file owned by this process."""

    def __init__(self, path: str, conn: duckdb.DuckDBPyConnection, clock: Clock | None = None):
        self.path = path
        self.conn = conn
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._depth = 0
        # This process owns the file, so the change-log head and the audit tail can be
        # remembered between writes instead of re-read for every row (see invalidate_caches).
        self._head: int | None = None
        self._audit_tail: tuple[int, str] | None = None
        # Called with the change-log head after every commit (outside the lock): long-polls wake on
        # this instead of re-reading the head on a timer. A listener must be quick and never raise.
        self.commit_listeners: list[Callable[[int], None]] = []
        meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        for needed in ("epoch", "tier", "code", "node"):
            if needed not in meta:
                raise StoreCorrupt(f"{path}: store metadata lacks {needed!r}; not a cqgov store")
        self.epoch: str = meta["epoch"]
        self.tier = Tier(meta["tier"])
        self.code: str = meta["code"]
        self.node: str = meta["node"]

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator["Store"]:
        """A (re-entrant) transaction: nested calls join the outer one."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                self.invalidate_caches()
                raise
            self._depth = 0
            self.conn.execute("COMMIT")
        self._notify_commit()

    def _notify_commit(self) -> None:
        head = self.head()
        for listener in list(self.commit_listeners):
            listener(head)

    def _register(self, name: str, table) -> None:
        """Register an Arrow table for a bulk statement. DuckDB refuses ``register`` while an earlier
        ``fetchone()`` left a result open, so a trivial statement closes that result first."""
        self.conn.execute("SELECT 1").fetchall()
        self.conn.register(name, table)

    def invalidate_caches(self) -> None:
        """Forget remembered heads; call after writing ``changes``/``audit_log`` other than through this class."""
        self._head = None
        self._audit_tail = None

    def _require_tx(self) -> None:
        if not self._depth:
            raise StoreError("internal: write outside a store transaction")

    # ------------------------------------------------------------ meta

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM store_meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self.conn.execute("INSERT OR REPLACE INTO store_meta VALUES (?, ?)", [key, value])

    def next_serial(self, kind: str, now: float) -> tuple[str, int]:
        """The next daily serial of ``kind`` (events, directives…): (local date YYYYMMDD, n from 1)."""
        day = local(now).strftime("%Y%m%d")
        with self.tx():
            key = f"{kind}:{day}"
            n = int(self.meta(key, "0")) + 1
            self.set_meta(key, str(n))
        return day, n

    def next_number(self, now: float) -> str:
        """Human event number: <code tail>-<local date>-<daily serial>."""
        day, n = self.next_serial("serial", now)
        return f"{self.code[-4:]}-{day}-{n:05d}"

    def schema_version(self) -> int:
        with self.lock:
            return applied(self.conn)

    # ------------------------------------------------------------ change log

    def log_change(self, entity: str, key: str, op: str, data: dict[str, Any], origin: str | None = None,
                   scope: str = "") -> int:
        """Append to the change log. ``scope`` is the jurisdiction code(s) the row belongs to
        (comma-separated for a directive's targets) so servers can filter deltas per caller."""
        self._require_tx()
        seq = self.head() + 1
        self.conn.execute(
            "INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [seq, self.clock.now(), entity, key, op, json.dumps(data, ensure_ascii=False), origin or self.node, scope],
        )
        self._head = seq
        return seq

    def _log_changes(self, rows: list[tuple[str, str, str, dict, str, str]]) -> None:
        """Bulk form of ``log_change``: (entity, key, op, data, origin, scope) per row, seqs consecutive."""
        import pyarrow as pa  # bulk paths only; kept off the console's start-up

        if not rows:
            return
        self._require_tx()
        start = self.head() + 1
        now = self.clock.now()
        table = pa.table({
            "seq": pa.array(range(start, start + len(rows)), pa.int64()),
            "changed_at": pa.array([now] * len(rows), pa.float64()),
            "entity": [r[0] for r in rows],
            "key": [r[1] for r in rows],
            "op": [r[2] for r in rows],
            "data": [json.dumps(r[3], ensure_ascii=False) for r in rows],
            "origin": [r[4] or self.node for r in rows],
            "scope": [r[5] for r in rows],
        })
        self._register("_bulk_changes", table)
        try:
            self.conn.execute("INSERT INTO changes SELECT * FROM _bulk_changes")
        finally:
            self.conn.unregister("_bulk_changes")
        self._head = start + len(rows) - 1

    def head(self) -> int:
        with self.lock:
            if self._head is None:
                self._head = self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
            return self._head

    def changes_after(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT seq, changed_at, entity, key, op, data, origin, scope FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                [seq, limit],
            ).fetchall()
        return [
            {"seq": r[0], "changed_at": r[1], "entity": r[2], "key": r[3], "op": r[4], "data": json.loads(r[5]), "origin": r[6],
             "scope": r[7]}
            for r in rows
        ]

    # ------------------------------------------------------------ events

    def insert_event(self, event: Event, origin: str | None = None) -> Event:
        with self.tx():
            if self.get_event(event.id) is not None:
                raise BadInput(f"event {event.id} already exists")
            row = to_row(event)
            values = [row[c] for c in EVENT_COLUMNS]
            self.conn.execute(f"INSERT INTO events VALUES ({EVENT_PLACEHOLDERS})", values)
            if Status(event.status).is_open:
                self.conn.execute(f"INSERT INTO event_queue VALUES ({EVENT_PLACEHOLDERS})", values)
            self.log_change("event", event.id, "create", row, origin, event_scope(event))
        return event

    def update_event(self, event: Event, changed: Iterable[str], origin: str | None = None) -> Event:
        """Persist ``event`` whose fields ``changed`` differ from the stored row; bumps version."""
        changed = [c for c in changed if c not in ("version", "id")]
        with self.tx():
            cols = changed + ["version"]
            sets = ", ".join(f"{c} = ?" for c in changed)
            found = self.conn.execute(
                f"UPDATE events SET {sets + ', ' if sets else ''}version = version + 1 WHERE id = ? RETURNING version",
                [getattr(event, c) if not isinstance(getattr(event, c), enum.Enum) else getattr(event, c).value
                 for c in changed] + [event.id],
            ).fetchall()  # drain RETURNING fully: DuckDB refuses new work on a half-read result
            if not found:
                raise BadInput(f"no event {event.id}")
            event = replace(event, version=found[0][0])
            row = to_row(event)
            self._sync_queue(event, row, cols)
            self.log_change("event", event.id, "update", {"id": event.id, **{c: row[c] for c in cols}}, origin,
                            event_scope(event))
        return event

    def _sync_queue(self, event: Event, row: dict, cols: list[str]) -> None:
        """Keep ``event_queue`` holding exactly the open events, touching only the changed columns."""
        if not Status(event.status).is_open:
            self.conn.execute("DELETE FROM event_queue WHERE id = ?", [event.id])
            return
        sets = ", ".join(f"{c} = ?" for c in cols)
        hit = self.conn.execute(
            f"UPDATE event_queue SET {sets} WHERE id = ? RETURNING id", [row[c] for c in cols] + [event.id]
        ).fetchall()
        if not hit:  # reopened (a replica catching up), so it joins the queue whole
            full = self.conn.execute(f"SELECT {EVENT_SELECT} FROM events WHERE id = ?", [event.id]).fetchone()
            self.conn.execute(f"INSERT INTO event_queue VALUES ({EVENT_PLACEHOLDERS})", list(full))

    def update_events(self, updates: list[tuple[Event, list[str]]], origin: str | None = None) -> list[Event]:
        """Batch ``update_event`` for sweeps: one UPDATE per distinct set of changed columns.

        The caller passes events as last read inside the same transaction (their
        ``version`` is trusted), which the store's single writer guarantees.
        """
        import pyarrow as pa  # bulk paths only; kept off the console's start-up

        out: list[Event] = []
        with self.tx():
            groups: dict[tuple[str, ...], list[Event]] = {}
            for event, changed in updates:
                cols = tuple(c for c in changed if c not in ("version", "id"))
                groups.setdefault(cols, []).append(replace(event, version=event.version + 1))
            log = []
            for cols, events in groups.items():
                allcols = list(cols) + ["version"]
                rows = [to_row(e) for e in events]
                table = pa.Table.from_pylist(
                    [{"id": r["id"], **{c: r[c] for c in allcols}} for r in rows],
                    schema=pa.schema([arrow_schema(Event).field("id")] + [arrow_schema(Event).field(c) for c in allcols]),
                )
                self._register("_upd", table)
                try:
                    sets = ", ".join(f"{c} = u.{c}" for c in allcols)
                    self.conn.execute(f"UPDATE events SET {sets} FROM _upd u WHERE events.id = u.id")
                    closed_ids = [e.id for e in events if not Status(e.status).is_open]
                    self.conn.execute(f"UPDATE event_queue SET {sets} FROM _upd u WHERE event_queue.id = u.id")
                    if closed_ids:
                        self.conn.execute("DELETE FROM event_queue WHERE list_contains(?, id)", [closed_ids])
                finally:
                    self.conn.unregister("_upd")
                for e, r in zip(events, rows):
                    log.append(("event", e.id, "update", {"id": e.id, **{c: r[c] for c in allcols}}, origin,
                                event_scope(e)))
                out.extend(events)
            self._log_changes(log)
        return out

    def get_event(self, event_id: str) -> Event | None:
        with self.lock:
            cur = self.conn.execute(f"SELECT {EVENT_SELECT} FROM events WHERE id = ?", [event_id])
            row = cur.fetchone()
        return event_from_row(row) if row else None

    def resolve_event(self, ref: str) -> Event:
        """Find an event by id, id prefix (≥ 8 chars) or human number."""
        ref = (ref or "").strip()
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM events WHERE id = ? OR number = ? OR (length(?) >= 8 AND starts_with(id, ?)) LIMIT 2",
                [ref, ref, ref, ref],
            ).fetchall()
        if not rows:
            raise BadInput(f"no event {ref!r}")
        if len(rows) > 1:
            raise BadInput(f"event reference {ref!r} is ambiguous; give more of the id")
        return event_from_row(rows[0])

    def queue(self, *, include_closed: bool = False, limit: int = 200, offset: int = 0, **filters) -> list[Event]:
        """The console's main query with full rows: open events by colour, then by deadline."""
        sql, params = self._queue_sql(EVENT_SELECT, include_closed, filters)
        with self.lock:
            rows = self.conn.execute(sql, params + [limit, offset]).fetchall()
        return [event_from_row(r) for r in rows]

    def queue_rows(self, *, include_closed: bool = False, limit: int = 200, offset: int = 0, **filters) -> list[QueueRow]:
        """Same order and filters as ``queue`` but only the list columns (the console's hot path)."""
        sql, params = self._queue_sql(", ".join(QUEUE_COLUMNS), include_closed, filters)
        with self.lock:
            rows = self.conn.execute(sql, params + [limit, offset]).fetchall()
        return [QueueRow(*r) for r in rows]

    def _queue_sql(self, select: str, include_closed: bool, filters: dict) -> tuple[str, list]:
        district = filters.pop("district", None)
        street = filters.pop("street", None)
        statuses = filters.pop("statuses", None)
        colours = filters.pop("colours", None)
        categories = filters.pop("categories", None)
        text = filters.pop("text", None)
        if filters:
            raise BadInput(f"unknown queue filter {next(iter(filters))!r}")
        where, params = [], []
        if district:
            where.append("district_code = ?")
            params.append(district)
        if street:
            where.append("street_code = ?")
            params.append(street)
        for name, values in (("status", statuses), ("colour", colours), ("category_code", categories)):
            values = list(values or [])
            if values:
                where.append(f"{name} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        if text:
            where.append("(contains(title, ?) OR contains(text, ?) OR contains(address, ?) OR number = ?)")
            params.extend([text, text, text, text])
        table = "events" if include_closed else "event_queue"
        sql = (
            f"SELECT {select} FROM {table}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {COLOUR_RANK}, due_at NULLS LAST, reported_at LIMIT ? OFFSET ?"
        )
        return sql, params

    def open_events(self) -> list[Event]:
        with self.lock:
            rows = self.conn.execute(f"SELECT {EVENT_SELECT} FROM event_queue").fetchall()
        return [event_from_row(r) for r in rows]

    def colour_counts(self, level: str = "district", include_closed: bool = False) -> dict[str, dict[str, int]]:
        """Open events per jurisdiction and colour (the map's fill and the hot list)."""
        col = {"district": "district_code", "street": "street_code", "grid": "grid_code"}.get(level)
        if col is None:
            raise BadInput(f"unknown level {level!r}")
        table = "events" if include_closed else "event_queue"
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {col}, colour, count(*) FROM {table} WHERE {col} IS NOT NULL GROUP BY ALL"
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for code, colour, n in rows:
            out.setdefault(code, {})[colour] = n
        return out

    def overdue_events(self, now: float) -> list[Event]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM event_queue WHERE due_at < ? ORDER BY due_at", [now]
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def nearby_open(self, category: str, since: float, lon: float, lat: float, dlon: float, dlat: float) -> list[Event]:
        """Open events of a category reported since ``since`` inside a lon/lat box (dedup candidates)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM event_queue WHERE category_code = ? AND reported_at >= ? "
                "AND lon BETWEEN ? AND ? AND lat BETWEEN ? AND ? ORDER BY reported_at",
                [category, since, lon - dlon, lon + dlon, lat - dlat, lat + dlat],
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def open_in_district(self, district: str, categories: Iterable[str]) -> list[Event]:
        cats = list(categories)
        if not cats:
            return []
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM event_queue WHERE district_code = ? AND category_code IN "
                f"({', '.join('?' for _ in cats)}) ORDER BY reported_at",
                [district, *cats],
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def children_of(self, parent_id: str) -> list[Event]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM events WHERE parent_id = ? ORDER BY reported_at", [parent_id]
            ).fetchall()
        return [event_from_row(r) for r in rows]

    def count_events(self, open_only: bool = False) -> int:
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {'event_queue' if open_only else 'events'}").fetchone()[0]

    def all_events(self, *, district: str | None = None, source: str | None = None,
                   reporter: str | None = None) -> list[Event]:
        """Every event (open or not) in report order, optionally by district, source and reporter."""
        where, params = [], []
        for column, value in (("district_code", district), ("source", source), ("reporter", reporter)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {EVENT_SELECT} FROM events" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY reported_at", params).fetchall()
        return [event_from_row(r) for r in rows]

    def bulk_load_events(self, table) -> int:
        """Load an Arrow table of event rows (benchmarks, snapshots); no per-row change log."""
        with self.tx():
            self._register("_bulk_events", table)
            try:
                self.conn.execute(f"INSERT INTO events SELECT {EVENT_SELECT} FROM _bulk_events")
                self.conn.execute(
                    f"INSERT INTO event_queue SELECT {EVENT_SELECT} FROM _bulk_events WHERE status NOT IN {TERMINAL_VALUES}"
                )
            finally:
                self.conn.unregister("_bulk_events")
        return table.num_rows

    # ------------------------------------------------------------ audit

    def append_audit(
        self,
        *,
        event_id: str,
        action: str,
        from_status: str | None,
        to_status: str | None,
        actor: str,
        role: str,
        tier: str,
        note: str = "",
        at: float | None = None,
        scope: str | None = None,
    ) -> AuditEntry:
        """Append one hash-chained entry; ``scope`` (the event's deepest code) saves a lookup when known."""
        self._require_tx()
        entry = self._chain_entry(event_id, action, from_status, to_status, actor, role, tier, note, at)
        row = to_row(entry)
        self.conn.execute(
            f"INSERT INTO audit_log VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        self._audit_tail = (entry.seq, entry.hash)
        self.log_change("audit", str(entry.seq), "append", row, scope=scope or self._scope_of(event_id))
        return entry

    def append_audits(self, entries: list[dict]) -> list[AuditEntry]:
        """Batch ``append_audit`` (same keyword fields per dict); the chain is built in order."""
        import pyarrow as pa  # bulk paths only; kept off the console's start-up

        if not entries:
            return []
        self._require_tx()
        made = []
        for kw in entries:
            scope = kw.pop("scope", None)
            entry = self._chain_entry(kw["event_id"], kw["action"], kw["from_status"], kw["to_status"], kw["actor"],
                                      kw["role"], kw["tier"], kw.get("note", ""), kw.get("at"))
            self._audit_tail = (entry.seq, entry.hash)
            made.append((entry, scope or self._scope_of(entry.event_id)))
        table = pa.Table.from_pylist([to_row(e) for e, _ in made], schema=arrow_schema(AuditEntry))
        self._register("_bulk_audit", table)
        try:
            self.conn.execute("INSERT INTO audit_log SELECT * FROM _bulk_audit")
        finally:
            self.conn.unregister("_bulk_audit")
        self._log_changes([("audit", str(e.seq), "append", to_row(e), None, sc) for e, sc in made])
        return [e for e, _ in made]

    def _scope_of(self, event_id: str) -> str:
        row = self.conn.execute(
            "SELECT coalesce(grid_code, street_code, district_code) FROM events WHERE id = ?", [event_id]
        ).fetchone()
        return row[0] if row else self.code

    def _chain_entry(self, event_id, action, from_status, to_status, actor, role, tier, note, at) -> AuditEntry:
        if self._audit_tail is None:
            last = self.conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            self._audit_tail = (last[0], last[1]) if last else (0, audit_chain.GENESIS)
        seq, prev = self._audit_tail[0] + 1, self._audit_tail[1]
        entry = AuditEntry(
            seq=seq,
            acted_at=self.clock.now() if at is None else at,
            event_id=event_id,
            action=action,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            role=role,
            tier=tier,
            node=self.node,
            note=note,
            prev_hash=prev,
            hash="",
        )
        return replace(entry, hash=audit_chain.entry_hash(prev, entry))

    def remote_audit_head(self, node: str) -> tuple[int, str] | None:
        """(seq, hash) of the newest replicated audit entry from ``node`` (the client's witness)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT seq, hash FROM audit_remote WHERE node = ? ORDER BY seq DESC LIMIT 1", [node]).fetchall()
        return (row[0][0], row[0][1]) if row else None

    def _select(self, entity, rest: str, params: list) -> list:
        """``SELECT <entity's columns> <rest>`` as entities (``rest``: FROM … WHERE … ORDER BY …)."""
        cols = column_names(entity)
        with self.lock:
            rows = self.conn.execute(f"SELECT {', '.join(cols)} {rest}", params).fetchall()
        return [entity(**dict(zip(cols, r))) for r in rows]

    def audit_entries(self, event_id: str | None = None) -> list[AuditEntry]:
        if event_id:
            return self._select(AuditEntry, "FROM audit_log WHERE event_id = ? ORDER BY seq", [event_id])
        return self._select(AuditEntry, "FROM audit_log ORDER BY seq", [])

    def verify_audit(self) -> audit_chain.Verdict:
        return audit_chain.verify(self.audit_entries())

    # ------------------------------------------------------------ directives

    def put_directive(self, directive: Directive, origin: str | None = None) -> None:
        row = to_row(directive)
        with self.tx():
            self.conn.execute(
                f"INSERT OR REPLACE INTO directives VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
            self.log_change("directive", directive.id, "upsert", row, origin, ",".join(directive.targets))

    def get_directive(self, directive_id: str) -> Directive | None:
        found = self._select(Directive, "FROM directives WHERE id = ? OR number = ? LIMIT 1",
                             [directive_id, directive_id])
        return found[0] if found else None

    def directives(self, limit: int = 100) -> list[Directive]:
        return self._select(Directive, "FROM directives ORDER BY created_at DESC LIMIT ?", [limit])

    def put_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        row = to_row(receipt)
        with self.tx():
            self.conn.execute(
                f"INSERT OR REPLACE INTO receipts VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert", row, origin,
                            receipt.jurisdiction_code)

    def receipts(self, directive_id: str) -> list[Receipt]:
        return self._select(Receipt, "FROM receipts WHERE directive_id = ? ORDER BY jurisdiction_code", [directive_id])


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
            ("node", node or f"{tier_value}-{code}"),
            ("created_at", repr(clock.now())),
        ):
            conn.execute("INSERT INTO store_meta VALUES (?, ?)", [key, value])
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        if path != ":memory:":
            for p in (path, path + ".wal"):
                if os.path.exists(p):
                    os.remove(p)
        raise
    return Store(path, conn, clock)


def open_store(path: str, clock: Clock | None = None, read_only: bool = False) -> Store:
    """Open an existing store, applying pending migrations."""
    clock = clock or SystemClock()
    conn = connect(path, create=False, read_only=read_only)
    try:
        has_meta = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'store_meta'"
        ).fetchone()[0]
        if not has_meta:
            raise StoreCorrupt(f"{path}: a DuckDB file but not a cqgov store (no store_meta)")
        version = applied(conn)
        if version > LATEST:
            raise StoreError(f"{path}: schema version {version} is newer than this cqgov ({LATEST}); upgrade cqgov")
        if version < LATEST and not read_only:
            migrate(conn, clock.now())
        store = Store(path, conn, clock)
        store.conn.execute("SELECT count(*), max(seq) FROM changes").fetchone()  # touches data blocks early
        return store
    except duckdb.Error as exc:
        conn.close()
        raise StoreCorrupt(f"{path}: not a readable cqgov store ({str(exc).splitlines()[0]})") from None
    except BaseException:
        conn.close()
        raise
