"""Store benchmark: bulk load, the console's queue query, map colour counts, file size.

Every figure is measured beside a baseline in the same run, and a store call
and its baseline are timed in alternation so a noisy neighbour on the shared
machine slows both alike. ``ratio`` is always value / baseline.
"""

from __future__ import annotations

import os
import random
import tempfile
import time

import duckdb
import numpy as np

from bench.synth import COLOURS, DISTRICT_CODES, OPEN_STATUSES, synth_events
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Event
from cqgov_tui.domain.schema import columns
from cqgov_tui.store import init_store

# Filters a dispatcher actually sets: a stage of the loop and a severity band.
STATUS_FILTERS = (
    list(OPEN_STATUSES),
    ["reported", "verified", "assessed"],
    ["dispatched", "accepted", "on_scene"],
    ["disposed", "feedback"],
    ["reported"],
)
COLOUR_FILTERS = (
    list(COLOURS),
    ["red", "orange"],
    ["red", "orange", "yellow"],
    ["red"],
    ["yellow", "blue", "green"],
)
_TERMINAL = ("closed", "reviewed", "merged", "rejected")


def row(name, value, unit, baseline=None, baseline_name="", note="", target=None, target_ok=None) -> dict:
    ratio = value / baseline if baseline else None
    return {
        "name": name, "value": value, "unit": unit, "baseline": baseline, "baseline_name": baseline_name,
        "ratio": ratio, "note": note, "target": target, "target_ok": target_ok,
    }


def _ms(fn, *args, **kw) -> float:
    t0 = time.perf_counter()
    fn(*args, **kw)
    return (time.perf_counter() - t0) * 1000.0


def _pct(samples, q) -> float:
    return float(np.percentile(np.asarray(samples), q))


def _queue_params(rng: random.Random, count: int) -> list[dict]:
    out = []
    for _ in range(count):
        out.append(
            {
                # One console in five is the city-wide view.
                "district": None if rng.random() < 0.2 else rng.choice(DISTRICT_CODES),
                "statuses": rng.choice(STATUS_FILTERS),
                "colours": rng.choice(COLOUR_FILTERS),
            }
        )
    return out


def _python_queue(open_events: list[Event], district, statuses, colours, limit=200) -> list[Event]:
    """The queue query over an in-memory list of open events (the 'cache it in Python' design)."""
    st, co = set(statuses), set(colours)
    hits = [
        e for e in open_events
        if (district is None or e.district_code == district) and e.status in st and e.colour in co
    ]
    hits.sort(key=lambda e: (Colour(e.colour).rank, e.due_at is None, e.due_at or 0.0, e.reported_at))
    return hits[:limit]


def _plain_ddl(name: str) -> str:
    cols = [f"{c.name} {c.duck}{'' if c.nullable else ' NOT NULL'}" for c in columns(Event)]
    return f"CREATE TABLE {name} ({', '.join(cols)})"


def _file_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, path + ".wal") if os.path.exists(p))


def run(n: int = 1_000_000, quick: bool = False, seed: int = 0, reps: int = 200, warmup: int = 20) -> list[dict]:
    if quick:
        n = min(n, 100_000)
    rows: list[dict] = []
    t0 = time.perf_counter()
    table = synth_events(n, seed=seed)
    synth_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="cqgov-bench-") as tmp:
        # Raw ceiling: the same Arrow table into a plain table, no key, no queue copy.
        raw_path = os.path.join(tmp, "plain.duckdb")
        raw = duckdb.connect(raw_path)
        raw.execute("SET enable_progress_bar = false")
        raw.execute(_plain_ddl("events"))
        raw.register("_arrow_events", table)
        t0 = time.perf_counter()
        raw.execute("BEGIN TRANSACTION")
        raw.execute("INSERT INTO events SELECT * FROM _arrow_events")
        raw.execute("COMMIT")
        raw_load_s = time.perf_counter() - t0
        raw.unregister("_arrow_events")

        store_path = os.path.join(tmp, "store.duckdb")
        store = init_store(store_path, "city", "500000")
        # DuckDB draws a progress bar on stdout for statements over 2 s (here: the load).
        store.conn.execute("SET enable_progress_bar = false")
        try:
            t0 = time.perf_counter()
            store.bulk_load_events(table)
            load_s = time.perf_counter() - t0
            n_open = store.count_events(open_only=True)
            rows.append(
                row(
                    "bulk load (bulk_load_events)", n / load_s, "events/s", n / raw_load_s,
                    "Arrow → plain DuckDB table, no PK",
                    note=f"{n:,} events ({n_open:,} open) in {load_s:.1f}s vs {raw_load_s:.1f}s; synth {synth_s:.1f}s",
                )
            )
            del table  # the queries below should not compete with 0.5 GB of Arrow for cache

            rows += _queue_rows(store, seed, reps, warmup)
            rows += _colour_rows(store, raw, reps, warmup)
        finally:
            store.close()
            raw.close()

        size, raw_size = _file_size(store_path), _file_size(raw_path)
        rows.append(
            row(
                "file size", size / 1e6, "MB", raw_size / 1e6, "plain table file, no PK",
                note=f"{size / n:.0f} B/event; events + event_queue + PK index" if n else "",
            )
        )
    return rows


