"""Sensor readings → alarm episodes: one event per episode, clearing, bad readings, restarts, CLI."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Status, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.engine.sensors import SensorMonitor, band_colour
from cqgov_tui.store import init_store, open_store

START = 1_795_000_000.0


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def methane(catalogue):
    """Two methane sensors of 江北区 (500105), far enough apart not to be merge candidates."""
    sensors = [s for s in catalogue.sensors.values() if s.kind == "methane" and s.code.startswith("SN-500105")]
    first = sensors[0]
    a = catalogue.risk_points[first.risk_point_code]
    for s in sensors[1:]:
        b = catalogue.risk_points[s.risk_point_code]
        if abs(a.lon - b.lon) + abs(a.lat - b.lat) > 0.02:
            return first, s
    raise AssertionError("fixtures lack two distant methane sensors")


@pytest.fixture
def world(tmp_db, catalogue):
    clock = SimClock(START)
    store = init_store(tmp_db, "city", "500000", clock=clock)
    engine = Engine(store, catalogue, clock=clock)
    yield store, engine, SensorMonitor(engine), clock
    store.close()


def _feed(monitor, clock, code, values, step=60.0):
    results = []
    for v in values:
        clock.advance(step)
        results.append(monitor.ingest([(code, clock.now(), v)]))
    return results


def _sensor_events(store, code):
    return store.all_events(source="sensor", reporter=code)


def _actions(store, event_id):
    return [a.action for a in store.event_audit(event_id)]


def test_ten_readings_over_threshold_open_exactly_one_event(world, methane, catalogue):
    store, engine, monitor, clock = world
    sensor, _ = methane
    results = _feed(monitor, clock, sensor.code, [30, 32, 35, 28, 33, 31, 30, 29, 34, 36])
    events = _sensor_events(store, sensor.code)
    assert len(events) == 1
    event = events[0]
    assert [len(r.opened) for r in results] == [1] + [0] * 9
    assert sum(r.attached for r in results) == 9
    rp = catalogue.risk_points[sensor.risk_point_code]
    assert event.category_code == rp.category_code == "septic_methane"
    assert event.source == "sensor" and event.reporter == sensor.code
    assert event.grid_code == rp.grid_code
    assert event.colour == "orange"  # 30 %LEL lies in the band from the alarm threshold (25) to 40
    assert store.count_rows("events") == 1
    assert len(store.readings_of(sensor.code, 0, clock.now())) == 10
    assert monitor.alarms() == {sensor.code: store.get_event(event.id)}


def test_worse_band_raises_colour_once(world, methane):
    store, _, monitor, clock = world
    sensor, _ = methane
    results = _feed(monitor, clock, sensor.code, [30, 45, 50, 44])
    event = _sensor_events(store, sensor.code)[0]
    assert event.colour == "red"
    assert [r.raised for r in results] == [[], [event.id], [], []]
    assert _actions(store, event.id).count("alarm_raise") == 1


def test_back_to_normal_clears_and_event_stays_in_the_loop(world, methane):
    store, _, monitor, clock = world
    sensor, _ = methane
    _feed(monitor, clock, sensor.code, [30, 31])
    event = _sensor_events(store, sensor.code)[0]
    # between clear_below (10) and the threshold (25): hysteresis keeps the alarm
    held = _feed(monitor, clock, sensor.code, [20, 12])
    assert [r.cleared for r in held] == [[], []]
    assert monitor.alarms().keys() == {sensor.code}
    cleared = _feed(monitor, clock, sensor.code, [6])[0]
    assert cleared.cleared == [event.id]
    assert monitor.alarms() == {}
    after = store.get_event(event.id)
    assert Status(after.status).is_open  # clearing the alarm does not close the event
    clear = [a for a in store.event_audit(event.id) if a.action == "alarm_clear"]
    assert len(clear) == 1 and "alarm cleared" in clear[0].note and clear[0].actor == sensor.code
    # more normal readings clear nothing further
    assert _feed(monitor, clock, sensor.code, [3, 2])[1].cleared == []


def test_new_episode_opens_a_new_event(world, methane):
    store, _, monitor, clock = world
    sensor, _ = methane
    first = _feed(monitor, clock, sensor.code, [30, 31, 5])
    clock.advance(2 * 3600)  # past the 30-minute dedup window
    second = _feed(monitor, clock, sensor.code, [40, 41])
    events = _sensor_events(store, sensor.code)
    assert len(events) == 2
    assert second[0].opened == [events[1].id] and first[0].opened == [events[0].id]
    assert events[1].status != Status.MERGED.value
    assert monitor.alarms() == {sensor.code: store.get_event(events[1].id)}


def test_two_sensors_two_episodes_in_one_batch(world, methane):
    store, _, monitor, clock = world
    a, b = methane
    t = clock.advance(60)
    result = monitor.ingest([(a.code, t, 30), (b.code, t, 26), (a.code, t + 1, 31), (b.code, t + 1, 1)])
    assert result.stored == 4 and len(result.opened) == 2 and result.attached == 1
    assert len(result.cleared) == 1 and result.cleared[0] == _sensor_events(store, b.code)[0].id
    assert set(monitor.alarms()) == {a.code}


def test_alarm_state_survives_a_restart(tmp_db, catalogue, methane):
    sensor, _ = methane
    clock = SimClock(START)
    store = init_store(tmp_db, "city", "500000", clock=clock)
    _feed(SensorMonitor(Engine(store, catalogue, clock=clock)), clock, sensor.code, [30, 33])
    store.close()
    store = open_store(tmp_db, clock=clock)
    monitor = SensorMonitor(Engine(store, catalogue, clock=clock))
    again = _feed(monitor, clock, sensor.code, [35])[0]
    assert again.opened == [] and again.attached == 1
    assert len(_sensor_events(store, sensor.code)) == 1
    assert _feed(monitor, clock, sensor.code, [1])[0].cleared == [_sensor_events(store, sensor.code)[0].id]
    store.close()


def test_event_closed_while_still_alarming_opens_a_new_episode(world, methane):
    store, engine, monitor, clock = world
    sensor, _ = methane
    _feed(monitor, clock, sensor.code, [30])
    event = _sensor_events(store, sensor.code)[0]
    assert event.status == "dispatched"  # the methane plan signs and dispatches at once
    officer = User("duty", "值班长", Role.DUTY_OFFICER, Tier.CITY, "500000")
    worker = User("w1", "网格员", Role.GRID_WORKER, Tier.CITY, "500000")
    for action, who in (("accept", worker), ("arrive", worker), ("dispose", worker), ("feedback", worker),
                        ("close", officer)):
        engine.act(event.id, action, who)
    assert monitor.alarms().keys() == {sensor.code}  # closed, but the sensor never read normal
    clock.advance(3600)
    result = _feed(monitor, clock, sensor.code, [32])[0]
    assert len(result.opened) == 1 and result.opened[0] != event.id
    notes = [a.note for a in store.event_audit(event.id) if a.action == "alarm_clear"]
    assert len(notes) == 1 and "still over threshold" in notes[0]


@pytest.mark.parametrize("reading, reason", [
    (("SN-NOPE-00001", START + 60, 30.0), "unknown sensor 'SN-NOPE-00001'"),
    (("{s}", START + 60, math.nan), "not a finite number"),
    (("{s}", START + 60, math.inf), "not a finite number"),
    (("{s}", START + 60, "thirty"), "value must be a number"),
    (("{s}", START + 60, True), "value must be a number"),
    (("{s}", -5, 30.0), "not a plausible epoch-seconds timestamp"),
    (("{s}", math.nan, 30.0), "not a plausible epoch-seconds timestamp"),
    (("{s}", START * 1000, 30.0), "in the future"),
    (("{s}", "2026-11-18", 30.0), "time must be epoch seconds"),
    ((42, START + 60, 30.0), "sensor code must be text"),
    (("{s}", START + 60), "expected (sensor_code, measured_at, value)"),
    ("SN-500105-00001,1,2", "expected (sensor_code, measured_at, value)"),
])
def test_bad_reading_is_rejected_with_a_reason_and_changes_nothing(world, methane, reading, reason):
    store, _, monitor, clock = world
    sensor, _ = methane
    if isinstance(reading, tuple) and reading and reading[0] == "{s}":
        reading = (sensor.code,) + reading[1:]
    clock.advance(120)
    head, events = store.head(), store.count_rows("events")
    result = monitor.ingest([reading])
    assert result.stored == 0 and result.opened == [] and len(result.rejected) == 1
    assert reason in result.rejected[0].reason and "\n" not in result.rejected[0].reason
    assert store.head() == head and store.count_rows("events") == events
    assert store.latest_readings() == {}


def test_bad_rows_do_not_stop_good_ones(world, methane):
    store, _, monitor, clock = world
    sensor, _ = methane
    t = clock.advance(60)
    # within a batch readings run in time order: the earlier (normal) one goes first
    result = monitor.ingest([(sensor.code, t, 30.0), ("nope", t, 1.0), (sensor.code, t, 31.0), (sensor.code, t - 30, 2)])
    assert result.stored == 2 and len(result.opened) == 1
    assert [r.index for r in result.rejected] == [1, 2]
    assert "repeats the latest reading" in result.rejected[1].reason
    later = monitor.ingest([(sensor.code, t - 10, 1.0)])
    assert later.stored == 0 and later.cleared == []
    assert "older than the latest reading" in later.rejected[0].reason
    assert store.latest_readings()[sensor.code] == (t, 30.0)


def test_sensor_outside_a_district_store_is_rejected(tmp_db, catalogue, methane):
    sensor, _ = methane  # in 江北区 500105
    clock = SimClock(START)
    store = init_store(tmp_db, "district", "500108", clock=clock)
    monitor = SensorMonitor(Engine(store, catalogue, clock=clock))
    result = monitor.ingest([(sensor.code, START + 60, 30.0)])
    assert result.stored == 0 and "outside this store's jurisdiction 500108" in result.rejected[0].reason
    store.close()


def test_band_colour_follows_the_kind_bands(catalogue):
    bands = catalogue.sensor_kind("methane").bands  # 5, 15, 25, 40
    assert [band_colour(bands, v).value for v in (0, 5, 14.9, 15, 25, 39, 40, 99)] == [
        "green", "blue", "blue", "yellow", "orange", "orange", "red", "red"]


# ---------------------------------------------------------------- CLI


def _cli_store(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    init_store(db, "city", "500000").close()
    return db


def test_cli_ingest_csv_reports_bad_rows_one_line_each(tmp_path, methane):
    sensor, _ = methane
    db = _cli_store(tmp_path)
    # the CLI runs on the system clock: use times just behind it
    import time

    now = time.time()
    text = "\n".join([
        "sensor_code,measured_at,value",
        f"{sensor.code},{now - 120:.0f},30",
        f"{sensor.code},{now - 60:.0f},oops",
        f"SN-NOPE,{now - 60:.0f},1",
        f"{sensor.code},{now - 30:.0f}",
        f"{sensor.code},{now - 10:.0f},31",
    ]) + "\n"
    result = CliRunner().invoke(main, ["sensors", "ingest", "--db", db, "-"], input=text)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert len(errors) == 3
    assert errors[0].startswith("line 3:") and "not a number" in errors[0]
    assert errors[1].startswith("line 4:") and "unknown sensor" in errors[1]
    assert errors[2].startswith("line 5:")
    assert "stored 2" in result.stdout and "opened 1" in result.stdout
    with open_store(db) as store:
        assert len(store.readings_of(sensor.code, 0, now + 1)) == 2
        assert store.count_rows("events") == 1


def test_cli_ingest_json_lines_and_json_output(tmp_path, methane):
    sensor, _ = methane
    db = _cli_store(tmp_path)
    import time

    now = time.time()
    path = tmp_path / "readings.jsonl"
    path.write_text("\n".join([
        json.dumps({"sensor": sensor.code, "measured_at": now - 100, "value": 31}),
        json.dumps([sensor.code, now - 50, 2]),
        "{not json",
    ]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["sensors", "ingest", "--db", db, str(path), "--json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["stored"] == 2 and len(data["opened"]) == 1 and data["cleared"] == data["opened"]
    assert len(data["rejected"]) == 1 and data["rejected"][0]["line"] == 3


def test_cli_ingest_missing_file_is_one_line(tmp_path):
    db = _cli_store(tmp_path)
    result = CliRunner().invoke(main, ["sensors", "ingest", "--db", db, str(tmp_path / "none.csv")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
