"""Sensors at district scale: the keyed state agrees with a full scan, survives restarts and rollbacks;
retention rolls up exactly; archive writes Parquet and drops only what it wrote; old stores migrate."""

from __future__ import annotations

import dataclasses
import os

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import SensorState
from cqgov_tui.engine import Engine
from cqgov_tui.engine.sensors import SensorMonitor, maintain
from cqgov_tui.store import init_store, open_store
from cqgov_tui.store.archive import archive
from cqgov_tui.store.connection import connect
from cqgov_tui.store.migrations import migrate
from cqgov_tui.store.sensors import _REBUILD, BUCKET_KEY, RETENTION_KEY

from factories import make_event

START = 1_795_000_000.0


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def sensors(catalogue):
    """Three methane sensors of 江北区, far enough apart not to be merge candidates."""
    found = []
    for s in sorted(catalogue.sensors.values(), key=lambda s: s.code):
        if s.kind != "methane" or not s.code.startswith("SN-500105"):
            continue
        p = catalogue.risk_points[s.risk_point_code]
        if all(abs(p.lon - q.lon) + abs(p.lat - q.lat) > 0.02
               for q in (catalogue.risk_points[f.risk_point_code] for f in found)):
            found.append(s)
        if len(found) == 3:
            return found
    raise AssertionError("fixtures lack three distant methane sensors")


def scanned(store) -> dict[str, SensorState]:
    """What a full scan of readings, events and audit says (the rule the engine always had)."""
    with store.lock:
        rows = store.conn.execute(_REBUILD).fetchall()
    return {r[0]: SensorState(*r) for r in rows}


def _episodes(states: dict[str, SensorState]) -> dict[str, str | None]:
    return {c: s.episode_event_id for c, s in states.items() if s.episode_event_id}


def _latest(states: dict[str, SensorState]) -> dict[str, tuple]:
    return {c: (s.last_at, s.last_value) for c, s in states.items() if s.last_at is not None}


def _agrees(store) -> None:
    held, truth = store.sensor_states(), scanned(store)
    assert _latest(held) == _latest(truth)
    assert _episodes(held) == _episodes(truth)


# A step: (sensor index, what) — a reading (value), or close/merge the sensor's running event.
_step = st.one_of(
    st.tuples(st.integers(0, 2), st.sampled_from([2.0, 12.0, 26.0, 30.0, 45.0])),
    st.tuples(st.integers(0, 2), st.sampled_from(["close", "merge"])),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_step, min_size=1, max_size=14), batch=st.integers(1, 3))
def test_keyed_state_matches_a_full_scan(tmp_path_factory, catalogue, sensors, steps, batch):
    db = str(tmp_path_factory.mktemp("state") / "s.duckdb")
    clock = SimClock(START)
    store = init_store(db, "district", "500105", clock=clock)
    engine = Engine(store, catalogue, clock=clock)
    monitor = SensorMonitor(engine)
    pending: list[tuple] = []

    def flush():
        if pending:
            monitor.ingest(list(pending))
            pending.clear()

    try:
        for i, (k, what) in enumerate(steps):
            code = sensors[k].code
            clock.advance(600)
            if isinstance(what, float):
                pending.append((code, clock.now(), what))
                if len(pending) >= batch:
                    flush()
                continue
            flush()
            running = store.sensor_alarm_events([code]).get(code)
            if running is None:
                continue
            # Close (or merge into a fresh citizen report) behind the monitor's back, as staff would.
            with store.tx():
                if what == "close":
                    store.update_event(dataclasses.replace(running, status="closed", closed_at=clock.now()),
                                       ["status", "closed_at"])
                else:
                    survivor = engine.report(category="septic_methane", title="merge target", text="t",
                                             lon=running.lon + 0.001, lat=running.lat, source="citizen")
                    store.update_event(dataclasses.replace(running, status="merged", merged_into=survivor.id),
                                       ["status", "merged_into"])
            _agrees(store)
        flush()
        _agrees(store)
        before = store.sensor_states()
        store.close()
        store = open_store(db, clock=clock)  # no fold: the start-up replays readings into the state
        assert store.sensor_states() == before
        _agrees(store)
    finally:
        store.close()