def _queue_rows(store, seed: int, reps: int, warmup: int) -> list[dict]:
    params = _queue_params(random.Random(seed), warmup + reps)
    open_events = store.open_events()
    queue_ms, plain_ms, py_ms, full_ms = [], [], [], []
    mismatches = 0
    for i, p in enumerate(params):
        # Alternate the designs per draw so drift in machine load hits all of them.
        tq = time.perf_counter()
        listed = store.queue_rows(**p, limit=200)  # what the console's list reads
        t0 = time.perf_counter()
        got = store.queue(**p, limit=200)
        t1 = time.perf_counter()
        ref = store.queue(**p, limit=200, include_closed=True)
        t2 = time.perf_counter()
        py = _python_queue(open_events, p["district"], p["statuses"], p["colours"])
        t3 = time.perf_counter()
        if i >= warmup:
            queue_ms.append((t0 - tq) * 1000)
            full_ms.append((t1 - t0) * 1000)
            plain_ms.append((t2 - t1) * 1000)
            py_ms.append((t3 - t2) * 1000)
        ids = [e.id for e in got]
        if ids != [e.id for e in ref] or ids != [e.id for e in py] or ids != [r.id for r in listed]:
            mismatches += 1
    check = "same 200 rows from every design" if not mismatches else f"{mismatches} draws DIFFER between designs"
    p95 = _pct(queue_ms, 95)
    return [
        row("queue p50 (event_queue, list columns)", _pct(queue_ms, 50), "ms", _pct(plain_ms, 50),
            "full rows from the full events table", note=f"{reps} random district/status/colour draws, limit 200; {check}"),
        row("queue p95 (event_queue, list columns)", p95, "ms", _pct(plain_ms, 95), "full rows from the full events table",
            target="≤ 10 ms", target_ok=p95 <= 10.0),
        row("queue p95 (event_queue, full rows)", _pct(full_ms, 95), "ms", _pct(plain_ms, 95),
            "full rows from the full events table", note="what a detail-heavy caller pays"),
        row("queue p95 vs Python", p95, "ms", _pct(py_ms, 95), "filter+sort a list of open Events in memory",
            note=f"{len(open_events):,} open events held as dataclasses"),
    ]


def _colour_rows(store, raw, reps: int, warmup: int) -> list[dict]:
    queue_ms, full_ms, plain_ms = [], [], []
    plain_sql = (
        "SELECT district_code, colour, count(*) FROM events WHERE district_code IS NOT NULL "
        f"AND status NOT IN {_TERMINAL} GROUP BY ALL"
    )
    for i in range(warmup + reps):
        a = _ms(store.colour_counts, "district")
        b = _ms(store.colour_counts, "district", include_closed=True)
        c = _ms(lambda: raw.execute(plain_sql).fetchall())
        if i >= warmup:
            queue_ms.append(a)
            full_ms.append(b)
            plain_ms.append(c)
    got = store.colour_counts("district")
    want: dict[str, dict[str, int]] = {}
    for code, colour, k in raw.execute(plain_sql).fetchall():
        want.setdefault(code, {})[colour] = k
    check = "same counts as plain-table query" if got == want else "counts DIFFER from plain-table query"
    p95 = _pct(queue_ms, 95)
    return [
        row("colour counts p50 (district)", _pct(queue_ms, 50), "ms", _pct(full_ms, 50), "group-by over full events table",
            note=f"{reps} reps; {len(got)} districts; {check}"),
        row("colour counts p95 (district)", p95, "ms", _pct(full_ms, 95), "group-by over full events table",
            target="≤ 20 ms", target_ok=p95 <= 20.0),
        row("colour counts p95 vs open filter", p95, "ms", _pct(plain_ms, 95), "plain table WHERE status open",
            note="same answer as the store; baseline runs on the no-PK plain file"),
    ]
