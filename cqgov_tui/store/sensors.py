"""Sensor tables — readings, per-sensor state, roll-ups — and every SQL statement on them.

Why it is shaped like this: a district has ~319,000 sensors reporting every
5 minutes (≈ 92M readings a day). Ingest used to find each sensor's latest
reading and running alarm by scanning all readings and all events per batch,
so it slowed as history grew. Now:

* **State in memory, durable in keyed form.** Per sensor: the latest reading
  (time, value), the latest sensor event it reported and whether its alarm
  episode still runs (``SensorState``). The process holds all of it in a dict
  loaded once from the keyed ``sensor_state``; a batch reads only the dict and
  writes only its readings plus one tiny row. Episode changes (rare) are
  upserted into ``sensor_state`` in the batch's transaction; latest readings
  are folded into it by the scheduler every few minutes, because a keyed
  upsert of 250 rows into a 319,000-row table costs 25–50 ms in DuckDB, more
  than a whole batch may. Readings are the journal: after a crash (folded
  generation behind) the start-up takes each sensor's newer readings from
  ``sensor_readings`` once.
* **A generation counter** (``sensor_state_gen``, one row), bumped in the same
  transaction as each batch, tells the process whether its dict is what the
  store committed: after a rolled-back transaction it is behind, and the dict
  undoes the batches that never committed.
* **Episodes follow the change log.** The rule stays the one the engine always
  had — a sensor's running episode is the latest ``source = sensor`` event it
  reported that has no ``alarm_clear`` audit entry — but it is maintained from
  the change log (event rows and ``alarm_clear`` entries, local or replicated
  from another tier) past a remembered ``seq``, so it costs nothing while no
  event changes. If the log was compacted past that point, the state is
  rebuilt from ``events``/audit once.
* **Readings** are appended in bulk and have no per-row index (monotonic times
  per sensor are enforced from the state). Beyond a retention window
  (``store_meta`` ``sensor_retention_s``, default 2 days) they are summarised
  into ``sensor_rollup`` buckets (count/min/max/mean) and deleted, a bounded
  chunk per transaction, so ingest never waits long.

Readings and roll-ups are local telemetry: never in the change log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable

from ..domain.entities import Event, SensorState
from .base import StoreCore
from .connection import scalar

RETENTION_KEY = "sensor_retention_s"
BUCKET_KEY = "sensor_rollup_bucket_s"
DEFAULT_RETENTION_S = 2 * 86400.0
# Hourly buckets: at a 5-minute reporting cadence a 5-minute bucket holds one reading and saves nothing.
DEFAULT_BUCKET_S = 3600.0
_UNDO_KEPT = 256
_FLOOR_KEY = "log_floor"  # sync.changelog.FLOOR_KEY: changes at or below it were compacted away
_STATE_COLS = "sensor_code, last_at, last_value, event_id, event_at, episode_event_id"

# The backfill of migration 5, kept here for rebuilds (the migration's copy stays literal).
_REBUILD = """
WITH r AS (SELECT sensor_code, max(measured_at) AS last_at, arg_max(value, measured_at) AS last_value
           FROM sensor_readings GROUP BY sensor_code),
e AS (SELECT reporter, id, reported_at FROM events WHERE source = 'sensor'
      QUALIFY row_number() OVER (PARTITION BY reporter ORDER BY reported_at DESC, id DESC) = 1),
c AS (SELECT event_id FROM audit_log WHERE action = 'alarm_clear'
      UNION SELECT event_id FROM audit_remote WHERE action = 'alarm_clear')
SELECT coalesce(r.sensor_code, e.reporter), r.last_at, r.last_value, e.id, e.reported_at,
       CASE WHEN e.id IS NULL OR e.id IN (SELECT event_id FROM c) THEN NULL ELSE e.id END