def test_restart_after_a_fold_and_a_rollback_keep_the_state(tmp_db, catalogue, sensors):
    a, b, _ = sensors
    clock = SimClock(START)
    store = init_store(tmp_db, "district", "500105", clock=clock)
    monitor = SensorMonitor(Engine(store, catalogue, clock=clock))
    monitor.ingest([(a.code, clock.advance(60), 30.0), (b.code, clock.now(), 3.0)])
    assert store.fold_sensor_state() == 2
    # A transaction that fails after the batch succeeded: the state forgets the batch with it.
    with pytest.raises(RuntimeError), store.tx():
        monitor.ingest([(a.code, clock.advance(60), 1.0), (b.code, clock.now(), 4.0)])
        raise RuntimeError("later command failed")
    held = store.sensor_states()
    assert held[b.code].last_value == 3.0 and held[a.code].episode_event_id is not None
    _agrees(store)
    monitor.ingest([(b.code, clock.advance(60), 5.0)])
    store.close()
    store = open_store(tmp_db, clock=clock)
    try:
        assert store.sensor_states()[b.code].last_value == 5.0
        assert store.latest_readings([a.code, b.code], until=clock.now() - 90) == {
            a.code: (START + 60, 30.0), b.code: (START + 60, 3.0)}
        _agrees(store)
    finally:
        store.close()


def test_an_episode_copied_from_another_tier_is_followed_through_the_change_log(tmp_db, sensors):
    sensor = sensors[0]
    clock = SimClock(START)
    district = init_store(tmp_db, "district", "500105", clock=clock)
    try:
        assert district.sensor_alarm_events([sensor.code]) == {}
        event = make_event(id="e-street", source="sensor", reporter=sensor.code, reported_at=clock.now(),
                           district_code="500105", origin_tier="street", origin_node="street-500105001")
        with district.tx():
            district.upsert_event_copy(event, origin="street-500105001")
        assert district.sensor_alarm_events([sensor.code])[sensor.code].id == event.id
        _agrees(district)
    finally:
        district.close()


def test_retention_rolls_old_readings_up_exactly(tmp_db):
    store = init_store(tmp_db, "district", "500105", clock=SimClock(START))
    try:
        store.set_meta(RETENTION_KEY, "7200")
        store.set_meta(BUCKET_KEY, "600")
        conn = duckdb.connect()
        # 3 sensors, a reading every 7 s over 3 hours before START
        rows = [(f"SN-{k}", START - 3 * 3600 + i * 7.0, float((i * 13 + k) % 17)) for k in range(3)
                for i in range(3 * 3600 // 7)]
        with store.tx():
            store.insert_readings(rows)
        cutoff = (START - 7200) // 600 * 600  # whole buckets only
        expected = conn.execute(
            "SELECT c, floor(t / 600) * 600 AS b, count(*), min(v), max(v), avg(v) FROM (SELECT unnest(?) c, "
            "unnest(?) t, unnest(?) v) WHERE t < ? GROUP BY c, b ORDER BY c, b",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], cutoff]).fetchall()
        chunks = 0
        while True:
            chunks += 1
            if store.roll_up_readings(START, max_rows=150).done:
                break
        assert chunks > 3  # bounded chunks
        got = [(c, *b) for c in ("SN-0", "SN-1", "SN-2") for b in store.rollups_of(c, 0, START)]
        assert [(c, b, n, lo, hi) for c, b, n, lo, hi, _ in got] == [(c, b, n, lo, hi) for c, b, n, lo, hi, _ in expected]
        assert all(abs(g[-1] - e[-1]) < 1e-9 for g, e in zip(got, expected))
        left = store.readings_of("SN-0", 0, START)
        assert left and min(t for t, _ in left) >= cutoff
        assert len(left) == sum(1 for r in rows if r[0] == "SN-0" and r[1] >= cutoff)
        assert maintain(store, START)["rolled"] == 0  # nothing older left
    finally:
        store.close()


