"""Runway board recomputation over a million events, against one query per indicator.

The store gets ``synth_events(n)`` (categories mapped onto the catalogue's 40)
plus one replicated audit entry per event that reached its first milestone,
so every metric kind has data. ``compute_board`` (a few grouped scans per
board) is timed in alternation with the baseline — each event indicator
evaluated by its own query, the obvious way to write it — over the same
store, for the city and for one district. Both must agree on every value.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.synth import CATEGORY_CODES, DEFAULT_END, synth_events
from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.catalogue.metrics import parse_metric
from cqgov_tui.domain.entities import AuditEntry
from cqgov_tui.domain.schema import arrow_schema
from cqgov_tui.engine.lifecycle import position
from cqgov_tui.engine.runways import _positions, compute_board, shown_in
from cqgov_tui.scope import sql_filter
from cqgov_tui.store import init_store

NOW = DEFAULT_END
DAY = 86400.0


def row(name, value, unit, baseline=None, baseline_name="", note="", target=None, target_ok=None) -> dict:
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
            "ratio": value / baseline if baseline else None, "target": target, "target_ok": target_ok, "note": note}


def _events(n: int, catalogue) -> pa.Table:
    table = synth_events(n)
    # synth uses c01…c40; map them one-to-one onto the catalogue's category codes
    codes = list(catalogue.categories)
    mapping = pa.array([codes[CATEGORY_CODES.index(c)] for c in CATEGORY_CODES])
    idx = pc.index_in(table["category_code"], pa.array(CATEGORY_CODES))
    return table.set_column(table.schema.get_field_index("category_code"), "category_code", pc.take(mapping, idx))


def _audit(events: pa.Table, seed: int = 1) -> pa.Table:
    """One replicated 'dispatch' entry per event past its first milestone, minutes after its report."""
    rng = np.random.default_rng(seed)
    status = events["status"].to_numpy(zero_copy_only=False)
    reached = ~np.isin(status, ["reported", "merged", "rejected"])
    n = int(reached.sum())
    reported = events["reported_at"].to_numpy()[reached]
    acted = np.minimum(reported + rng.exponential(20 * 60.0, n), NOW - 1)
    schema = arrow_schema(AuditEntry)
    cols = {
        "seq": pa.array(np.arange(1, n + 1, dtype=np.int64)), "acted_at": pa.array(acted),
        "event_id": events["id"].filter(pa.array(reached)),
        "action": pa.array(["dispatch"] * n), "from_status": pa.array(["verified"] * n),
        "to_status": pa.array(["dispatched"] * n), "actor": pa.array(["bench"] * n),
        "role": pa.array(["dispatcher"] * n), "tier": pa.array(["district"] * n),
        "node": pa.array(["district-bench"] * n), "note": pa.array([""] * n),
        "prev_hash": pa.array([""] * n), "hash": pa.array([""] * n),
    }
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in schema], schema=schema)


def _per_indicator(store, catalogue, now: float, scope: str) -> dict[str, float | None]:
    """Baseline: every event indicator computed by its own query."""
    where, params = sql_filter(scope)
    first = {p.code: position(p.stages[0].milestone) for p in catalogue.sla_profiles.values()}
    pos = _positions()
    out: dict[str, float | None] = {}
    conn = store.conn
    for code, ind in catalogue.indicators.items():
        if not shown_in(ind.places, scope):
            continue  # a 特色子跑道's indicator is on its own places' boards only (the board leaves it out too)
        m = parse_metric(ind.metric)
        if m.kind not in ("open", "overdue_ratio", "reported_24h", "closed_24h", "mean_response_min"):
            continue
        cats = list(m.categories or catalogue.categories)
        cat_sql = f"category_code IN ({', '.join('?' for _ in cats)})"
        if m.kind == "open":
            out[code] = float(conn.execute(f"SELECT count(*) FROM event_queue WHERE {where} AND {cat_sql} AND reported_at <= ?",
                                           params + cats + [now]).fetchone()[0])
        elif m.kind == "overdue_ratio":
            n, late = conn.execute(f"SELECT count(*), count(*) FILTER (WHERE due_at < ?) FROM event_queue "
                                   f"WHERE {where} AND {cat_sql} AND reported_at <= ?", [now] + params + cats + [now]).fetchone()
            out[code] = round(100.0 * late / n, 2) if n else None  # no open event: nothing to measure
        elif m.kind == "reported_24h":
            out[code] = float(conn.execute(f"SELECT count(*) FROM events WHERE {where} AND {cat_sql} AND reported_at BETWEEN ? AND ?",
                                           params + cats + [now - DAY, now]).fetchone()[0])
        elif m.kind == "closed_24h":
            out[code] = float(conn.execute(
                f"SELECT count(*) FROM events WHERE {where} AND {cat_sql} AND closed_at BETWEEN ? AND ? "
                "AND status IN ('closed', 'reviewed')", params + cats + [now - DAY, now]).fetchone()[0])
        else:
            ewhere = where if where == "TRUE" else "e." + where
            pos_case = "CASE a.to_status " + " ".join(f"WHEN '{s}' THEN {p}" for s, p in pos.items()) + " ELSE -1 END"
            first_case = "CASE e.sla_profile " + " ".join(f"WHEN '{s}' THEN {p}" for s, p in first.items()) + " ELSE 1000 END"
            ecats = cat_sql.replace("category_code", "e.category_code")
            r = conn.execute(
                f"SELECT avg((t - rep) / 60.0), count(*) FROM (SELECT e.reported_at AS rep, min(a.acted_at) AS t "
                f"FROM (SELECT * FROM audit_log UNION ALL SELECT * FROM audit_remote) a JOIN events e ON e.id = a.event_id "
                f"WHERE {ewhere} AND {ecats} AND a.acted_at <= ? AND {pos_case} >= {first_case} GROUP BY e.id, e.reported_at) "
                "WHERE t >= ?", params + cats + [now, now - DAY]).fetchone()
            out[code] = round(r[0], 2) if r[1] else None
    return out


def _board_values(board) -> dict[str, float | None]:
    return {i.code: i.value for s in board.sectors for r in s.runways for sub in r.sub_runways for i in sub.indicators}


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    result = fn(*args, **kw)
    return (time.perf_counter() - t0) * 1000.0, result


def run(quick: bool = False, n: int | None = None, reps: int | None = None) -> list[dict]:
    n = n or (100_000 if quick else 1_000_000)
    reps = reps or (3 if quick else 7)
    catalogue = load_catalogue()
    len(catalogue.risk_points), len(catalogue.sensors)  # generate them outside the timings
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cqgov-bench-") as tmp:
        store = init_store(str(Path(tmp) / "runways.duckdb"), "city", "500000")
        try:
            events = _events(n, catalogue)
            load_ms, _ = _timed(store.bulk_load_events, events)
            audit = _audit(events)
            store.bulk_load_remote_audit(audit)
            open_n = store.count_events(open_only=True)
            for scope in ("500000", "500108"):
                board_ms, base_ms = [], []
                compute_board(store, catalogue, NOW, scope)  # warm caches alike for both
                _per_indicator(store, catalogue, NOW, scope)
                for _ in range(reps):
                    ms, board = _timed(compute_board, store, catalogue, NOW, scope)
                    board_ms.append(ms)
                    ms, baseline = _timed(_per_indicator, store, catalogue, NOW, scope)
                    base_ms.append(ms)
                values = _board_values(board)
                mismatched = [c for c, v in baseline.items() if v != values[c]]
                if mismatched:
                    raise AssertionError(f"board and per-indicator queries disagree on {mismatched[:3]}")
                value, base = statistics.median(board_ms), statistics.median(base_ms)
                rows.append(row(
                    f"runway board recompute, scope {scope}", round(value, 1), "ms", round(base, 1),
                    f"{len(baseline)} event indicators, one query each", target="≤ 1000 ms", target_ok=value <= 1000,
                    note=(f"{n:,} events ({open_n:,} open), {audit.num_rows:,} audit rows, {len(catalogue.indicators)} "
                          f"indicators; median of {reps}; values agree; load {load_ms / 1000:.1f} s")))
            rec_ms, board = _timed(compute_board, store, catalogue, NOW, "500000", record=True)
            plain_ms, _ = _timed(compute_board, store, catalogue, NOW, "500000")
            rows.append(row("runway board with history record", round(rec_ms, 1), "ms", round(plain_ms, 1),
                            "same board without recording", note=f"{board.recorded} history points written"))
        finally:
            store.close()
    return rows


if __name__ == "__main__":
    import json

    for r in run(quick=True):
        print(json.dumps(r, ensure_ascii=False))