FROM r FULL OUTER JOIN e ON e.reporter = r.sensor_code"""


class _Memory:
    """The process's copy of the sensor state as of generation ``gen`` (see the module docstring)."""

    def __init__(self, gen: int, folded_gen: int, seq: int, states: dict[str, SensorState]):
        self.gen = gen
        self.folded_gen = folded_gen
        self.seq = seq
        self.states = states
        self.by_event = {s.event_id: s.sensor_code for s in states.values() if s.event_id}
        # (gen after, gen before, seq before, {code: previous state or None}) per batch not yet known committed
        self.undo: list[tuple[int, int, int, dict[str, SensorState | None]]] = []
        self.dirty: set[str] = set()  # last_at/last_value newer than sensor_state's

    def begin(self) -> dict[str, SensorState | None]:
        """Start one change (one batch): returns the record its previous states go into."""
        previous: dict[str, SensorState | None] = {}
        # Inside a transaction its own generation reads back, so what committed is never known here:
        # keep the last few changes (a rolled-back transaction holds a few batches), reload beyond.
        del self.undo[:-_UNDO_KEPT]
        self.undo.append((self.gen + 1, self.gen, self.seq, previous))
        self.gen += 1
        return previous

    def put(self, previous: dict[str, SensorState | None], state: SensorState) -> None:
        code = state.sensor_code
        if code not in previous:
            previous[code] = self.states.get(code)
        self.states[code] = state
        if state.event_id:
            self.by_event[state.event_id] = code

    def roll_back_to(self, gen: int) -> bool:
        """Undo the batches after ``gen`` (they never committed); False if that history is gone."""
        while self.undo and self.undo[-1][0] > gen:
            _, before, seq, previous = self.undo.pop()
            for code, state in previous.items():
                if state is None:
                    self.states.pop(code, None)
                else:
                    self.states[code] = state
            self.gen, self.seq = before, seq
        return self.gen == gen


@dataclass
class RollupResult:
    rolled: int = 0  # raw readings summarised and deleted
    buckets: int = 0  # roll-up rows written
    done: bool = True  # nothing older than the cutoff is left


def _in_list(values: list[object]) -> str:
    return ", ".join("?" for _ in values)


