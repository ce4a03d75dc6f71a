"""Queries the tier server and federation need, as a mixin of ``Store`` (every SQL statement stays in the store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..domain.entities import Event
from ..errors import BadInput

if TYPE_CHECKING:
    from .store import Store


class ServerQueries:
    """Queries the tier server and federation need (mixed into ``Store``)."""

    def upsert_event_copy(self: "Store", event: Event, origin: str | None = None) -> tuple[bool, Event | None]:
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

    def event_counts_by(self: "Store", column: str, origin_tier: str | None = None) -> dict[str, int]:
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

    def event_ids(self: "Store") -> list[str]:
        with self.lock:
            return [r[0] for r in self.conn.execute("SELECT id FROM events ORDER BY id").fetchall()]

    def count_rows(self: "Store", table_name: str) -> int:
        if table_name not in ("events", "directives", "receipts", "audit_log", "changes", "event_queue",
                              "sensor_readings", "applied_commands"):
            raise BadInput(f"unknown table {table_name!r}")
        with self.lock:
            return int(self.conn.execute(f"SELECT count(*) FROM {table_name}").fetchall()[0][0])

    def duplicate_event_ids(self: "Store") -> int:
        """Rows sharing an id would break the primary key; counted for the demo's own check."""
        with self.lock:
            return int(self.conn.execute("SELECT count(*) - count(DISTINCT id) FROM events").fetchall()[0][0])
