"""Queries for engine.runways and engine.review, as a mixin of ``Store`` (sensors: ``store.sensors``).

Readings and indicator history are local telemetry and derived figures, not
replicated entities: they stay out of the change log (the events a reading
opens are logged like any other).
"""

from __future__ import annotations

from ..domain.entities import AuditEntry, Event
from ..domain.schema import column_names
from .rows import EVENT_SELECT, event_from_row
from .sensors import SensorQueries

# Local and replicated audit entries read as one stream.
_AUDIT_ALL = (
    "(SELECT seq, acted_at, event_id, action, from_status, to_status, actor, role, tier, node, note, prev_hash, hash "
    "FROM audit_log UNION ALL SELECT seq, acted_at, event_id, action, from_status, to_status, actor, role, tier, node, "
    "note, prev_hash, hash FROM audit_remote)"
)


class EngineQueries(SensorQueries):
    """Queries for runways and reviews (mixed into ``Store``); sensors' are in ``store.sensors``."""

    def category_event_counts(self, scope_code: str, now: float, window_s: float = 86400.0
                               ) -> dict[str, dict[str, int]]:
        """Per category, within a scope: open, overdue (open past their stage deadline),
        reported in the window and closed in the window — two grouped scans."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        since = now - window_s
        out: dict[str, dict[str, int]] = {}
        with self.lock:
            rows = self.conn.execute(
                f"SELECT category_code, count(*), count(*) FILTER (WHERE due_at < ?) FROM event_queue "
                f"WHERE {where} AND reported_at <= ? GROUP BY category_code", [now, *params, now]).fetchall()
            for cat, n_open, n_over in rows:
                out.setdefault(cat, {}).update(open=int(n_open), overdue=int(n_over))
            rows = self.conn.execute(
                "SELECT category_code, count(*) FILTER (WHERE reported_at BETWEEN ? AND ?), "
                "count(*) FILTER (WHERE closed_at BETWEEN ? AND ? AND status IN ('closed', 'reviewed')) FROM events "
                f"WHERE {where} AND (reported_at BETWEEN ? AND ? OR closed_at BETWEEN ? AND ?) GROUP BY category_code",
                [since, now, since, now, *params, since, now, since, now]).fetchall()
        for cat, n_rep, n_closed in rows:
            out.setdefault(cat, {}).update(reported=int(n_rep), closed=int(n_closed))
        for counts in out.values():
            for key in ("open", "overdue", "reported", "closed"):
                counts.setdefault(key, 0)
        return out

    def first_response_stats(self, scope_code: str, now: float, first_position: dict[str, int],
                              positions: dict[str, int], window_s: float = 86400.0) -> dict[str, tuple[float, int]]:
        """Per category: (sum of minutes from report to the first SLA milestone, events) over events
        whose first milestone was reached within the window.

        ``first_position`` maps an SLA profile to the loop position of its first
        milestone; ``positions`` maps each status to its loop position. The
        milestone is reached at the earliest audit entry moving the event to a
        status at or past that position (local or replicated audit alike).
        """
        from ..scope import sql_filter

        if not first_position:
            return {}
        where, params = sql_filter(scope_code)
        if where != "TRUE":  # the fragment names one column of ``events``; qualify it for the join
            where = "e." + where
        pos_case = "CASE a.to_status " + " ".join("WHEN ? THEN ?" for _ in positions) + " ELSE -1 END"
        pos_params = [x for kv in positions.items() for x in kv]
        first_case = "CASE e.sla_profile " + " ".join("WHEN ? THEN ?" for _ in first_position) + " ELSE 1000 END"
        first_params = [x for kv in first_position.items() for x in kv]
        since = now - window_s
        # Only events with some milestone entry inside the window can qualify; the min over all their
        # entries then decides whether the first milestone itself fell in the window.
        sql = f"""
            WITH a AS (SELECT event_id, acted_at, to_status FROM {_AUDIT_ALL} WHERE to_status IS NOT NULL AND acted_at <= ?),
            recent AS (SELECT DISTINCT event_id FROM a WHERE acted_at >= ?),
            reached AS (
                SELECT e.category_code AS cat, e.reported_at AS rep, min(a.acted_at) AS t
                FROM a JOIN events e ON e.id = a.event_id
                WHERE a.event_id IN (SELECT event_id FROM recent) AND {where} AND {pos_case} >= {first_case}
                GROUP BY e.id, e.category_code, e.reported_at)
            SELECT cat, sum((t - rep) / 60.0), count(*) FROM reached WHERE t >= ? GROUP BY cat"""
        with self.lock:
            rows = self.conn.execute(sql, [now, since, *params, *pos_params, *first_params, since]).fetchall()
        return {cat: (float(s), int(n)) for cat, s, n in rows}

    def indicator_last_recorded(self, scope_code: str) -> dict[str, float]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT indicator_code, max(measured_at) FROM indicator_history WHERE scope_code = ? GROUP BY 1",
                [scope_code]).fetchall()
        return {c: t for c, t in rows}

    def append_indicator_history(self, scope_code: str, measured_at: float,
                                  rows: list[tuple[str, float, str]]) -> int:
        """Record (indicator_code, value, colour) points at ``measured_at`` for a scope, in one statement."""
        if not rows:
            return 0
        codes, values, colours = (list(c) for c in zip(*rows))
        with self.tx():
            self.conn.execute(
                "INSERT OR REPLACE INTO indicator_history SELECT unnest(?::VARCHAR[]), ?, ?, unnest(?::DOUBLE[]), "
                "unnest(?::VARCHAR[])", [codes, scope_code, measured_at, values, colours])
        return len(rows)

    def indicator_series(self, scope_code: str, points: int, until: float) -> dict[str, list[tuple[float, float]]]:
        """Indicator code → its last ``points`` recorded (measured_at, value), oldest first."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT indicator_code, measured_at, value FROM (SELECT *, row_number() OVER "
                "(PARTITION BY indicator_code ORDER BY measured_at DESC) AS rn FROM indicator_history "
                "WHERE scope_code = ? AND measured_at <= ?) WHERE rn <= ? ORDER BY indicator_code, measured_at",
                [scope_code, until, points]).fetchall()
        out: dict[str, list[tuple[float, float]]] = {}
        for code, t, v in rows:
            out.setdefault(code, []).append((t, v))
        return out

    def indicator_red_intervals(self, scope_code: str, since: float, until: float
                                 ) -> dict[str, list[tuple[float, float]]]:
        """Indicator code → intervals within [since, until] it spent red: a recorded colour holds
        until the next point, the last one until ``until``."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT indicator_code, greatest(measured_at, ?), least(nxt, ?) FROM ("
                "SELECT indicator_code, measured_at, colour, lead(measured_at, 1, ?) OVER "
                "(PARTITION BY indicator_code ORDER BY measured_at) AS nxt FROM indicator_history "
                "WHERE scope_code = ? AND measured_at <= ?) WHERE colour = 'red' AND nxt > ? "
                "ORDER BY indicator_code, measured_at",
                [since, until, until, scope_code, until, since]).fetchall()
        out: dict[str, list[tuple[float, float]]] = {}
        for code, a, b in rows:
            if b > a:
                out.setdefault(code, []).append((a, b))
        return out

    def event_audit(self, event_id: str) -> list[AuditEntry]:
        """An event's audit entries from this node and replicated ones, in time order."""
        return self._select(AuditEntry, f"FROM {_AUDIT_ALL} WHERE event_id = ? ORDER BY acted_at, node, seq",
                            [event_id])

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

    def bulk_load_remote_audit(self, table) -> int:
        """Load an Arrow table of audit rows as entries replicated from other nodes (benchmarks)."""
        cols = column_names(AuditEntry)
        with self.tx():
            self._register("_bulk_audit", table)
            try:
                self.conn.execute(f"INSERT INTO audit_remote SELECT {', '.join(cols)} FROM _bulk_audit")
            finally:
                self.conn.unregister("_bulk_audit")
        return table.num_rows