def test_archive_writes_parquet_and_drops_only_what_it_wrote(tmp_path, catalogue, sensors):
    db, out = str(tmp_path / "a.duckdb"), str(tmp_path / "arch")
    clock = SimClock(START)
    store = init_store(db, "district", "500105", clock=clock)
    engine = Engine(store, catalogue, clock=clock)
    sensor = sensors[0]
    old = SensorMonitor(engine).ingest([(sensor.code, clock.now() - 40 * 86400 + i * 60, 30.0 if i == 0 else 1.0)
                                        for i in range(5)]).opened[0]
    with store.tx():
        store.update_event(dataclasses.replace(store.get_event(old), status="closed", closed_at=clock.now() - 35 * 86400),
                           ["status", "closed_at"])
    elsewhere = catalogue.risk_points[sensors[1].risk_point_code]
    still_open = engine.report(category="septic_methane", title="open", text="t", lon=elsewhere.lon,
                               lat=elsewhere.lat, source="citizen").id
    SensorMonitor(engine).ingest([(sensor.code, clock.now() - 60, 2.0)])
    with store.tx():
        store.insert_readings([(sensor.code, clock.now() - 30, 2.5)])
    audit_before = store.verify_audit()
    n_audit_old = len(store.event_audit(old))
    result = archive(store, clock.now() - 30 * 86400, out)
    try:
        assert result.rows["sensor_readings"] == 5 and result.rows["events"] == 1
        assert result.rows["audit"] == n_audit_old > 0
        assert store.get_event(old) is None and store.get_event(still_open) is not None
        assert len(store.readings_of(sensor.code, 0, clock.now())) == 2
        assert store.verify_audit() == audit_before  # audit entries are copied, the chain stays whole
        con = duckdb.connect()
        assert con.execute(f"SELECT id, status FROM '{out}/events/*.parquet'").fetchall() == [(old, "closed")]
        assert con.execute(f"SELECT count(*) FROM '{out}/sensor_readings/*.parquet'").fetchone()[0] == 5
        assert con.execute(f"SELECT count(*) FROM '{out}/audit/*.parquet' WHERE event_id = ?", [old]).fetchone()[0] \
            == n_audit_old
        again = archive(store, clock.now() - 30 * 86400, out)  # nothing older left: nothing written
        assert sum(again.rows.values()) == 0 and again.files == {}
    finally:
        store.close()


def test_archive_cli_refuses_a_replica_and_bad_arguments(tmp_path):
    db = str(tmp_path / "r.duckdb")
    init_store(db, "district", "500105", node="console-1").close()
    runner = CliRunner()
    res = runner.invoke(main, ["store", "archive", "--db", db, "--older-than", "30d", "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "replica" in res.output and "\n" == res.output[-1] and res.output.count("\n") == 1
    res = runner.invoke(main, ["store", "archive", "--db", db, "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "exactly one" in res.output
    own = str(tmp_path / "own.duckdb")
    init_store(own, "district", "500105").close()
    res = runner.invoke(main, ["store", "archive", "--db", own, "--before", "2026-01-01", "--out", str(tmp_path / "o"),
                               "--json"])
    assert res.exit_code == 0, res.output
    assert '"sensor_readings": 0' in res.output
    assert not os.path.exists(tmp_path / "o" / "events")


def test_an_old_store_migrates_with_its_sensor_state(tmp_db, catalogue, sensors):
    a, b, _ = sensors
    conn = connect(tmp_db, create=True)
    migrate(conn, 1.0, upto=4)
    conn.execute("INSERT INTO store_meta VALUES ('epoch','e'),('tier','district'),('code','500105'),('node','district-500105')")
    conn.execute("INSERT INTO sensor_readings VALUES (?, ?, 1.0), (?, ?, 30.0), (?, ?, 2.0)",
                 [a.code, START, a.code, START + 60, b.code, START + 30])
    for eid, code, at in (("ev-a", a.code, START + 60), ("ev-b", b.code, START + 30), ("ev-b0", b.code, START)):
        row = dataclasses.astuple(make_event(id=eid, number=eid, source="sensor", reporter=code, reported_at=at))
        conn.execute(f"INSERT INTO events VALUES ({', '.join('?' for _ in row)})", list(row))
    conn.execute("INSERT INTO audit_log VALUES (1, ?, 'ev-b', 'alarm_clear', NULL, NULL, ?, 'system', 'district', "
                 "'district-500105', 'cleared', 'g', 'h')", [START + 40, b.code])
    conn.close()
    store = open_store(tmp_db, clock=SimClock(START + 120))
    try:
        held = store.sensor_states()
        assert _latest(held) == {a.code: (START + 60, 30.0), b.code: (START + 30, 2.0)}
        assert _episodes(held) == {a.code: "ev-a"}  # b's latest event was cleared; the older one is not its episode
        assert store.count_rows("sensor_readings") == 3
        _agrees(store)
    finally:
        store.close()


def test_a_compacted_change_log_rebuilds_the_state_from_the_tables(tmp_db, sensors):
    sensor = sensors[1]
    store = init_store(tmp_db, "district", "500105", clock=SimClock(START))
    try:
        assert store.sensor_states() == {}
        event = make_event(id="e-far", source="sensor", reporter=sensor.code, reported_at=START,
                           district_code="500105", origin_tier="street", origin_node="street-500105002")
        with store.tx():
            store.upsert_event_copy(event, origin="street-500105002")
            store.set_meta("log_floor", str(store.head()))  # as if compacted before the state looked
        assert store.sensor_alarm_events([sensor.code])[sensor.code].id == "e-far"
        _agrees(store)
    finally:
        store.close()
