"""Grid tasks (网格任务) at district scale: generate a day's periodic tasks for 九龙坡区 and complete them.

谢家湾街道 did 33,649 grid tasks over 168 grids in one quarter; 九龙坡区 has 2,443
grids and 4,508 risk points, so its day is ~5,300 tasks (a patrol and a household
visit per grid, risk-point inspections by colour). Goal: generating and completing
a day's tasks for a district in at most 2 s, without holding the server's writer
long (completions arrive as command batches of at most 500, one transaction each).

Rows for ``bench/run.py``:

* ``tasks_day`` — ``generate_day`` + ``complete_tasks`` in batches of 500, through the store's unit of work
  (change log, audit, replication scope), vs the floor: the same rows inserted and then updated by plain DuckDB
  from Arrow, one statement each, in the same run.

``python bench/bench_tasks.py [--quick]`` prints the rows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cqgov_tui.catalogue.loader import load_catalogue  # noqa: E402
from cqgov_tui.clock import SimClock  # noqa: E402
from cqgov_tui.domain.entities import Role, Tier, User  # noqa: E402
from cqgov_tui.people import roster, tasks  # noqa: E402
from cqgov_tui.geo.registry import get_registry  # noqa: E402
from cqgov_tui.store import init_store  # noqa: E402

DISTRICT = "500107"  # 九龙坡区
STREET = "500107001"  # 谢家湾街道 (--quick)
BATCH = 500  # commands per batch at the server (sync.router.MAX_BATCH)
GOAL_S = 2.0
T0 = 1_795_000_000.0


def _world(path: str, scope: str):
    registry, catalogue = get_registry(), load_catalogue()
    len(catalogue.risk_points)  # generated on first use (a server has them loaded): not part of the measurement
    clock = SimClock(T0)
    store = init_store(path, "district", DISTRICT, clock=clock)
    grids = tasks.grids_of(registry, scope)
    text = "user,name,role,department,jurisdiction,phone,email,on_duty\n" + "\n".join(
        f"gw{i},网格员{i},grid_worker,,{g},139{i:08d},,yes" for i, g in enumerate(grids))
    roster.import_rows(store, registry, roster.parse_csv(text))
    tasks.load_templates()
    return store, registry, catalogue, clock


def _cpu() -> float:
    """This process's CPU time, DuckDB's threads included: on a loaded machine wall time mostly measures the
    other processes, so the row reports both."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _day(store, registry, catalogue, clock, scope: str) -> tuple[float, float, int]:
    admin = User("bench", "bench", Role.ADMIN, Tier.DISTRICT, DISTRICT)
    t, c = time.perf_counter(), _cpu()
    made = tasks.generate_day(store, registry, catalogue, scope, clock.now())
    ids = [x.id for x in store.tasks(scope_code=scope, day=made.day, limit=1_000_000)]
    for i in range(0, len(ids), BATCH):
        tasks.complete_tasks(store, [(x, None, "") for x in ids[i:i + BATCH]], admin)
    return time.perf_counter() - t, _cpu() - c, made.created


def _floor(path: str, store) -> float:
    """The same rows written by plain DuckDB: one INSERT from Arrow, then one UPDATE."""
    import duckdb
    import pyarrow as pa

    rows = store.conn.sql("SELECT * FROM tasks").to_arrow_table()
    conn = duckdb.connect(path)
    try:
        conn.register("rows", rows)
        conn.execute("CREATE TABLE tasks AS SELECT * FROM rows LIMIT 0")
        t = time.perf_counter()
        fresh = rows.set_column(rows.schema.get_field_index("status"), "status",
                                pa.array(["assigned"] * rows.num_rows))
        conn.register("fresh", fresh)
        conn.execute("INSERT INTO tasks SELECT * FROM fresh")
        conn.execute("UPDATE tasks SET status = 'done', done_at = 1, version = version + 1")
        return time.perf_counter() - t
    finally:
        conn.close()


def run(quick: bool = False) -> list[dict]:
    scope = STREET if quick else DISTRICT
    with tempfile.TemporaryDirectory() as d:
        store, registry, catalogue, clock = _world(os.path.join(d, "tasks.duckdb"), scope)
        try:
            value, cpu, n = _day(store, registry, catalogue, clock, scope)
            base = _floor(os.path.join(d, "floor.duckdb"), store)
        finally:
            store.close()
    name = "谢家湾街道" if quick else "九龙坡区"
    return [{
        "name": "tasks_day", "value": value, "unit": "s", "baseline": base,
        "baseline_name": "plain DuckDB insert+update of the same rows", "ratio": value / base if base else None,
        "target": f"≤ {GOAL_S:.0f} s", "target_ok": value <= GOAL_S,
        "cpu_s": round(cpu, 3),
        "note": f"{name}: {n:,} periodic tasks generated and completed (batches of {BATCH}), change log and audit "
                f"included; {cpu:.2f} s of CPU",
    }]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
