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

    # ------------------------------------------------------------ the board's other inputs (issue 13)

    def open_supervised_counts(self, scope_code: str, now: float) -> dict[str, int]:
        """Per category: open events under supervision (督办), within a scope."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        with self.lock:
            rows = self.conn.execute(
                f"SELECT category_code, count(*) FROM event_queue WHERE {where} AND reported_at <= ? "
                "AND (escalation_level > 0 OR supervised_by IS NOT NULL) GROUP BY category_code",
                [*params, now]).fetchall()
        return {c: int(n) for c, n in rows}

    def closed_event_stats(self, scope_code: str, now: float, window_s: float, close_minutes: dict[str, float]
                           ) -> dict[str, dict[str, float]]:
        """Per category, over events closed (closed or reviewed) within the window: ``n``, ``days`` (sum of
        days from report to closed), ``ontime`` (closed before their profile's closing deadline; profile →
        minutes in ``close_minutes``), ``reviewed`` and ``called`` (with a call-back entry)."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        since = now - window_s
        case = "CASE sla_profile " + " ".join("WHEN ? THEN ?" for _ in close_minutes) + " ELSE NULL END" \
            if close_minutes else "NULL"
        case_params = [x for kv in close_minutes.items() for x in kv]
        sql = f"""
            WITH c AS (SELECT id, category_code, reported_at, closed_at, status, {case} AS close_min FROM events
                       WHERE {where} AND status IN ('closed', 'reviewed') AND closed_at BETWEEN ? AND ?),
            cb AS (SELECT DISTINCT event_id FROM {AUDIT_ALL} WHERE action = 'callback'
                   AND event_id IN (SELECT id FROM c))
            SELECT category_code, count(*), sum((closed_at - reported_at) / 86400.0),
                   count(*) FILTER (WHERE close_min IS NOT NULL AND closed_at <= reported_at + close_min * 60),
                   count(*) FILTER (WHERE status = 'reviewed'), count(cb.event_id)
            FROM c LEFT JOIN cb ON cb.event_id = c.id GROUP BY category_code"""
        with self.lock:
            rows = self.conn.execute(sql, [*case_params, *params, since, now]).fetchall()
        return {cat: {"n": float(n), "days": float(d or 0.0), "ontime": float(o), "reviewed": float(r),
                      "called": float(k)} for cat, n, d, o, r, k in rows}

    def callback_stats(self, scope_code: str, now: float, window_s: float) -> dict[str, tuple[int, int]]:
        """Per category: (call-backs within the window, those rated satisfied: 4 or 5 of 5). A call-back
        is an audit entry ``callback`` whose note starts ``rating N/5`` (``engine.callbacks``); an event
        called back twice counts its latest rating."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        if where != "TRUE":
            where = "e." + where
        sql = f"""
            WITH cb AS (SELECT event_id, arg_max(TRY_CAST(regexp_extract(note, '^rating ([1-5])/5', 1) AS INTEGER),
                               acted_at) AS rating
                        FROM {AUDIT_ALL} WHERE action = 'callback' AND acted_at BETWEEN ? AND ? GROUP BY event_id)
            SELECT e.category_code, count(*), count(*) FILTER (WHERE cb.rating >= 4)
            FROM cb JOIN events e ON e.id = cb.event_id WHERE cb.rating IS NOT NULL AND {where}
            GROUP BY e.category_code"""
        with self.lock:
            rows = self.conn.execute(sql, [now - window_s, now, *params]).fetchall()
        return {c: (int(n), int(s)) for c, n, s in rows}

    def reported_by_source(self, scope_code: str, now: float, window_s: float) -> dict[str, int]:
        """Source → events reported within the window, within a scope."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        with self.lock:
            rows = self.conn.execute(
                f"SELECT source, count(*) FROM events WHERE {where} AND reported_at BETWEEN ? AND ? GROUP BY source",
                [*params, now - window_s, now]).fetchall()
        return {s: int(n) for s, n in rows}

    def receipt_stats(self, scope_code: str, now: float, window_s: float) -> dict[str, int]:
        """Receipts of require-ack directives inside a scope: ``sent`` (directive created within the
        window), ``acked`` (of those, acknowledged or executed by the deadline), ``overdue`` (any age:
        past the deadline, still unacknowledged)."""
        from ..scope import CITY_CODE

        scoped = "TRUE" if scope_code == CITY_CODE else "starts_with(r.jurisdiction_code, ?)"
        params = [] if scope_code == CITY_CODE else [scope_code]
        sql = f"""
            SELECT count(*) FILTER (WHERE d.created_at BETWEEN ? AND ?),
                   count(*) FILTER (WHERE d.created_at BETWEEN ? AND ?
                                    AND least(coalesce(r.acknowledged_at, 1e18), coalesce(r.executed_at, 1e18))
                                        <= d.deadline_at),
                   count(*) FILTER (WHERE d.deadline_at < ? AND r.state NOT IN ('acknowledged', 'executed'))
            FROM receipts r JOIN directives d ON d.id = r.directive_id
            WHERE d.require_ack AND {scoped}"""
        since = now - window_s
        with self.lock:
            sent, acked, overdue = self.conn.execute(sql, [since, now, since, now, now, *params]).fetchall()[0]
        return {"sent": int(sent or 0), "acked": int(acked or 0), "overdue": int(overdue or 0)}

    def last_inspections(self, since: float, until: float) -> dict[str, tuple[float, str]]:
        """Risk point code → (time, note) of its latest inspection in [since, until]: one recorded by hand
        (audit ``inspect``) or a grid task on the point completed with a finding. The note starts with the
        result (``ok`` / ``hazard``), which is what ``engine.risk_grades`` reads."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT code, max(t), arg_max(note, t) FROM ("
                f"SELECT event_id AS code, acted_at AS t, note FROM {AUDIT_ALL} "
                "WHERE action = 'inspect' AND acted_at BETWEEN ? AND ? UNION ALL "
                "SELECT target, done_at, trim(finding || ' ' || coalesce(note, '')) FROM tasks "
                "WHERE status = 'done' AND finding IS NOT NULL AND target IS NOT NULL AND done_at BETWEEN ? AND ?"
                ") GROUP BY code", [since, until, since, until]).fetchall()
        return {c: (float(t), str(n)) for c, t, n in rows}

    def risk_grade_history(self, code: str | None = None) -> list[tuple[float, str, str]]:
        """(time, risk point code, note) of audited grade changes (audit ``risk_grade``), oldest first."""
        cond, params = ("AND event_id = ?", [code]) if code else ("", [])
        with self.lock:
            rows = self.conn.execute(
                f"SELECT acted_at, event_id, note FROM {AUDIT_ALL} WHERE action = 'risk_grade' {cond} "
                "ORDER BY acted_at, seq", params).fetchall()
        return [(float(t), str(c), str(n)) for t, c, n in rows]

    def last_risk_grades(self) -> dict[str, str]:
        """Risk point code → the grade its latest audited change recorded (``to_status`` holds the colour)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT event_id, arg_max(to_status, acted_at) FROM {AUDIT_ALL} WHERE action = 'risk_grade' "
                "GROUP BY event_id").fetchall()
        return {c: str(g) for c, g in rows}

    # ------------------------------------------------------------ figures fed through 一表通

    def feed_figure(self, name: str, scope_code: str, measured_at: float, value: float, source: str) -> None:
        """Record one figure value for a jurisdiction (a form, another system). Local data, not replicated."""
        with self.tx():
            self.conn.execute("INSERT OR REPLACE INTO figures VALUES (?, ?, ?, ?, ?)",
                              [name, scope_code, measured_at, value, source])

    def latest_figures(self, scope_code: str, until: float) -> dict[str, list[tuple[str, float, float]]]:
        """Figure name → [(jurisdiction, measured_at, value)] of each jurisdiction's latest value in scope."""
        from ..scope import CITY_CODE

        scoped = "TRUE" if scope_code == CITY_CODE else "starts_with(scope_code, ?)"
        params = [] if scope_code == CITY_CODE else [scope_code]
        with self.lock:
            rows = self.conn.execute(
                f"SELECT name, scope_code, max(measured_at), arg_max(value, measured_at) FROM figures "
                f"WHERE {scoped} AND measured_at <= ? GROUP BY name, scope_code", [*params, until]).fetchall()
        out: dict[str, list[tuple[str, float, float]]] = {}
        for name, scope, at, value in rows:
            out.setdefault(name, []).append((str(scope), float(at), float(value)))
        return out

    # ------------------------------------------------------------ 考评 and 事件热榜 (engine.evaluation)

    def evaluation_rows(self, scope_code: str, since: float, until: float, column: str
                        ) -> list[tuple[str, int, int, int, float, int, int, int, int]]:
        """Per unit (``column``: district_code, street_code or assignee) over events reported in
        [since, until] within a scope: (unit, events, closed, overdue (ever supervised for lateness),
        sum of response minutes, responded, call-backs, satisfied (4–5), dissatisfied (1–2))."""
        from ..scope import sql_filter

        if column not in ("district_code", "street_code", "assignee"):
            raise ValueError(f"cannot rank by {column!r}")
        where, params = sql_filter(scope_code)
        if where != "TRUE":
            where = "e." + where
        sql = f"""
            WITH ev AS (SELECT e.id, e.{column} AS unit, e.reported_at, e.status, e.escalation_level FROM events e
                        WHERE {where} AND e.reported_at BETWEEN ? AND ? AND e.{column} IS NOT NULL
                        AND e.status NOT IN ('merged', 'rejected') AND e.parent_id IS NULL),
            a AS (SELECT event_id, action, acted_at, to_status, from_status, note FROM {AUDIT_ALL}
                  WHERE event_id IN (SELECT id FROM ev)),
            resp AS (SELECT event_id, min(acted_at) AS t FROM a
                     WHERE to_status IS NOT NULL AND to_status NOT IN ('reported', 'merged', 'rejected')
                     AND to_status IS DISTINCT FROM from_status GROUP BY event_id),
            cb AS (SELECT event_id, arg_max(TRY_CAST(regexp_extract(note, '^rating ([1-5])/5', 1) AS INTEGER),
                          acted_at) AS rating FROM a WHERE action = 'callback' GROUP BY event_id)
            SELECT ev.unit, count(*), count(*) FILTER (WHERE ev.status IN ('closed', 'reviewed')),
                   count(*) FILTER (WHERE ev.escalation_level > 0),
                   coalesce(sum((resp.t - ev.reported_at) / 60.0), 0), count(resp.t),
                   count(cb.rating), count(*) FILTER (WHERE cb.rating >= 4), count(*) FILTER (WHERE cb.rating <= 2)
            FROM ev LEFT JOIN resp ON resp.event_id = ev.id LEFT JOIN cb ON cb.event_id = ev.id
            GROUP BY ev.unit"""
        with self.lock:
            rows = self.conn.execute(sql, [*params, since, until]).fetchall()
        return [(str(u), int(n), int(c), int(o), float(rs), int(rn), int(k), int(s), int(b))
                for u, n, c, o, rs, rn, k, s, b in rows]

    def hot_rows(self, scope_code: str, since: float, until: float, limit: int = 10
                 ) -> dict[str, list[tuple[str, float]]]:
        """The 事件热榜 within a scope: event id → measure, best first, for ``reported`` (reports on one
        incident: itself, those merged into it or flagged its duplicate, its sub-tasks and grouped alarms),
        ``open`` (open longest, seconds), ``escalated`` (supervision steps) and ``supervised`` (督办 entries:
        the sweep's and upper tiers' requests) — over events reported in [since, until] or still open."""
        from ..scope import sql_filter

        where, params = sql_filter(scope_code)
        base = (f"SELECT id, reported_at, status, escalation_level FROM events WHERE {where} "
                "AND status NOT IN ('merged', 'rejected') AND parent_id IS NULL "
                "AND (reported_at BETWEEN ? AND ? OR (closed_at IS NULL AND reported_at <= ?))")
        bparams = [*params, since, until, until]
        queries = {
            "reported": (f"""WITH b AS ({base}),
                r AS (SELECT coalesce(merged_into, duplicate_of, parent_id) AS target FROM events
                      WHERE coalesce(merged_into, duplicate_of, parent_id) IN (SELECT id FROM b))
                SELECT b.id, 1 + count(r.target) AS n FROM b LEFT JOIN r ON r.target = b.id GROUP BY b.id
                HAVING n > 1 ORDER BY n DESC, b.id LIMIT ?""", [*bparams, limit]),
            "open": (f"""WITH b AS ({base}) SELECT id, ? - reported_at FROM b
                WHERE status NOT IN ('closed', 'reviewed') ORDER BY reported_at, id LIMIT ?""",
                     [*bparams, until, limit]),
            "escalated": (f"""WITH b AS ({base}) SELECT id, escalation_level FROM b WHERE escalation_level > 0
                ORDER BY escalation_level DESC, reported_at, id LIMIT ?""", [*bparams, limit]),
            "supervised": (f"""WITH b AS ({base}) SELECT b.id, count(*) AS n FROM b JOIN {AUDIT_ALL} a
                ON a.event_id = b.id WHERE a.action IN ('supervise', 'supervise_request')
                GROUP BY b.id ORDER BY n DESC, b.id LIMIT ?""", [*bparams, limit]),
        }
        out: dict[str, list[tuple[str, float]]] = {}
        with self.lock:
            for key, (sql, qparams) in queries.items():
                out[key] = [(str(i), float(v)) for i, v in self.conn.execute(sql, qparams).fetchall()]
        return out
