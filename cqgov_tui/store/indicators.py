"""Indicator history: the runways' recorded values per scope (local derived figures, never replicated)."""

from __future__ import annotations

from .base import StoreCore


class IndicatorRows(StoreCore):
    """Indicator history (mixed into ``Store``)."""

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
