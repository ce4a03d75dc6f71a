"""Queries the tier server and federation need, as a mixin of ``Store`` (every SQL statement stays in the store)."""

from __future__ import annotations

from ..domain.entities import Event, Receipt, Status
from ..domain.schema import to_row
from ..errors import BadInput
from .rows import EVENT_COLUMNS, EVENT_PLACEHOLDERS, EVENT_SELECT, event_from_row, event_scope

class ServerQueries:
    """Queries the tier server and federation need (mixed into ``Store``)."""

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
            row = to_row(event)
            values = [row[c] for c in EVENT_COLUMNS]
            if current is None:
                self.conn.execute(f"INSERT INTO events VALUES ({EVENT_PLACEHOLDERS})", values)
            else:
                sets = ", ".join(f"{c} = ?" for c in EVENT_COLUMNS if c != "id")
                self.conn.execute(f"UPDATE events SET {sets} WHERE id = ?",
                                  [row[c] for c in EVENT_COLUMNS if c != "id"] + [event.id])
                self.conn.execute("DELETE FROM event_queue WHERE id = ?", [event.id])
            if Status(event.status).is_open:
                self.conn.execute(f"INSERT INTO event_queue VALUES ({EVENT_PLACEHOLDERS})", values)
            self.log_change("event", event.id, "create" if current is None else "update", row, origin, event_scope(event))
        return True, current

    def event_counts_by(self, column: str, origin_tier: str | None = None) -> dict[str, int]:
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

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM events ORDER BY id").fetchall()]

    def count_rows(self, table_name: str) -> int:
        if table_name not in ("events", "directives", "receipts", "audit_log", "changes", "event_queue",
                              "sensor_readings"):
            raise BadInput(f"unknown table {table_name!r}")
        with self.lock:
            return self.conn.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0]

    def duplicate_event_ids(self) -> int:
        """Rows sharing an id would break the primary key; counted for the demo's own check."""
        with self.lock:
            return self.conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchone()[0]

    def owned_overdue_events(self, now: float) -> list[Event]:
        """Open events past their deadline that this node owns (not copies federated from below)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT {EVENT_SELECT} FROM event_queue WHERE due_at < ? AND origin_node = ? ORDER BY due_at",
                [now, self.node]).fetchall()
        return [event_from_row(r) for r in rows]

    def get_receipt(self, directive_id: str, jurisdiction_code: str) -> Receipt | None:
        """One recipient's receipt by its key (a directive to all streets has 1,031 of them)."""
        found = self._select(Receipt, "FROM receipts WHERE directive_id = ? AND jurisdiction_code = ?",
                             [directive_id, jurisdiction_code])
        return found[0] if found else None

    def applied_commands(self, ids: list[str]) -> dict[str, tuple[str, str, str]]:
        """Command id → (body hash, outcome, reply JSON) for the ids already applied (idempotency)."""
        if not ids:
            return {}
        with self.lock:
            rows = self.conn.execute(
                "SELECT id, body_hash, outcome, reply FROM applied_commands WHERE list_contains(?, id)", [list(ids)]
            ).fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def record_commands(self, records: list[tuple[str, str, str, str, str]], actor: str) -> None:
        """Record (id, body hash, type, outcome, reply JSON) of applied commands, in the caller's transaction."""
        self._require_tx()
        if not records:
            return
        cols = list(zip(*records))
        now = self.clock.now()
        self.conn.execute(
            "INSERT INTO applied_commands SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), ?, ?",
            [list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), list(cols[4]), actor, now])

    def write_mark(self) -> tuple[int, int | None]:
        """Where this store's writes stand (change-log head, audit tail): equal marks, nothing written between."""
        with self.lock:
            return self.head(), self._audit_tail[0] if self._audit_tail is not None else None

    def update_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        """Overwrite a receipt known to exist (an UPDATE in place is cheaper than INSERT OR REPLACE)."""
        row = to_row(receipt)
        cols = [c for c in row if c not in ("directive_id", "jurisdiction_code")]
        with self.tx():
            self.conn.execute(
                f"UPDATE receipts SET {', '.join(f'{c} = ?' for c in cols)} WHERE directive_id = ? AND jurisdiction_code = ?",
                [row[c] for c in cols] + [receipt.directive_id, receipt.jurisdiction_code])
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert", row, origin,
                            receipt.jurisdiction_code)

    def insert_receipt(self, receipt: Receipt, origin: str | None = None) -> None:
        """Write a receipt known to be new (a plain INSERT; INSERT OR REPLACE costs twice as much)."""
        row = to_row(receipt)
        with self.tx():
            self.conn.execute(f"INSERT INTO receipts VALUES ({', '.join('?' for _ in row)})", list(row.values()))
            self.log_change("receipt", f"{receipt.directive_id}/{receipt.jurisdiction_code}", "upsert", row, origin,
                            receipt.jurisdiction_code)
