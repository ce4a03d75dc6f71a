"""Typed access to one tier's DuckDB store. No other module writes SQL for these tables.

Every write happens inside ``Store.tx()`` and appends to the change log in the
same transaction (SYNC.md), so a reader of ``changes`` never sees an effect
without its log row or a log row without its effect.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import replace
from typing import Any, Iterable, Iterator

import duckdb

from ..clock import Clock, SystemClock, local
from ..domain.entities import AuditEntry, Directive, Event, Receipt, Status, TERMINAL, Tier
from ..domain.schema import column_names, from_row, to_row
from ..errors import BadInput, StoreCorrupt, StoreError
from ..ids import uuid7
from . import audit as audit_chain
from .connection import connect
from .migrations import LATEST, applied, migrate

EVENT_COLUMNS = column_names(Event)
_EVENT_SELECT = ", ".join(EVENT_COLUMNS)
_EVENT_PLACEHOLDERS = ", ".join("?" for _ in EVENT_COLUMNS)
_COLOUR_RANK = "CASE colour WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 WHEN 'blue' THEN 3 ELSE 4 END"
_TERMINAL_VALUES = tuple(s.value for s in TERMINAL)


class Store:
    """One DuckDB file owned by this process."""

    def __init__(self, path: str, conn: duckdb.DuckDBPyConnection, clock: Clock | None = None):
        self.path = path
        self.conn = conn
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._depth = 0
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
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

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

    def next_number(self, now: float) -> str:
        """Human event number: <code tail>-<local date>-<daily serial>."""
        day = local(now).strftime("%Y%m%d")
        with self.tx():
            key = f"serial:{day}"
            n = int(self.meta(key, "0")) + 1
            self.set_meta(key, str(n))
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
        return seq

    def head(self) -> int:
        with self.lock:
            return self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

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

    def oldest_change(self) -> int:
        with self.lock:
            return self.conn.execute("SELECT coalesce(min(seq), 0) FROM changes").fetchone()[0]

    # ------------------------------------------------------------ events

    def insert_event(self, event: Event, origin: str | None = None) -> Event:
        with self.tx():
            if self.get_event(event.id) is not None:
                raise BadInput(f"event {event.id} already exists")
            row = to_row(event)
            values = [row[c] for c in EVENT_COLUMNS]
            self.conn.execute(f"INSERT INTO events VALUES ({_EVENT_PLACEHOLDERS})", values)
            if Status(event.status).is_open:
                self.conn.execute(f"INSERT INTO event_queue VALUES ({_EVENT_PLACEHOLDERS})", values)
            self.log_change("event", event.id, "create", row, origin, _event_scope(event))
        return event

    def update_event(self, event: Event, changed: Iterable[str], origin: str | None = None) -> Event:
        """Persist ``event`` whose fields ``changed`` differ from the stored row; bumps version."""
        changed = [c for c in changed if c not in ("version", "id")]
        with self.tx():
            current = self.get_event(event.id)
            if current is None:
                raise BadInput(f"no event {event.id}")
            event = replace(event, version=current.version + 1)
            row = to_row(event)
            cols = changed + ["version"]
            sets = ", ".join(f"{c} = ?" for c in cols)
            self.conn.execute(f"UPDATE events SET {sets} WHERE id = ?", [row[c] for c in cols] + [event.id])
            self.conn.execute("DELETE FROM event_queue WHERE id = ?", [event.id])
            if Status(event.status).is_open:
                self.conn.execute(f"INSERT INTO event_queue VALUES ({_EVENT_PLACEHOLDERS})", [row[c] for c in EVENT_COLUMNS])
            self.log_change("event", event.id, "update", {"id": event.id, **{c: row[c] for c in cols}}, origin,
                            _event_scope(event))
        return event

    def get_event(self, event_id: str) -> Event | None:
        with self.lock:
            cur = self.conn.execute(f"SELECT {_EVENT_SELECT} FROM events WHERE id = ?", [event_id])
            row = cur.fetchone()
        return _event(row) if row else None

    def resolve_event(self, ref: str) -> Event:
        """Find an event by id, id prefix (≥ 8 chars) or human number."""
        ref = (ref or "").strip()
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_EVENT_SELECT} FROM events WHERE id = ? OR number = ? OR (length(?) >= 8 AND starts_with(id, ?)) LIMIT 2",
                [ref, ref, ref, ref],
            ).fetchall()
        if not rows:
            raise BadInput(f"no event {ref!r}")
        if len(rows) > 1:
            raise BadInput(f"event reference {ref!r} is ambiguous; give more of the id")
        return _event(rows[0])

    def queue(
        self,
        *,
        district: str | None = None,
        street: str | None = None,
        statuses: Iterable[str] | None = None,
        colours: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        text: str | None = None,
        include_closed: bool = False,
        limit: int = 200,
        offset: int = 0,
    ) -> list[Event]:
        """The console's main query: open events by colour, then by deadline."""
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
            f"SELECT {_EVENT_SELECT} FROM {table}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {_COLOUR_RANK}, due_at NULLS LAST, reported_at LIMIT ? OFFSET ?"
        )
        with self.lock:
            rows = self.conn.execute(sql, params + [limit, offset]).fetchall()
        return [_event(r) for r in rows]

    def open_events(self) -> list[Event]:
        with self.lock:
            rows = self.conn.execute(f"SELECT {_EVENT_SELECT} FROM event_queue").fetchall()
        return [_event(r) for r in rows]

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
                f"SELECT {_EVENT_SELECT} FROM event_queue WHERE due_at < ? ORDER BY due_at", [now]
            ).fetchall()
        return [_event(r) for r in rows]

    def nearby_open(self, category: str, since: float, lon: float, lat: float, dlon: float, dlat: float) -> list[Event]:
        """Open events of a category reported since ``since`` inside a lon/lat box (dedup candidates)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_EVENT_SELECT} FROM event_queue WHERE category_code = ? AND reported_at >= ? "
                "AND lon BETWEEN ? AND ? AND lat BETWEEN ? AND ? ORDER BY reported_at",
                [category, since, lon - dlon, lon + dlon, lat - dlat, lat + dlat],
            ).fetchall()
        return [_event(r) for r in rows]

    def open_in_district(self, district: str, categories: Iterable[str]) -> list[Event]:
        cats = list(categories)
        if not cats:
            return []
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_EVENT_SELECT} FROM event_queue WHERE district_code = ? AND category_code IN "
                f"({', '.join('?' for _ in cats)}) ORDER BY reported_at",
                [district, *cats],
            ).fetchall()
        return [_event(r) for r in rows]

    def children_of(self, parent_id: str) -> list[Event]:
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {_EVENT_SELECT} FROM events WHERE parent_id = ? ORDER BY reported_at", [parent_id]
            ).fetchall()
        return [_event(r) for r in rows]

    def count_events(self, open_only: bool = False) -> int:
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {'event_queue' if open_only else 'events'}").fetchone()[0]

    def events_where(self, clause: str = "", params: list | None = None, limit: int | None = None) -> list[Event]:
        """For core modules needing a filtered scan; ``clause`` is built only from column names."""
        sql = f"SELECT {_EVENT_SELECT} FROM events" + (f" WHERE {clause}" if clause else "")
        sql += " ORDER BY reported_at" + (f" LIMIT {int(limit)}" if limit else "")
        with self.lock:
            rows = self.conn.execute(sql, params or []).fetchall()
        return [_event(r) for r in rows]

    def bulk_load_events(self, table) -> int:
        """Load an Arrow table of event rows (benchmarks, snapshots); no per-row change log."""
        with self.tx():
            self.conn.register("_bulk_events", table)
            try:
                self.conn.execute(f"INSERT INTO events SELECT {_EVENT_SELECT} FROM _bulk_events")
                self.conn.execute(
                    f"INSERT INTO event_queue SELECT {_EVENT_SELECT} FROM _bulk_events WHERE status NOT IN {_TERMINAL_VALUES}"
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
    ) -> AuditEntry:
        self._require_tx()
        last = self.conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, audit_chain.GENESIS)
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
        entry = replace(entry, hash=audit_chain.entry_hash(prev, entry))
        row = to_row(entry)
        self.conn.execute(
            f"INSERT INTO audit_log VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        scope_row = self.conn.execute(
            "SELECT coalesce(grid_code, street_code, district_code) FROM events WHERE id = ?", [event_id]
        ).fetchone()
        self.log_change("audit", str(seq), "append", row, scope=scope_row[0] if scope_row else self.code)
        return entry

    def audit_entries(self, event_id: str | None = None) -> list[AuditEntry]:
        cols = column_names(AuditEntry)
        sql = f"SELECT {', '.join(cols)} FROM audit_log"
        params: list = []
        if event_id:
            sql += " WHERE event_id = ?"
            params.append(event_id)
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [AuditEntry(**dict(zip(cols, r))) for r in rows]

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
        cols = column_names(Directive)
        with self.lock:
            row = self.conn.execute(
                f"SELECT {', '.join(cols)} FROM directives WHERE id = ? OR number = ?", [directive_id, directive_id]
            ).fetchone()
        return Directive(**dict(zip(cols, row))) if row else None

    def directives(self, limit: int = 100) -> list[Directive]:
        cols = column_names(Directive)
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {', '.join(cols)} FROM directives ORDER BY created_at DESC LIMIT ?", [limit]
            ).fetchall()
        return [Directive(**dict(zip(cols, r))) for r in rows]

    def put_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        row = to_row(receipt)
        with self.tx():
            self.conn.execute(
                f"INSERT OR REPLACE INTO receipts VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert", row, origin,
                            receipt.jurisdiction_code)

    def receipts(self, directive_id: str) -> list[Receipt]:
        cols = column_names(Receipt)
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {', '.join(cols)} FROM receipts WHERE directive_id = ? ORDER BY jurisdiction_code",
                [directive_id],
            ).fetchall()
        return [Receipt(**dict(zip(cols, r))) for r in rows]


def _event_scope(event: Event) -> str:
    return event.grid_code or event.street_code or event.district_code


def _event(row) -> Event:
    return Event(**dict(zip(EVENT_COLUMNS, row)))


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


# ---- server support
# Methods the tier server and federation need; appended here so every SQL
# statement stays in the store.


def _upsert_event_copy(self: Store, event: Event, origin: str | None = None) -> tuple[bool, Event | None]:
    """Keep a copy of an event owned by another tier: written only when ``event.version`` is newer.

    Unlike ``update_event`` the version is the owner's, not bumped here, so a
    copy re-sent any number of times (or echoed back) is written at most once.
    Returns (written, previous row or None).
    """
    with self.tx():
        current = self.get_event(event.id)
        if current is not None and current.version >= event.version:
            return False, current
        row = to_row(event)
        values = [row[c] for c in EVENT_COLUMNS]
        if current is None:
            self.conn.execute(f"INSERT INTO events VALUES ({_EVENT_PLACEHOLDERS})", values)
        else:
            sets = ", ".join(f"{c} = ?" for c in EVENT_COLUMNS if c != "id")
            self.conn.execute(f"UPDATE events SET {sets} WHERE id = ?",
                              [row[c] for c in EVENT_COLUMNS if c != "id"] + [event.id])
            self.conn.execute("DELETE FROM event_queue WHERE id = ?", [event.id])
        if Status(event.status).is_open:
            self.conn.execute(f"INSERT INTO event_queue VALUES ({_EVENT_PLACEHOLDERS})", values)
        self.log_change("event", event.id, "create" if current is None else "update", row, origin, _event_scope(event))
    return True, current


def _event_counts_by(self: Store, column: str, origin_tier: str | None = None) -> dict[str, int]:
    """Events per district/street/origin node (demo summaries)."""
    if column not in ("district_code", "street_code", "origin_node", "origin_tier"):
        raise BadInput(f"cannot count events by {column!r}")
    sql = f"SELECT {column}, count(*) FROM events"
    params: list = []
    if origin_tier:
        sql += " WHERE origin_tier = ?"
        params.append(origin_tier)
    with self.lock:
        rows = self.conn.execute(sql + " GROUP BY ALL", params).fetchall()
    return {str(k): int(n) for k, n in rows}


def _event_ids(self: Store) -> list[str]:
    with self.lock:
        return [r[0] for r in self.conn.execute("SELECT id FROM events ORDER BY id").fetchall()]


def _count_rows(self: Store, table_name: str) -> int:
    if table_name not in ("events", "directives", "receipts", "audit_log", "changes", "event_queue"):
        raise BadInput(f"unknown table {table_name!r}")
    with self.lock:
        return self.conn.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0]


def _duplicate_event_ids(self: Store) -> int:
    """Rows sharing an id would break the primary key; counted for the demo's own check."""
    with self.lock:
        return self.conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchone()[0]


Store.upsert_event_copy = _upsert_event_copy
Store.event_counts_by = _event_counts_by
Store.event_ids = _event_ids
Store.count_rows = _count_rows
Store.duplicate_event_ids = _duplicate_event_ids
