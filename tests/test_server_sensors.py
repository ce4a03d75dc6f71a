"""sensor.reading through a real tier server: one event per alarm episode, clearing, refusals, the simulator.

Each test runs a street server (uvicorn on a loopback port, in this process)
sharing a SimClock with the test, so reading times are chosen here and never
wait on the wall clock. Every wait is bounded and every server is stopped in
a ``finally``.
"""

from __future__ import annotations

import math

import pytest

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Event, Role, Source, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.engine.sensors import SensorMonitor
from cqgov_tui.errors import BadInput
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.server.commands import CommandHandler
from cqgov_tui.server.remote import Remote, envelope
from cqgov_tui.sim.simulator import Simulator, Target
from cqgov_tui.store import init_store
from synchost import TierServing

SECRET = b"sensor-test-secret-0123456789abcdef0123"
STREET, NEIGHBOUR = "500108001", "500108002"  # two streets of 南岸区, both with sensors


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _sensors_in(catalogue, code: str):
    return [s for s in sorted(catalogue.sensors.values(), key=lambda s: s.code)
            if catalogue.risk_points[s.risk_point_code].grid_code.startswith(code)]


class Serving(TierServing):
    """A street server on 127.0.0.1 sharing a SimClock with the test, and a client with its token."""

    def __init__(self, tmp_path, code: str = STREET):
        super().__init__(tmp_path, "street", code, SECRET, clock=SimClock(), token_ttl=86400)
        self.remote = Remote(self.url, self.token)

    def __exit__(self, *exc):
        self.remote.close()
        super().__exit__(*exc)

    def send(self, readings: list) -> dict:
        """One sensor.reading command; the whole reply (accepted or rejected)."""
        return self.remote.commands([envelope("sensor.reading", {"readings": readings})])

    def events(self) -> list[Event]:
        return self.store.queue(include_closed=True, limit=1000)


def _stored(store, codes) -> int:
    """Readings the store holds for these sensors."""
    return sum(len(store.readings_of(code, 0.0, math.inf)) for code in codes)


def _result(reply: dict) -> dict:
    assert not reply["rejected"], reply["rejected"]
    return reply["accepted"][0]["result"]


def test_an_alarm_episode_opens_one_event_and_clears(tmp_path, catalogue):
    sensor = _sensors_in(catalogue, STREET)[0]
    over = sensor.threshold + 1.0
    with Serving(tmp_path) as s:
        t = s.clock.now()
        head = s.store.head()
        quiet = _result(s.send([[sensor.code, t - 30 + i, sensor.clear_below - 1.0] for i in range(3)]))
        assert quiet["stored"] == 3 and quiet["opened"] == []
        assert s.store.head() == head  # readings are local telemetry: nothing enters the change log

        replies = [_result(s.send([[sensor.code, t + i, over + i * 0.01] for i in chunk]))
                   for chunk in (range(0, 4), range(4, 7), range(7, 10))]
        assert sum(r["stored"] for r in replies) == 10
        opened = [e for r in replies for e in r["opened"]]
        assert len(opened) == 1 and replies[0]["opened"] == opened
        assert sum(r["attached"] for r in replies) == 9
        events = s.events()
        assert [e.id for e in events] == opened
        assert events[0].source == Source.SENSOR.value and events[0].reporter == sensor.code
        assert s.store.sensor_alarm_events([sensor.code])[sensor.code].id == opened[0]

        # between clear_below and the threshold: hysteresis, nothing changes
        assert _result(s.send([[sensor.code, t + 20, sensor.clear_below]]))["cleared"] == []
        back = _result(s.send([[sensor.code, t + 30, sensor.clear_below - 1.0]]))
        assert back["cleared"] == opened and back["opened"] == []
        assert [a.action for a in s.store.audit_entries(opened[0])].count("alarm_clear") == 1
        assert s.store.sensor_alarm_events([sensor.code]) == {}

        again = _result(s.send([[sensor.code, t + 40, over]]))  # a new episode: one new event
        assert len(again["opened"]) == 1 and again["opened"] != opened
        assert len(s.events()) == 2
        assert _stored(s.store, [sensor.code]) == 3 + 10 + 3


