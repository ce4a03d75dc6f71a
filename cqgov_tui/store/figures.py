"""Figures counted from events and the audit log for the runways and reviews (per category, within a scope)."""

from __future__ import annotations

from .base import StoreCore
from .rows import AUDIT_ALL


class EventFigures(StoreCore):
    """Counts and durations over events and audit entries (mixed into ``Store``)."""

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
            WITH a AS (SELECT event_id, acted_at, to_status FROM {AUDIT_ALL} WHERE to_status IS NOT NULL AND acted_at <= ?),
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
