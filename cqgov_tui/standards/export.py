"""History beyond one machine: a store's events, directives, receipts, audit, readings and indicator
values as Hive-partitioned Parquet (``<kind>/tier=…/district=…/date=…/part-….parquet``), incremental.

Events, directives and receipts are exported as row *versions*: each run writes
the current row of every key the change log shows changed since the last run
(the cursor: store epoch and seq, kept in ``_cqgov/<node>.json`` under the
output directory). Audit entries are append-only, readings and indicator
values move forward per key (per-key cursors in ``_cqgov/<node>-*.parquet``).
So a re-run with nothing new writes nothing, and ``(id, version)``,
``(node, seq)`` and ``(key, measured_at)`` never repeat. Several stores (a
city, its districts, their streets) may export into one directory: the
``tier`` partition and the cursor file per node keep them apart.

A run first records what it is about to write; if it dies midway, the next run
removes that run's files before starting again, so nothing is doubled.
If the change log was compacted past the cursor, the run falls back to every
current row, minus the versions already in the directory.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import local
from ..domain.entities import AuditEntry, Directive, Event, IndicatorValue, Receipt, SensorReading
from ..domain.schema import arrow_schema, to_row
from ..errors import BadInput
from ..scope import CITY_CODE

if TYPE_CHECKING:
    import pyarrow as pa

    from ..store import Store

KINDS = ("events", "directives", "receipts", "audit", "readings", "indicators")
STATE_DIR = "_cqgov"
_ENTITY_KIND = {"event": "events", "directive": "directives", "receipt": "receipts", "audit": "audit"}
_CLASS = {"events": Event, "directives": Directive, "receipts": Receipt, "audit": AuditEntry,
          "readings": SensorReading, "indicators": IndicatorValue}
_KEYS = {"events": ("id", "version"), "directives": ("id", "version"), "receipts":
         ("directive_id", "jurisdiction_code", "version"), "audit": ("node", "seq"),
         "readings": ("sensor_code", "measured_at"), "indicators": ("indicator_code", "scope_code", "measured_at")}


def _day(t: float) -> str:
    return local(t).strftime("%Y-%m-%d")


def _district(code: str | None, fallback: str) -> str:
    if code and code[:6].isdigit() and len(code) >= 6:
        return code[:6]
    return fallback


def _targets_district(targets: list[str], fallback: str) -> str:
    districts = {t[:6] for t in targets if t.isdigit() and len(t) >= 6}
    return districts.pop() if len(districts) == 1 else (CITY_CODE if districts else fallback)


class _State:
    """The per-node cursor file, written atomically."""

    def __init__(self, root: Path, node: str):
        self.dir = root / STATE_DIR
        self.path = self.dir / f"{node}.json"
        self.node = node

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            raise BadInput(f"{self.path}: unreadable export cursor; move it away to export everything again") from None
        if not isinstance(data, dict):
            raise BadInput(f"{self.path}: not an export cursor")
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.part")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
        os.replace(tmp, self.path)

    def cursor_path(self, kind: str) -> Path:
        return self.dir / f"{self.node}-{kind}.parquet"


def _existing_keys(root: Path, kind: str, tier: str) -> set[tuple]:
    import pyarrow.dataset as ds

    folder = root / kind / f"tier={tier}"
    if not folder.exists():
        return set()
    table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table(columns=list(_KEYS[kind]))
    return set(zip(*(table.column(k).to_pylist() for k in _KEYS[kind])))


def _table(kind: str, rows: list[dict[str, Any]], tier: str) -> pa.Table:
    import pyarrow as pa

    schema = _schema(kind)
    for name in ("tier", "district", "date"):
        schema = schema.append(pa.field(name, pa.string()))
    for r in rows:
        if kind == "audit":
            r["actor_tier"] = r.pop("tier")
        r["tier"] = tier
    return pa.Table.from_pylist(rows, schema=schema)


def _schema(kind: str) -> pa.Schema:
    """The entity's Arrow schema; an audit entry's own ``tier`` (the actor's) is ``actor_tier`` here,
    since ``tier`` is the partition naming the store that exported it."""
    schema = arrow_schema(_CLASS[kind])
    if kind == "audit":
        i = schema.get_field_index("tier")
        schema = schema.set(i, schema.field(i).with_name("actor_tier"))
    return schema


def _write(root: Path, kind: str, table: pa.Table, basename: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.dataset as ds

    written: list[str] = []
    ds.write_dataset(
        table, str(root / kind), format="parquet",
        partitioning=ds.partitioning(pa.schema([("tier", pa.string()), ("district", pa.string()),
                                                ("date", pa.string())]), flavor="hive"),
        basename_template=basename + "-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
        file_visitor=lambda f: written.append(f.path))
    return written


def _remove_run(root: Path, run: str) -> int:
    gone = 0
    for kind in KINDS:
        folder = root / kind
        if folder.exists():
            for path in folder.rglob(f"{run}-*.parquet"):
                path.unlink()
                gone += 1
    return gone


def export_history(store: Store, out: str, *, catalogue: Any = None) -> dict[str, Any]:
    """One incremental run; returns counts per kind (rows written) and where the cursor now stands."""
    import pyarrow as pa

    from ..store import history

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BadInput(f"{out}: exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{out}: cannot create ({exc.strerror})") from None
    tier, node, fallback = store.tier.value, store.node, _district(store.code, CITY_CODE)
    state = _State(root, node)
    data = state.load()
    if data.get("epoch") not in (None, store.epoch):
        raise BadInput(f"{out} holds an export of another store with node {node} (epoch {data['epoch']}, this store "
                       f"{store.epoch}); export into a new directory")
    removed = _remove_run(root, data["pending"]) if data.get("pending") else 0
    after = int(data.get("seq", 0))
    head = store.head()
    run = f"part-{node}-{after}-{head}"
    state.save({**data, "epoch": store.epoch, "seq": after, "pending": run})

    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    compacted = after < head and history.log_floor(store) > after + 1
    if compacted:
        current = history.all_current(store)
        changes: dict[str, list[tuple[int, float, str, dict[str, Any], str]]] = {}
    else:
        changes = history.changed(store, after, head) if after < head else {}
        current = {
            "event": history.events_by_id(store, sorted({c[2] for c in changes.get("event", [])})),
            "directive": history.directives_by_id(store, sorted({c[2] for c in changes.get("directive", [])})),
            "receipt": history.receipts_by_key(store, sorted({c[2] for c in changes.get("receipt", [])})),
            "audit": [AuditEntry(**c[3]) for c in changes.get("audit", [])],
        }
    audit_scope = {(c[3].get("node"), c[3].get("seq")): c[4] for c in changes.get("audit", [])}
    for e in current["event"]:
        rows["events"].append({**to_row(e), "district": e.district_code, "date": _day(e.updated_at)})
    for d in current["directive"]:
        rows["directives"].append({**to_row(d), "district": _targets_district(d.targets, fallback),
                                   "date": _day(d.created_at)})
    for r in current["receipt"]:
        stamps = [t for t in (r.executed_at, r.acknowledged_at, r.read_at, r.delivered_at) if t is not None]
        rows["receipts"].append({**to_row(r), "district": _district(r.jurisdiction_code, fallback),
                                 "date": _day(stamps[0] if stamps else store.clock.now())})
    for a in current["audit"]:
        rows["audit"].append({**to_row(a), "district": _district(audit_scope.get((a.node, a.seq)), fallback),
                              "date": _day(a.acted_at)})
    if compacted:
        for kind in ("events", "directives", "receipts", "audit"):
            seen = _existing_keys(root, kind, tier)
            rows[kind] = [r for r in rows[kind] if tuple(r[k] for k in _KEYS[kind]) not in seen]

    counts: dict[str, int] = {}
    files: list[str] = []
    for kind in ("events", "directives", "receipts", "audit"):
        unique = {tuple(r[k] for k in _KEYS[kind]): r for r in rows[kind]}  # one row per version
        counts[kind] = len(unique)
        if unique:
            files += _write(root, kind, _table(kind, list(unique.values()), tier), run)

    cursors: dict[str, pa.Table] = {}
    for kind, table_name, keys in (("readings", "sensor_readings", ("sensor_code",)),
                                   ("indicators", "indicator_history", ("indicator_code", "scope_code"))):
        cursor = _load_cursor(state.cursor_path(kind), keys)
        new = history.newer_than(store, table_name, cursor)
        counts[kind] = new.num_rows
        if new.num_rows:
            files += _write(root, kind, _partitioned(kind, new, tier, fallback, catalogue), run)
            cursors[kind] = _advance(cursor, new, keys)
    for kind, table in cursors.items():
        _save_cursor(state.cursor_path(kind), table)
    state.save({"epoch": store.epoch, "seq": head, "pending": None, "node": node, "tier": tier, "code": store.code})
    return {"out": str(root), "node": node, "tier": tier, "from_seq": after, "to_seq": head, "rows": counts,
            "files": len(files), "compacted_log": compacted, "removed_unfinished": removed}


def _load_cursor(path: Path, keys: tuple[str, ...]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            raise BadInput(f"{path}: unreadable export cursor; move it away to export everything again") from None
    return pa.table({**{k: pa.array([], pa.string()) for k in keys}, "last_at": pa.array([], pa.float64())})


def _advance(cursor: pa.Table, new: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    import pyarrow as pa

    latest = new.group_by(list(keys)).aggregate([("measured_at", "max")]).rename_columns([*keys, "last_at"])
    merged = pa.concat_tables([cursor.select([*keys, "last_at"]), latest.select([*keys, "last_at"])])
    return merged.group_by(list(keys)).aggregate([("last_at", "max")]).rename_columns([*keys, "last_at"])


def _save_cursor(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".parquet.part")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _partitioned(kind: str, table: pa.Table, tier: str, fallback: str, catalogue: Any) -> pa.Table:
    import pyarrow as pa

    times = table.column("measured_at").to_pylist()
    if kind == "indicators":
        districts = [_district(s, fallback) for s in table.column("scope_code").to_pylist()]
    else:
        if catalogue is None:
            from ..catalogue.loader import load_catalogue

            catalogue = load_catalogue()
        grid: dict[str, str] = {}
        for code in set(table.column("sensor_code").to_pylist()):
            sensor = catalogue.sensors.get(code)
            point = catalogue.risk_points.get(sensor.risk_point_code) if sensor else None
            grid[code] = _district(point.grid_code if point else None, fallback)
        districts = [grid[c] for c in table.column("sensor_code").to_pylist()]
    schema = arrow_schema(_CLASS[kind])
    base = table.select(schema.names).cast(schema)
    return (base.append_column("tier", pa.array([tier] * base.num_rows, pa.string()))
            .append_column("district", pa.array(districts, pa.string()))
            .append_column("date", pa.array([_day(t) for t in times], pa.string())))