def test_bad_and_out_of_scope_readings_are_refused_with_reasons(tmp_path, catalogue):
    mine = _sensors_in(catalogue, STREET)[0]
    theirs = _sensors_in(catalogue, NEIGHBOUR)[0]
    over = mine.threshold + 5.0
    with Serving(tmp_path) as s:
        t = s.clock.now()
        for readings, why in (([["SN-NOPE-00001", t, 1.0]], "unknown sensor"),
                              ([[mine.code, t, math.nan]], "not a finite number"),
                              ([[mine.code, t, over], [theirs.code, t, over]], "outside"),
                              ([], "non-empty list")):
            reply = s.send(readings)
            assert reply["accepted"] == [] and len(reply["rejected"]) == 1
            reason = reply["rejected"][0]["reason"]
            assert why in reason and "\n" not in reason
        assert _stored(s.store, [mine.code, theirs.code]) == 0 and s.events() == []
        s.server.handler.flush_denials(final=True)
        denied = [a for a in s.store.audit_entries() if a.action == "denied"]
        assert len(denied) == 1 and theirs.code in denied[0].note

        # a mixed batch applies the good reading and names each bad one
        result = _result(s.send([["SN-NOPE-00001", t, 1.0], [mine.code, t, over], [mine.code, t + 1, "high"]]))
        assert result["stored"] == 1 and len(result["opened"]) == 1
        assert [(r["index"], "unknown sensor" in r["reason"] or "must be a number" in r["reason"])
                for r in result["rejected"]] == [(0, True), (2, True)]
        too_many = s.send([[mine.code, t + 2 + i, 1.0] for i in range(501)])
        assert "at most 500" in too_many["rejected"][0]["reason"]
        assert _stored(s.store, [mine.code, theirs.code]) == 1 and len(s.events()) == 1


def test_only_the_server_owning_a_sensor_ingests_its_readings(tmp_path, catalogue):
    """The city ingests none; a district refuses readings of a sensor whose running alarm a street owns."""
    sensor = _sensors_in(catalogue, STREET)[0]
    clock = SimClock()
    city = init_store(str(tmp_path / "city.duckdb"), "city", "500000", clock=clock)
    street = init_store(str(tmp_path / "street.duckdb"), "street", STREET, clock=clock)
    district = init_store(str(tmp_path / "district.duckdb"), "district", "500108", clock=clock)
    try:
        body = {"readings": [[sensor.code, clock.now(), sensor.threshold + 1.0]]}
        admin = User("ops", "ops", Role.ADMIN.value, Tier.CITY.value, "500000")
        with city.tx(), pytest.raises(BadInput, match="city server ingests no readings"):
            CommandHandler(Engine(city, catalogue, clock=clock)).execute(admin, "sensor.reading", body)

        opened = SensorMonitor(Engine(street, catalogue, clock=clock)).ingest(body["readings"]).opened
        with district.tx():
            district.upsert_event_copy(street.get_event(opened[0]), origin=street.node)
        handler = CommandHandler(Engine(district, catalogue, clock=clock))
        clock.advance(10)
        with district.tx(), pytest.raises(BadInput, match=f"owned by {street.node}"):
            handler.execute(admin, "sensor.reading", {"readings": [[sensor.code, clock.now(), sensor.threshold]]})
        assert _stored(district, [sensor.code]) == 0
    finally:
        for store in (city, street, district):
            store.close()


def test_the_simulator_feeds_readings_and_episodes_open_sensor_events(tmp_path, catalogue):
    codes = {s.code for s in _sensors_in(catalogue, STREET)}
    with Serving(tmp_path) as s:
        # Every new event is a sensor episode and episodes are seconds long, so one opens at once.
        sim = Simulator([Target(s.url, s.token, STREET, s.remote)], catalogue, get_registry(), s.clock, rate=2.0,
                        seed=11, reading_every=1.0, episode_s=(5.0, 7.0), cooldown_s=(3600.0, 3600.0),
                        source_mix=((Source.SENSOR.value, 1.0),))
        assert sim.stats.sensors == len(codes)
        for _ in range(25):
            s.clock.advance(1.0)
            sim.tick(1.0)
        stats = sim.stats
        assert stats.readings > 0 and stats.readings_refused == 0 and stats.failures == 0
        assert stats.rejected == 0 and stats.reasons == {}  # the staff walk sensor events from where plans left them
        assert _stored(s.store, codes) == stats.readings
        sensor_events = [e for e in s.events() if e.source == Source.SENSOR.value]
        assert stats.alarms_opened >= 1 and len(sensor_events) == stats.alarms_opened
        assert all(e.reporter in codes for e in sensor_events)
        assert stats.alarms_cleared >= 1  # the early episodes are over: their alarms cleared
        disposed = 0
        for e in sensor_events:  # a crew disposes of a sensor event only once its alarm has cleared
            actions = [a.action for a in s.store.audit_entries(e.id)]
            if "dispose" in actions:
                disposed += 1
                assert "alarm_clear" in actions[:actions.index("dispose")]
        assert disposed >= 1
        assert s.store.latest_readings(sorted(codes)).keys() == codes


def test_a_report_cannot_pose_as_a_sensor_alarm(tmp_path, catalogue):
    sensor = _sensors_in(catalogue, STREET)[0]
    with Serving(tmp_path) as s:
        head = s.store.head()
        reply = s.remote.commands([envelope("report", {
            "category": "septic_methane", "code": STREET, "source": "sensor", "reporter": sensor.code})])
        assert reply["accepted"] == [] and "sensor.reading" in reply["rejected"][0]["reason"]
        assert s.store.head() == head and s.events() == []
        assert s.store.sensor_alarm_events([sensor.code]) == {}