class SensorQueries(StoreCore):
    """Sensor readings, state and roll-ups (mixed into ``Store``)."""

    _sensor_mem: _Memory | None = None  # loaded on first use (per process: it owns the file)
    _rollup_from: float | None = None  # where the last roll-up chunk ended

    if TYPE_CHECKING:  # from EventRows, beside this in Store
        def get_event(self, event_id: str) -> Event | None: ...

    # ------------------------------------------------------------ state

    def _sensor_memory(self) -> _Memory:
        """The in-memory state, checked against the committed (or this transaction's) generation."""
        with self.lock:
            gen, folded, seq = self.conn.execute("SELECT gen, folded_gen, seq FROM sensor_state_gen").fetchall()[0]
            mem = self._sensor_mem
            if mem is not None and mem.gen != gen and not (mem.gen > gen and mem.roll_back_to(gen)):
                mem = None
            if mem is None:
                mem = self._load_sensor_memory(gen, folded, seq)
                self._sensor_mem = mem
            mem.folded_gen = folded
            return mem

    def _load_sensor_memory(self, gen: int, folded: int, seq: int) -> _Memory:
        conn = self.conn
        states = {r[0]: SensorState(*r) for r in conn.execute(f"SELECT {_STATE_COLS} FROM sensor_state").fetchall()}
        mem = _Memory(gen, folded, seq, states)
        if folded != gen:
            # Readings stored since the last fold (the process stopped before folding them): per sensor,
            # everything newer than its folded reading — times only move forward per sensor.
            rows = conn.execute(
                "SELECT r.sensor_code, max(r.measured_at), arg_max(r.value, r.measured_at) FROM sensor_readings r "
                "LEFT JOIN sensor_state s ON s.sensor_code = r.sensor_code "
                "WHERE s.last_at IS NULL OR r.measured_at > s.last_at GROUP BY r.sensor_code").fetchall()
            for code, at, value in rows:
                st = states.get(code) or SensorState(code, None, None, None, None, None)
                states[code] = replace(st, last_at=at, last_value=value)
                mem.dirty.add(code)
        return mem

    def sensor_states(self, codes: Iterable[str] | None = None) -> dict[str, SensorState]:
        """Sensor code → its state (sensors never seen are absent), caught up with the change log."""
        with self.lock:
            mem = self._sensor_memory()
            if self.head() > mem.seq:  # events were logged since: follow them (a write, so a transaction)
                with self.tx():
                    mem = self._follow_changes(self._sensor_memory())
            if codes is None:
                return dict(mem.states)
            return {c: mem.states[c] for c in codes if c in mem.states}

    def _follow_changes(self, mem: _Memory) -> _Memory:
        """Apply sensor events and ``alarm_clear`` entries logged since the state last looked; returns
        the memory to use from here (a new one if the state had to be rebuilt)."""
        head = self.head()
        if head <= mem.seq:
            return mem
        if mem.seq < int(self.meta(_FLOOR_KEY, "0") or "0"):
            self.rebuild_sensor_state()  # the log no longer reaches back there
            return self._sensor_memory()
        rows = self.conn.execute(
            "SELECT entity, data->>'id', data->>'reporter', TRY_CAST(data->>'reported_at' AS DOUBLE), "
            "data->>'event_id' FROM changes WHERE seq > ? AND seq <= ? AND ("
            "(entity = 'event' AND data->>'source' = 'sensor' AND data->>'reporter' IS NOT NULL "
            " AND data->>'reported_at' IS NOT NULL) "
            "OR (entity = 'audit' AND data->>'action' = 'alarm_clear')) ORDER BY seq",
            [mem.seq, head]).fetchall()
        previous = mem.begin()
        changed: set[str] = set()
        for entity, event_id, reporter, reported_at, cleared_id in rows:
            if entity == "event":
                st = mem.states.get(reporter) or SensorState(reporter, None, None, None, None, None)
                if st.event_id is None or (reported_at, event_id) > (st.event_at, st.event_id):
                    mem.put(previous, replace(st, event_id=event_id, event_at=reported_at,
                                              episode_event_id=event_id))
                    changed.add(reporter)
                continue
            code = mem.by_event.get(cleared_id)
            cur = mem.states.get(code) if code is not None else None
            if code is not None and cur is not None and cur.event_id == cleared_id and cur.episode_event_id:
                mem.put(previous, replace(cur, episode_event_id=None))
                changed.add(code)
        mem.seq = head
        self._write_states(mem, [mem.states[c] for c in sorted(changed)])
        return mem

    def _write_states(self, mem: _Memory, states: list[SensorState]) -> None:
        """Persist this change: the generation row, and the given states' rows (episode changes: rare)."""
        conn = self.conn
        if states:
            cols = [list(c) for c in zip(*[(s.sensor_code, s.last_at, s.last_value, s.event_id, s.event_at,
                                            s.episode_event_id) for s in states])]
            conn.execute("INSERT OR REPLACE INTO sensor_state SELECT unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), "
                         "unnest(?::DOUBLE[]), unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), unnest(?::VARCHAR[])", cols)
        conn.execute("UPDATE sensor_state_gen SET gen = ?, seq = ?", [mem.gen, mem.seq])

    def rebuild_sensor_state(self) -> None:
        """Recompute every sensor's state from readings, events and audit (a full scan: repairs only)."""
        with self.tx():
            conn = self.conn
            gen = scalar(conn, "SELECT gen FROM sensor_state_gen") + 1
            conn.execute("DELETE FROM sensor_state")
            conn.execute(f"INSERT INTO sensor_state {_REBUILD}")
            conn.execute("UPDATE sensor_state_gen SET gen = ?, folded_gen = ?, seq = ?", [gen, gen, self.head()])
            self._sensor_mem = None

    def fold_sensor_state(self) -> int:
        """Write the latest readings held in memory into ``sensor_state`` (the scheduler's job, every few
        minutes, and at a clean stop); returns the sensors written."""
        with self.tx():
            mem = self._sensor_memory()
            if mem.folded_gen == mem.gen and not mem.dirty:
                return 0
            states = [mem.states[c] for c in sorted(mem.dirty) if c in mem.states]
            self._write_states(mem, states)
            self.conn.execute("UPDATE sensor_state_gen SET folded_gen = gen")
            mem.folded_gen = mem.gen
            mem.dirty = set()
        return len(states)

    # ------------------------------------------------------------ readings

    def record_readings(self, rows: list[tuple[str, float, float]]) -> int:
        """Append accepted readings (sensor_code, measured_at, value; time order per sensor) and move
        each sensor's latest reading forward; then take in the events the batch itself logged."""
        self._require_tx()
        if not rows:
            return 0
        # The caller read sensor_states in this same transaction, under the lock: its check stands.
        mem = self._sensor_mem or self._sensor_memory()
        self.insert_readings(rows)
        last: dict[str, tuple[float, float]] = {}
        for code, at, value in rows:
            last[code] = (at, value)
        previous = mem.begin()
        for code, (at, value) in last.items():
            st = mem.states.get(code)
            mem.put(previous, SensorState(code, at, value, None, None, None) if st is None else
                    SensorState(code, at, value, st.event_id, st.event_at, st.episode_event_id))
        mem.dirty.update(last)
        if self._follow_changes(mem) is not mem:  # rebuilt from the tables, this batch included
            return len(rows)
        if mem.undo and mem.undo[-1][3] is previous:  # no events followed: the generation is still to write
            self._write_states(mem, [])
        return len(rows)

    def insert_readings(self, rows: list[tuple[str, float, float]]) -> int:
        """Append readings (sensor_code, measured_at, value) in one statement; caller validated them."""
        self._require_tx()
        if not rows:
            return 0
        codes, times, values = (list(c) for c in zip(*rows))
        # List parameters, not a registered Arrow view: registering fails while an earlier
        # statement of this transaction still holds its (unfetched) result.
        self.conn.execute("INSERT INTO sensor_readings SELECT unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), "
                          "unnest(?::DOUBLE[])", [codes, times, values])
        return len(rows)

    def latest_readings(self, codes: Iterable[str] | None = None, until: float | None = None
                        ) -> dict[str, tuple[float, float]]:
        """Sensor code → (measured_at, value) of its latest reading (at or before ``until``)."""
        states = self.sensor_states(codes)
        out = {c: (s.last_at, s.last_value) for c, s in states.items()
               if s.last_at is not None and s.last_value is not None}
        if until is None:
            return out
        ahead = sorted(c for c, (t, _) in out.items() if t > until)
        for c in ahead:  # a device clock ran ahead: look those few up among the raw readings
            del out[c]
        if ahead:
            with self.lock:
                rows = self.conn.execute(
                    "SELECT sensor_code, max(measured_at), arg_max(value, measured_at) FROM sensor_readings "
                    "WHERE list_contains(?, sensor_code) AND measured_at <= ? GROUP BY sensor_code",
                    [ahead, until]).fetchall()
            out.update({c: (t, v) for c, t, v in rows})
        return out

    def readings_of(self, sensor_code: str, since: float, until: float) -> list[tuple[float, float]]:
        """One sensor's raw readings in [since, until] (those still inside the retention window)."""
        with self.lock:
            return [tuple(r) for r in self.conn.execute(
                "SELECT measured_at, value FROM sensor_readings WHERE sensor_code = ? AND measured_at BETWEEN ? AND ? "
                "ORDER BY measured_at", [sensor_code, since, until]).fetchall()]

    def sensor_alarm_events(self, codes: Iterable[str]) -> dict[str, Event]:
        """Sensor code → the event of its alarm episode still running (keyed: state, then the event by id)."""
        return self.episode_events(self.sensor_states(codes))

    def episode_events(self, states: dict[str, SensorState]) -> dict[str, Event]:
        """Sensor code → the event of its running episode, for states just read (keyed lookups by id)."""
        out: dict[str, Event] = {}
        for code, st in states.items():
            if st.episode_event_id:
                event = self.get_event(st.episode_event_id)
                if event is not None:  # archived away: no episode to attach to
                    out[code] = event
        return out

    # ------------------------------------------------------------ retention

    def readings_retention(self) -> tuple[float, float]:
        """(retention window, roll-up bucket) in seconds, from store_meta or the defaults."""
        return (float(self.meta(RETENTION_KEY, None) or DEFAULT_RETENTION_S),
                float(self.meta(BUCKET_KEY, None) or DEFAULT_BUCKET_S))

    def roll_up_readings(self, now: float, max_rows: int = 50_000) -> RollupResult:
        """Summarise and delete one bounded chunk of raw readings older than the retention window.

        Only whole buckets before the cutoff are rolled up. One chunk is at most
        ``max_rows`` readings (a large bucket is split by sensor), in its own
        transaction; call again until ``done``.
        """
        retention, bucket = self.readings_retention()
        cutoff = math.floor((now - retention) / bucket) * bucket
        result = RollupResult()
        with self.tx():
            conn = self.conn
            # Where the last chunk ended (all older readings are rolled up), so a chunk does not scan the
            # whole table for its start; the first pass after a start looks it up once. A reading that
            # arrives later than the window (a device's backlog) is rolled up after the next start.
            oldest = self._rollup_from
            if oldest is None:
                oldest = scalar(conn, "SELECT min(measured_at) FROM sensor_readings")
            if oldest is None or oldest >= cutoff:
                self._rollup_from = cutoff if oldest is not None else None
                return result
            start = math.floor(oldest / bucket) * bucket
            end = cutoff
            n = scalar(conn, "SELECT count(*) FROM sensor_readings WHERE measured_at >= ? AND measured_at < ?",
                             [start, end])
            if n > max_rows:  # one bucket at a time, split by sensor when even that is too large
                end = start + bucket
                n = scalar(conn, "SELECT count(*) FROM sensor_readings WHERE measured_at >= ? AND measured_at < ?",
                                 [start, end])
            parts = max(1, math.ceil(n / max_rows))
            where = "measured_at >= ? AND measured_at < ?"
            params: list = [start, end]
            if parts > 1:
                where += " AND hash(sensor_code) % ? = 0"
                params.append(parts)
            result.buckets = scalar(conn, 
                "INSERT INTO sensor_rollup SELECT sensor_code, floor(measured_at / ?) * ? AS b, ?, count(*), "
                f"min(value), max(value), avg(value) FROM sensor_readings WHERE {where} GROUP BY sensor_code, b",
                [bucket, bucket, bucket, *params])
            result.rolled = scalar(conn, f"DELETE FROM sensor_readings WHERE {where}", params)
            result.done = end >= cutoff and parts == 1
        self._rollup_from = end if parts == 1 else start  # committed: remembered
        return result

    def rollups_of(self, sensor_code: str, since: float, until: float) -> list[tuple[float, int, float, float, float]]:
        """(bucket_start, n, min, max, mean) of one sensor's buckets starting in [since, until]; rows of
        one bucket rolled up in several passes (late readings) are combined."""
        with self.lock:
            return [tuple(r) for r in self.conn.execute(
                "SELECT bucket_start, sum(n), min(min), max(max), sum(mean * n) / sum(n) FROM sensor_rollup "
                "WHERE sensor_code = ? AND bucket_start BETWEEN ? AND ? GROUP BY bucket_start ORDER BY bucket_start",
                [sensor_code, since, until]).fetchall()]
