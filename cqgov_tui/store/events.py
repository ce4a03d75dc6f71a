"""Events: the hot reads (by id or number, open events near a place or in a district, overdue ones) from the
running transaction and the in-memory open-event index; the writes staged in the unit of work; the queue, map
and archive queries."""

from __future__ import annotations

import datetime
import re
from typing import Any, Iterable

from ..domain.entities import Event
from ..domain.schema import evolve, row_of
from ..errors import BadInput
from .base import StoreCore
from .open_events import OpenEvents
from .rows import COLOUR_RANK, EVENT_SELECT, QUEUE_COLUMNS, TERMINAL_VALUES, QueueRow, event_from_row, event_scope
from .unit import WriteBatch


# Human event numbers: <issuing tier's code>-<local date>-<daily serial> (stores from before numbers were
# city-unique used the code's last four digits; their numbers are still found).
_NUMBER = re.compile(r"[0-9A-Za-z]{1,12}-\d{8}-\d{5,}")


class EventRows(StoreCore):
    """Events and their queue (mixed into ``Store``)."""

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
            batch = self._mine()
            index = self._open_index()
            hits: dict[str, Event] = {}
            if batch is not None:
                if ref in batch.touched:
                    return batch.touched[ref]
                mine = batch.numbers.get(ref)
                if mine is not None and batch.touched[mine].number == ref:
                    hits[mine] = batch.touched[mine]
            if ref in index.by_id:
                return index.by_id[ref]
            numbered = index.by_number.get(ref)
            if numbered is not None and (batch is None or numbered not in batch.touched):
                hits.setdefault(numbered, index.by_id[numbered])
            if not hits:
                # The archive, by key: a number within the days it names, anything else as an id.
                stored = (self._archived_by_number(ref) if _NUMBER.fullmatch(ref) else
                          [event_from_row(r) for r in self._conn.execute(
                              f"SELECT {EVENT_SELECT} FROM events WHERE id = ?", [ref]).fetchall()])
                for e in stored:
                    hits.setdefault(e.id, batch.touched.get(e.id, e) if batch is not None else e)
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

    def open_event_links(self) -> list[tuple[float, str, str, str, str, str | None]]:
        """(reported_at, number, source, reporter, category_code, grid_code) of every open event: what risk
        grades link to points. From the index when it is loaded (or this thread's transaction lays its
        writes over it); else one narrow read of ``event_queue``, so a console's first runway board does
        not build the whole index (30k open events: ~1 s of Python) for six fields."""
        with self.lock:
            if self._open is None and self._mine() is None:
                rows = self._conn.execute("SELECT reported_at, number, source, reporter, category_code, grid_code "
                                          "FROM event_queue").fetchall()
                return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
        return [(e.reported_at, e.number, e.source, e.reporter, e.category_code, e.grid_code)
                for e in self.open_events()]

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

    def insert_event(self, event: Event, origin: str | None = None, *, known_new: bool = False) -> Event:
        """Stage a new event (``known_new``: the caller made its id or already checked it is free)."""
        with self.tx():
            if not known_new and self.get_event(event.id) is not None:
                raise BadInput(f"event {event.id} already exists")
            self._require_tx().stage_event(event, created=True)
            self.log_change("event", event.id, "create", event, origin, event_scope(event))
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
            changes = {c: getattr(event, c) for c in cols}
            if event.id in batch.created_change:
                merged = evolve(current, **changes)
                batch.stage_event(merged, created=True)
                batch.rewrite_create(event.id, merged)
                return merged
            merged = evolve(current, **changes, version=current.version + 1)
            batch.stage_event(merged, created=False, changed=[*cols, "version"])
            # The changed columns only, not a row of all of them.
            data = {"id": merged.id, **row_of(merged, [*cols, "version"])}
            self.log_change("event", merged.id, "update", data, origin, event_scope(merged))
        return merged

    def update_events(self, updates: list[tuple[Event, list[str]]], origin: str | None = None) -> list[Event]:
        """``update_event`` for many (sweeps); written with the rest of the transaction in bulk."""
        with self.tx():
            return [self.update_event(event, changed, origin) for event, changed in updates]

    def put_event_copy(self, event: Event, op: str, origin: str, *, exists: bool) -> None:
        """Stage a row as another node wrote it (its version kept) and log it (federation)."""
        self.stage_events([(event, exists)])
        self.log_change("event", event.id, op, event, origin, event_scope(event))

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
            self._open = None  # reloaded on next use, from the rows as they now stand

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

    def upsert_event_copy(self, event: Event, origin: str | None = None) -> tuple[bool, Event | None]:
        """Keep a copy of an event owned by another tier: written only when ``event.version`` is newer.

        Unlike ``update_event`` the version is the owner's, not bumped here, so a
        copy re-sent any number of times (or echoed back) is written at most once.
        Returns (written, previous row or None).
        """
        with self.tx():
            current = self.get_event(event.id)
            if current is not None and current.version >= event.version:
                return False, current
            self.put_event_copy(event, "create" if current is None else "update", origin or self.node,
                                exists=current is not None)
        return True, current

    def event_counts_by(self, column: str, origin_tier: str | None = None) -> dict[str, int]:
        """Events per district/street/origin node (demo summaries)."""
        if column not in ("district_code", "street_code", "origin_node", "origin_tier"):
            raise BadInput(f"cannot count events by {column!r}")
        sql = f"SELECT {column}, count(*) FROM events"
        params: list[str] = []
        if origin_tier:
            sql += " WHERE origin_tier = ?"
            params.append(origin_tier)
        with self.lock:
            rows = self.conn.execute(sql + " GROUP BY ALL", params).fetchall()
        return {str(k): int(n) for k, n in rows}

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM events ORDER BY id").fetchall()]

    def duplicate_event_ids(self) -> int:
        """Rows sharing an id would break the primary key; counted for the demo's own check."""
        with self.lock:
            return int(self.conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchall()[0][0])

    def duplicate_event_numbers(self) -> int:
        """Events whose number another event also carries (0 when numbers are city-unique, as they must be)."""
        with self.lock:
            return int(self.conn.execute(
                "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM events GROUP BY number HAVING n > 1)"
            ).fetchall()[0][0])

    def related_events(self, event: Event, window_s: float = 3600.0, box_deg: float = 0.01,
                        limit: int = 50) -> list[Event]:
        """Events linked to ``event`` (merged into it, duplicates, 多跨 parent/children/siblings, inhibited
        by it, the events it points at) and same-category events within ±window_s in a lon/lat box."""
        links = ["merged_into = ?", "duplicate_of = ?", "parent_id = ?", "inhibited_by = ?"]
        params: list = [event.id] * 4
        for ref in (event.merged_into, event.duplicate_of, event.parent_id, event.inhibited_by):
            if ref:
                links.append("id = ?")
                params.append(ref)
        if event.parent_id:
            links.append("parent_id = ?")
            params.append(event.parent_id)
        near = "(category_code = ? AND reported_at BETWEEN ? AND ?"
        params += [event.category_code, event.reported_at - window_s, event.reported_at + window_s]
        if event.lon is not None and event.lat is not None:
            near += " AND lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?)"
            params += [event.lon - box_deg, event.lon + box_deg, event.lat - box_deg, event.lat + box_deg]
        else:
            near += " AND district_code = ? AND street_code IS NOT DISTINCT FROM ?)"
            params += [event.district_code, event.street_code]
        links.append(near)
        sql = (f"SELECT {EVENT_SELECT} FROM events WHERE id <> ? AND ({' OR '.join(links)}) "
               f"ORDER BY reported_at LIMIT {int(limit)}")
        with self.lock:
            rows = self.conn.execute(sql, [event.id, *params]).fetchall()
        return [event_from_row(r) for r in rows]
