"""Export old history to Parquet, then drop it from the store (``cqgov store archive``).

A district store takes ~92M readings a day; even rolled up (``store.sensors``)
and with closed events piling up, history has to leave the live file at some
point without being lost. This writes what is older than a cutoff to Parquet
files — readable by DuckDB or any Parquet engine — and deletes exactly the
rows it wrote, in one store transaction:

* ``sensor_readings/``: raw readings measured before the cutoff;
* ``sensor_rollup/``: roll-up buckets that end at or before the cutoff;
* ``events/``: events in a final status (closed, reviewed, merged, rejected)
  since before the cutoff (``closed_at``, else their last update), except
  those an open event still points at (parent, merged into, duplicate of,
  inhibited by) and a sensor's running alarm episode. Open events never go;
* ``audit/``: the audit entries of those events (local and replicated),
  exported as a copy: they stay in the store, so the hash chain still verifies.

Replication: deleting an event writes nothing to the change log. Replicas and
upper tiers that hold a copy keep it (a dropped closed event simply stays
there); a replica that later takes a fresh snapshot does not get it back. So
archive the store of the tier server that owns the history, never a replica.

Each kind goes to its own subdirectory (one schema per directory), one file
per run named by the cutoff and run time, so ``SELECT * FROM
'DIR/events/*.parquet'`` reads every archived event.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from ..domain.entities import TERMINAL
from .connection import scalar

if TYPE_CHECKING:
    from .store import Store

_FINAL = tuple(sorted(s.value for s in TERMINAL))
KINDS = ("sensor_readings", "sensor_rollup", "events", "audit")


@dataclass
class ArchiveResult:
    cutoff: float
    out_dir: str
    rows: dict[str, int] = field(default_factory=dict)  # kind → rows exported (and, but audit, dropped)
    files: dict[str, str] = field(default_factory=dict)  # kind → Parquet file written

    def to_dict(self) -> dict:
        return {"cutoff": self.cutoff, "out_dir": self.out_dir, "rows": dict(self.rows), "files": dict(self.files)}


def _literal(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def archive(store: Store, cutoff: float, out_dir: str) -> ArchiveResult:
    """Export everything older than ``cutoff`` (epoch seconds) to Parquet under ``out_dir``, then drop it.

    All of it or nothing: the files are written inside the store transaction
    that deletes the rows, and removed again if that transaction fails.
    """
    result = ArchiveResult(cutoff, os.path.abspath(out_dir))
    stamp = f"before-{int(cutoff)}-at-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    written: list[str] = []
    c = repr(float(cutoff))  # COPY takes no parameters; a float's repr is an exact literal
    selects = {
        "sensor_readings": f"SELECT * FROM sensor_readings WHERE measured_at < {c}",
        "sensor_rollup": f"SELECT * FROM sensor_rollup WHERE bucket_start + bucket_s <= {c}",
        "events": "SELECT e.* FROM events e JOIN _archive_ids a ON a.id = e.id",
        "audit": ("SELECT 'local' AS copied_from, * FROM audit_log WHERE event_id IN (SELECT id FROM _archive_ids) "
                  "UNION ALL SELECT 'remote', * FROM audit_remote WHERE event_id IN (SELECT id FROM _archive_ids)"),
    }
    try:
        with store.tx():
            conn = store.conn
            final = ", ".join(f"'{s}'" for s in _FINAL)
            conn.execute("CREATE OR REPLACE TEMP TABLE _archive_ids AS "
                         f"SELECT id FROM events WHERE status IN ({final}) AND coalesce(closed_at, updated_at) < ? "
                         "AND id NOT IN (SELECT x FROM (SELECT unnest([parent_id, merged_into, duplicate_of, "
                         "inhibited_by]) AS x FROM event_queue) WHERE x IS NOT NULL) "
                         "AND id NOT IN (SELECT episode_event_id FROM sensor_state WHERE episode_event_id IS NOT NULL)",
                         [cutoff])
            for kind in KINDS:
                n = scalar(conn, f"SELECT count(*) FROM ({selects[kind]})")
                result.rows[kind] = n
                if not n:
                    continue
                os.makedirs(os.path.join(out_dir, kind), exist_ok=True)
                path = os.path.join(out_dir, kind, f"{kind}-{stamp}.parquet")
                written.append(path)
                conn.execute(f"COPY ({selects[kind]}) TO {_literal(path)} (FORMAT PARQUET, COMPRESSION ZSTD)")
                result.files[kind] = os.path.abspath(path)
            dropped = {
                "sensor_readings": scalar(conn, f"DELETE FROM sensor_readings WHERE measured_at < {c}"),
                "sensor_rollup": scalar(conn, 
                    f"DELETE FROM sensor_rollup WHERE bucket_start + bucket_s <= {c}"),
                "events": scalar(conn, "DELETE FROM events WHERE id IN (SELECT id FROM _archive_ids)"),
            }
            for kind, n in dropped.items():
                if n != result.rows[kind]:  # cannot happen in one transaction on an exclusive store; never guess
                    raise RuntimeError(f"archive: exported {result.rows[kind]} {kind} rows but would drop {n}")
            conn.execute("DROP TABLE _archive_ids")
    except BaseException:
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        raise
    store.invalidate_caches()  # events left the table under the store's remembered rows
    return result
