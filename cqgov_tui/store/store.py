"""Typed access to one tier's DuckDB store. No other module writes SQL for these tables.

Every write happens inside ``Store.tx()`` and appends to the change log in the
same transaction (SYNC.md), so a reader of ``changes`` never sees an effect
without its log row or a log row without its effect.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import threading
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator

import duckdb

from ..clock import Clock, SystemClock, local
from ..domain.entities import AuditEntry, Directive, Event, Receipt, Tier
from ..domain.schema import column_names, to_row
from ..errors import BadInput, StoreCorrupt, StoreError
from ..ids import uuid7
from . import audit as audit_chain
from .connection import connect
from .engine_queries import EngineQueries
from .migrations import LATEST, applied, migrate
from .open_events import OpenEvents
from .rows import (COLOUR_RANK, EVENT_SELECT, QUEUE_COLUMNS, QueueRow,
                   TERMINAL_VALUES, event_from_row, event_scope)
from .server_queries import ServerQueries
from .unit import FlushedPastMark, Mark, WriteBatch

__all__ = ["Store", "open_store", "init_store", "FlushedPastMark", "Mark"]

class Store(ServerQueries, EngineQueries):
    """One DuckDB file owned by this process.

    Writes go through ``tx()``: they are staged in a ``WriteBatch`` and written
    with one statement per table at commit (``unit.py``). Hot reads (an event
    by id or number, open events near a place, overdue ones) come from the
    batch and the in-memory ``OpenEvents`` index, so a command's cost does not
    grow with the archive. Any other read goes through ``conn``, which first
    flushes what the running transaction staged, so SQL always sees it.
    """

    def __init__(self, path: str, conn: duckdb.DuckDBPyConnection, clock: Clock | None = None):
        self.path = path
        self._conn = conn
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._depth = 0
        self._batch: WriteBatch | None = None
        self._tx_thread: int | None = None
        self._db_tx = False  # a DuckDB transaction is open under the running store transaction
        # This process owns the file, so committed heads, the audit tail, metadata and the open
        # events can be remembered between writes instead of re-read (see invalidate_caches).
        self._head: int | None = None
        self._audit_tail: tuple[int, str] | None = None
        self._meta: dict[str, str | None] = {}
        self._open: OpenEvents | None = None
        self._open_loaded_in_tx = False
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
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        """The connection, for SQL inside ``store/``. Inside a transaction, staged rows are
        written first (and a DuckDB transaction opened), so the SQL sees this transaction's work."""
        if self._batch is not None and self._tx_thread == threading.get_ident():
            self._flush()
        return self._conn

    def _flush(self) -> None:
        batch = self._batch
        assert batch is not None
        if not self._db_tx:
            self._conn.execute("BEGIN TRANSACTION")
            self._db_tx = True
        if batch.dirty:
            batch.flush(self._conn)

    def _mine(self) -> WriteBatch | None:
        """The running transaction's batch when the caller is the thread running it."""
        batch = self._batch
        return batch if batch is not None and self._tx_thread == threading.get_ident() else None

    @contextlib.contextmanager
    def tx(self) -> Iterator["Store"]:
        """A (re-entrant) transaction: nested calls join the outer one; all of it commits or none."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._batch = WriteBatch(head=self.head(), audit_tail=self._committed_tail())
            self._tx_thread = threading.get_ident()
            self._depth = 1
            try:
                yield self
                self._commit()
            except BaseException:
                self._abort()
                raise
            finally:
                self._depth = 0
                self._batch = None
                self._tx_thread = None
                self._db_tx = False
                self._open_loaded_in_tx = False
        self._notify_commit()

    def _commit(self) -> None:
        batch = self._batch
        assert batch is not None
        if batch.dirty:
            self._flush()
        if self._db_tx:
            self._conn.execute("COMMIT")
            self._db_tx = False
        self._head = batch.head
        self._audit_tail = batch.audit_tail
        self._meta.update(batch.meta_seen)
        if self._open is not None and not self._open_loaded_in_tx:
            for event in batch.touched.values():
                self._open.put(event)

    def _abort(self) -> None:
        if self._db_tx:
            self._db_tx = False
            with contextlib.suppress(duckdb.Error):
                self._conn.execute("ROLLBACK")
        if self._open_loaded_in_tx:
            self._open = None  # it may hold rows the rollback undid

    def mark(self) -> Mark:
        """Where the running transaction's writes stand; ``rollback_to`` undoes everything after it."""
        batch = self._require_tx()
        return batch.mark()

    def rollback_to(self, mark: Mark) -> None:
        """Undo what was staged since ``mark`` (raises ``FlushedPastMark`` if it already reached DuckDB)."""
        batch = self._require_tx()
        batch.rollback_to(mark)

    def _notify_commit(self) -> None:
        head = self.head()
        for listener in list(self.commit_listeners):
            listener(head)

    def _register(self, name: str, table: Any) -> None:
        """Register an Arrow table for a bulk statement. DuckDB refuses ``register`` while an earlier
        ``fetchone()`` left a result open, so a trivial statement closes that result first."""
        conn = self.conn
        conn.execute("SELECT 1").fetchall()
        conn.register(name, table)

    def invalidate_caches(self) -> None:
        """Forget what is remembered; call after writing ``changes``, ``audit_log``, ``events`` or
        ``store_meta`` other than through this class."""
        with self.lock:
            batch = self._mine()
            if batch is not None:
                self._flush()
                batch.head = self._read_head()
                batch.audit_tail = self._read_tail()
                batch.meta_seen.clear()
                batch.touched.clear()
                batch.overlay = OpenEvents()
            self._head = None
            self._audit_tail = None
            self._meta.clear()
            self._open = None

    def _require_tx(self) -> WriteBatch:
        batch = self._mine()
        if batch is None:
            raise StoreError("internal: write outside a store transaction")
        return batch

    # ------------------------------------------------------------ meta

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            batch = self._mine()
            if batch is not None and key in batch.meta_seen:
                return batch.meta_seen[key]
            if key not in self._meta:
                if len(self._meta) > 100_000:  # one key per federated event: keep the cache bounded
                    self._meta.clear()
                row = self._conn.execute("SELECT value FROM store_meta WHERE key = ?", [key]).fetchall()
                self._meta[key] = row[0][0] if row else None
            value = self._meta[key]
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self._require_tx().put_meta(key, value)

    def next_serial(self, kind: str, now: float) -> tuple[str, int]:
        """The next daily serial of ``kind`` (events, directives…): (local date YYYYMMDD, n from 1)."""
        day = local(now).strftime("%Y%m%d")
        with self.tx():
            key = f"{kind}:{day}"
            n = int(self.meta(key, "0") or "0") + 1
            self.set_meta(key, str(n))
        return day, n

    def next_number(self, now: float) -> str:
        """Human event number: <code tail>-<local date>-<daily serial>."""
        day, n = self.next_serial("serial", now)
        return f"{self.code[-4:]}-{day}-{n:05d}"

    def schema_version(self) -> int:
        with self.lock:
            return applied(self._conn)

    # ------------------------------------------------------------ change log

    def log_change(self, entity: str, key: str, op: str, data: dict[str, Any], origin: str | None = None,
                   scope: str = "") -> int:
        """Append to the change log. ``scope`` is the jurisdiction code(s) the row belongs to
        (comma-separated for a directive's targets) so servers can filter deltas per caller."""
        batch = self._require_tx()
        return batch.log(self.clock.now(), entity, key, op, data, origin or self.node, scope)

    def head(self) -> int:
        """The change log's head: this transaction's own to the thread running it, the committed one to others."""
        batch = self._mine()
        if batch is not None:
            return batch.head
        head = self._head
        if head is None:
            with self.lock:
                if self._head is None:
                    self._head = self._read_head()
                head = self._head
        return head

    def _read_head(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchall()[0][0])

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

    # ------------------------------------------------------------ events: hot reads

    def _open_index(self) -> OpenEvents:
        """The committed open events, loaded from ``event_queue`` on first use."""
        if self._open is None:
            rows = self._conn.execute(f"SELECT {EVENT_SELECT} FROM event_queue").fetchall()
            self._open = OpenEvents(event_from_row(r) for r in rows)
            self._open_loaded_in_tx = self._db_tx
        return self._open

    def _open_now(self, batch: WriteBatch | None, found: Iterable[Event]) -> list[Event]:
        """Index hits with this transaction's own writes laid over them (``found`` are index rows)."""
        if batch is None or not batch.touched:
            return list(found)
        return [e for e in found if e.id not in batch.touched]

    def _touched_open(self, batch: WriteBatch | None) -> list[Event]:
        return [] if batch is None else list(batch.overlay)

    def get_event(self, event_id: str) -> Event | None:
        with self.lock:
            batch = self._mine()
            if batch is not None and event_id in batch.touched:
                return batch.touched[event_id]
            hit = self._open_index().get(event_id)
            if hit is not None:
                return hit
            rows = self._conn.execute(f"SELECT {EVENT_SELECT} FROM events WHERE id = ?", [event_id]).fetchall()
        return event_from_row(rows[0]) if rows else None

    def resolve_event(self, ref: str, *, prefix: bool = False) -> Event:
        """Find an event by id or human number; by id prefix (≥ 8 characters) only when ``prefix``.

        Exact lookups are keyed: the running transaction, the open-event index, then the
        archive by primary key or by number within the days the number names."""
        ref = (ref or "").strip()
        if not ref:
            raise BadInput("no event reference given")
        with self.lock:
            found = self.get_event(ref)
            if found is not None:
                return found
            batch = self._mine()
            hits = {e.id: e for e in (batch.touched.values() if batch else ()) if e.number == ref}
            index = self._open_index()
            if ref in index.by_number:
                hit = index.by_number[ref]
                hits.setdefault(hit, self.get_event(hit))  # type: ignore[arg-type]
            if not hits:
                for e in self._archived_by_number(ref):
                    hits.setdefault(e.id, e)
            if not hits and prefix and len(ref) >= 8:
                for e in [*self._touched_open(batch), *index]:
                    if e.id.startswith(ref):
                        hits.setdefault(e.id, e)
                if len(hits) < 2:
                    rows = self._conn.execute(
                        f"SELECT {EVENT_SELECT} FROM events WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                        [ref, ref + "\U0010ffff"]).fetchall()
                    for r in rows:
                        e = event_from_row(r)
                        hits.setdefault(e.id, (batch.touched.get(e.id, e) if batch else e))
        if not hits:
            raise BadInput(f"no event {ref!r}")
        if len(hits) > 1:
            raise BadInput(f"event reference {ref!r} is ambiguous; give more of the id")
        return next(iter(hits.values()))

    def _archived_by_number(self, number: str) -> list[Event]:
        """Events numbered ``number`` in the table, looked for only around the day the number names."""
        parts = number.split("-")
        if len(parts) != 3 or not (parts[1].isdigit() and len(parts[1]) == 8):
            return []
        try:
            day = datetime.datetime.strptime(parts[1], "%Y%m%d").replace(tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            return []
        # Local dates are within ±14 h of UTC; a day's margin either side covers any zone and clock skew.
        rows = self._conn.execute(
            f"SELECT {EVENT_SELECT} FROM events WHERE reported_at BETWEEN ? AND ? AND number = ? LIMIT 2",
            [day - 86400.0, day + 2 * 86400.0, number]).fetchall()
        return [event_from_row(r) for r in rows]

    def nearby_open(self, category: str, since: float, lon: float, lat: float, dlon: float, dlat: float) -> list[Event]:
        """Open events of a category reported since ``since`` inside a lon/lat box (dedup candidates)."""
        def inside(e: Event) -> bool:
            return (e.category_code == category and e.reported_at >= since and e.lon is not None and e.lat is not None
                    and lon - dlon <= e.lon <= lon + dlon and lat - dlat <= e.lat <= lat + dlat)

        with self.lock:
            batch = self._mine()
            found = self._open_index().in_box(category, lon - dlon, lon + dlon, lat - dlat, lat + dlat)
            out = [e for e in self._open_now(batch, found) if inside(e)]
            if batch is not None:
                out += [e for e in batch.overlay.in_box(category, lon - dlon, lon + dlon, lat - dlat, lat + dlat)
                        if inside(e)]
        return sorted(out, key=lambda e: (e.reported_at, e.id))

    def open_in_district(self, district: str, categories: Iterable[str]) -> list[Event]:
        cats = list(categories)
        if not cats:
            return []
        with self.lock:
            batch = self._mine()
            out = self._open_now(batch, self._open_index().in_district(district, cats))
            if batch is not None:
                out += batch.overlay.in_district(district, cats)
        return sorted(out, key=lambda e: (e.reported_at, e.id))

    def open_events(self) -> list[Event]:
        with self.lock:
            batch = self._mine()
            return self._open_now(batch, self._open_index()) + self._touched_open(batch)

    def overdue_events(self, now: float) -> list[Event]:
        return sorted((e for e in self.open_events() if e.due_at is not None and e.due_at < now),
                      key=lambda e: (e.due_at, e.id))

    def owned_overdue_events(self, now: float) -> list[Event]:
        """Open events past their deadline that this node owns (not copies federated from below)."""
        return [e for e in self.overdue_events(now) if e.origin_node == self.node]

    def count_events(self, open_only: bool = False) -> int:
        if open_only:
            return len(self.open_events())
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM events").fetchall()[0][0])

    def children_of(self, parent_id: str) -> list[Event]:
        """Sub-tasks of a 多跨 master, reported at or after it (so the archive's older days are skipped)."""
        with self.lock:
            master = self.get_event(parent_id)
            since = master.reported_at if master is not None else 0.0
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM events WHERE reported_at >= ? AND parent_id = ? ORDER BY reported_at",
                [since, parent_id]).fetchall()
        return [event_from_row(r) for r in rows]

    # ------------------------------------------------------------ events: writes

    def insert_event(self, event: Event, origin: str | None = None, *, known_new: bool = False) -> Event:
        """Stage a new event (``known_new``: the caller made its id or already checked it is free)."""
        with self.tx():
            if not known_new and self.get_event(event.id) is not None:
                raise BadInput(f"event {event.id} already exists")
            self._require_tx().stage_event(event, created=True)
            self.log_change("event", event.id, "create", to_row(event), origin, event_scope(event))
        return event

    def update_event(self, event: Event, changed: Iterable[str], origin: str | None = None) -> Event:
        """Persist the fields ``changed`` of ``event`` onto the stored row; bumps version.

        An event created in the same transaction stays one create row (version 1, final state)."""
        cols = [c for c in dict.fromkeys(changed) if c not in ("version", "id")]
        with self.tx():
            batch = self._require_tx()
            current = self.get_event(event.id)
            if current is None:
                raise BadInput(f"no event {event.id}")
            merged = replace(current, **{c: getattr(event, c) for c in cols})
            if event.id in batch.created_change:
                batch.stage_event(merged, created=True)
                batch.rewrite_create(event.id, to_row(merged))
                return merged
            merged = replace(merged, version=current.version + 1)
            batch.stage_event(merged, created=False)
            row = to_row(merged)
            self.log_change("event", merged.id, "update", {"id": merged.id, **{c: row[c] for c in [*cols, "version"]}},
                            origin, event_scope(merged))
        return merged

    def update_events(self, updates: list[tuple[Event, list[str]]], origin: str | None = None) -> list[Event]:
        """``update_event`` for many (sweeps); written with the rest of the transaction in bulk."""
        with self.tx():
            return [self.update_event(event, changed, origin) for event, changed in updates]

    def put_event_copy(self, event: Event, op: str, origin: str, *, exists: bool) -> None:
        """Stage a row as another node wrote it (its version kept) and log it (federation)."""
        self.stage_events([(event, exists)])
        self.log_change("event", event.id, op, to_row(event), origin, event_scope(event))

    def stage_events(self, rows: list[tuple[Event, bool]]) -> None:
        """Stage whole rows (event, already stored?) without logging: the replica logs what it
        received itself, with the sender's origin and in the sender's order."""
        batch = self._require_tx()
        for event, exists in rows:
            batch.stage_event(event, created=not exists)

    def delete_events(self, ids: list[str]) -> None:
        """Remove events outright (a refused local command's new row); the queue loses them too."""
        if not ids:
            return
        with self.tx():
            conn = self.conn
            conn.execute("DELETE FROM event_queue WHERE list_contains(?, id)", [ids])
            conn.execute("DELETE FROM events WHERE list_contains(?, id)", [ids])
            batch = self._require_tx()
            for i in ids:
                batch.touched.pop(i, None)
                batch.overlay.drop(i)
            if self._open is not None:
                self._open_loaded_in_tx = True  # forget the index at the end of this transaction

    def queue(self, *, include_closed: bool = False, limit: int = 200, offset: int = 0, **filters: Any) -> list[Event]:
        """The console's main query with full rows: open events by colour, then by deadline."""
        sql, params = self._queue_sql(EVENT_SELECT, include_closed, filters)
        with self.lock:
            rows = self.conn.execute(sql, params + [limit, offset]).fetchall()
        return [event_from_row(r) for r in rows]

    def queue_rows(self, *, include_closed: bool = False, limit: int = 200, offset: int = 0,
                   **filters: Any) -> list[QueueRow]:
        """Same order and filters as ``queue`` but only the list columns (the console's hot path)."""
        sql, params = self._queue_sql(", ".join(QUEUE_COLUMNS), include_closed, filters)
        with self.lock:
            rows = self.conn.execute(sql, params + [limit, offset]).fetchall()
        return [QueueRow(*r) for r in rows]

    def _queue_sql(self, select: str, include_closed: bool, filters: dict[str, Any]) -> tuple[str, list[Any]]:
        district = filters.pop("district", None)
        street = filters.pop("street", None)
        statuses = filters.pop("statuses", None)
        colours = filters.pop("colours", None)
        categories = filters.pop("categories", None)
        text = filters.pop("text", None)
        if filters:
            raise BadInput(f"unknown queue filter {next(iter(filters))!r}")
        where: list[str] = []
        params: list[Any] = []
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

    def all_events(self, *, district: str | None = None, source: str | None = None,
                   reporter: str | None = None) -> list[Event]:
        """Every event (open or not) in report order, optionally by district, source and reporter."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("district_code", district), ("source", source), ("reporter", reporter)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {EVENT_SELECT} FROM events" + (f" WHERE {' AND '.join(where)}" if where else "")
        with self.lock:
            rows = self.conn.execute(sql + " ORDER BY reported_at", params).fetchall()
        return [event_from_row(r) for r in rows]

    def bulk_load_events(self, table: Any) -> int:
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
            self.invalidate_caches()
        return int(table.num_rows)

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
        batch = self._require_tx()
        seq, prev = batch.audit_tail[0] + 1, batch.audit_tail[1]
        entry = AuditEntry(seq=seq, acted_at=self.clock.now() if at is None else at, event_id=event_id,
                           action=action, from_status=from_status, to_status=to_status, actor=actor, role=role,
                           tier=tier, node=self.node, note=note, prev_hash=prev, hash="")
        entry = replace(entry, hash=audit_chain.entry_hash(prev, entry))
        batch.append_audit(entry)
        self.log_change("audit", str(entry.seq), "append", to_row(entry), scope=scope or self._scope_of(event_id))
        return entry

    def append_audits(self, entries: list[dict[str, Any]]) -> list[AuditEntry]:
        """``append_audit`` for many (same keyword fields per dict); the chain is built in order."""
        return [self.append_audit(**kw) for kw in entries]

    def _scope_of(self, event_id: str) -> str:
        event = self.get_event(event_id)
        return event_scope(event) if event is not None else self.code

    def _committed_tail(self) -> tuple[int, str]:
        if self._audit_tail is None:
            self._audit_tail = self._read_tail()
        return self._audit_tail

    def _read_tail(self) -> tuple[int, str]:
        last = self._conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
        return (int(last[0][0]), str(last[0][1])) if last else (0, audit_chain.GENESIS)

    def remote_audit_head(self, node: str) -> tuple[int, str] | None:
        """(seq, hash) of the newest replicated audit entry from ``node`` (the client's witness)."""
        with self.lock:
            row = self.conn.execute(
                "SELECT seq, hash FROM audit_remote WHERE node = ? ORDER BY seq DESC LIMIT 1", [node]).fetchall()
        return (row[0][0], row[0][1]) if row else None

    def _select(self, entity: Any, rest: str, params: list[Any], *, flush: bool = True) -> list[Any]:
        """``SELECT <entity's columns> <rest>`` as entities (``rest``: FROM … WHERE … ORDER BY …).
        ``flush=False`` for keyed reads whose staged rows the caller has already looked at."""
        cols = column_names(entity)
        with self.lock:
            conn = self.conn if flush else self._conn
            rows = conn.execute(f"SELECT {', '.join(cols)} {rest}", params).fetchall()
        return [entity(**dict(zip(cols, r))) for r in rows]

    def audit_entries(self, event_id: str | None = None) -> list[AuditEntry]:
        if event_id:
            return self._select(AuditEntry, "FROM audit_log WHERE event_id = ? ORDER BY seq", [event_id])
        return self._select(AuditEntry, "FROM audit_log ORDER BY seq", [])

    def verify_audit(self) -> audit_chain.Verdict:
        return audit_chain.verify(self.audit_entries())

    # ------------------------------------------------------------ directives and receipts

    def put_directive(self, directive: Directive, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("directives", (directive.id,), directive)
            self.log_change("directive", directive.id, "upsert", to_row(directive), origin, ",".join(directive.targets))

    def get_directive(self, directive_id: str) -> Directive | None:
        with self.lock:
            batch = self._mine()
            if batch is not None:
                for d in batch.keyed_seen["directives"].values():
                    if directive_id in (d.id, d.number):
                        return d  # type: ignore[no-any-return]
            found = self._select(Directive, "FROM directives WHERE id = ?", [directive_id], flush=False)
            if not found:
                found = self._select(Directive, "FROM directives WHERE number = ? LIMIT 1", [directive_id], flush=False)
        return found[0] if found else None

    def directives(self, limit: int = 100) -> list[Directive]:
        return self._select(Directive, "FROM directives ORDER BY created_at DESC LIMIT ?", [limit])

    def put_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("receipts", (receipt.directive_id, receipt.jurisdiction_code), receipt)
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert",
                            to_row(receipt), origin, receipt.jurisdiction_code)

    # A receipt known to exist or known to be new is written the same way: staged, then one bulk upsert.
    update_receipt = put_receipt
    insert_receipt = put_receipt

    def get_receipt(self, directive_id: str, jurisdiction_code: str) -> Receipt | None:
        """One recipient's receipt by its key (a directive to all streets has 1,031 of them)."""
        with self.lock:
            batch = self._mine()
            if batch is not None:
                hit = batch.keyed_seen["receipts"].get((directive_id, jurisdiction_code))
                if hit is not None:
                    return hit  # type: ignore[no-any-return]
            found = self._select(Receipt, "FROM receipts WHERE directive_id = ? AND jurisdiction_code = ?",
                                 [directive_id, jurisdiction_code], flush=False)
        return found[0] if found else None

    def receipts(self, directive_id: str) -> list[Receipt]:
        return self._select(Receipt, "FROM receipts WHERE directive_id = ? ORDER BY jurisdiction_code", [directive_id])

    # ------------------------------------------------------------ applied commands (idempotency)

    def applied_commands(self, ids: list[str]) -> dict[str, tuple[str, str, str]]:
        """Command id → (body hash, outcome, reply JSON) for the ids already applied (idempotency)."""
        if not ids:
            return {}
        with self.lock:
            out: dict[str, tuple[str, str, str]] = {}
            batch = self._mine()
            if batch is not None:
                wanted = set(ids)
                for r in batch.commands_seen:
                    if r[0] in wanted:
                        out[r[0]] = (r[1], r[3], r[4])
            rest = [i for i in ids if i not in out]
            if rest:
                rows = self._conn.execute(
                    "SELECT id, body_hash, outcome, reply FROM applied_commands WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [rest]).fetchall()
                out.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return out

    def record_commands(self, records: list[tuple[str, str, str, str, str]], actor: str) -> None:
        """Record (id, body hash, type, outcome, reply JSON) of applied commands, in the caller's transaction."""
        batch = self._require_tx()
        now = self.clock.now()
        batch.record_commands([(*r, actor, now) for r in records])


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
