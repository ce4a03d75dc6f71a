"""Issue 14 item 7: flood warning steps 2 and 3 driven by a rising river gauge (万州's 智慧水利 gauges).

A district store on a simulated clock ingests a river-level sensor's readings; its notifier sends 通知转移
on the alarm, then 准备转移 and 立即转移 as the level climbs past ``flood.STEP_LEVELS`` — each once.
"""

from __future__ import annotations

import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.engine import Engine, directives
from cqgov_tui.engine.sensors import SensorMonitor
from cqgov_tui.notify import flood
from cqgov_tui.notify.service import Notifier
from cqgov_tui.people import roster
from cqgov_tui.store import init_store, open_store

WANZHOU = "500101"
T0 = 1_795_000_000.0


@pytest.fixture
def world(tmp_path):
    clock = SimClock(T0)
    path = str(tmp_path / "wz.duckdb")
    store = init_store(path, "district", WANZHOU, clock=clock)
    engine = Engine(store, clock=clock)
    gauge = next(s for s in engine.catalogue.sensors.values() if s.kind == "river_level"
                 and engine.catalogue.risk_points[s.risk_point_code].grid_code.startswith(WANZHOU))
    yield store, engine, clock, gauge, path
    store.close()


def _steps(store) -> list[int]:
    return [flood.step_of(d) for d in sorted(store.directives(), key=lambda d: d.created_at)
            if flood.step_of(d) is not None]


def _read(monitor, notifier, clock, gauge, value: float) -> list[int]:
    clock.advance(300)
    result = monitor.ingest([[gauge.code, clock.now(), value]])
    assert not result.rejected
    notifier.tick(force=True)
    return _steps(notifier.store)


def test_a_rising_gauge_sends_each_step_once_in_order(world, tmp_path):
    store, engine, clock, gauge, _ = world
    monitor = SensorMonitor(engine)
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    assert _read(monitor, notifier, clock, gauge, -0.6) == []  # under the warning line
    assert _read(monitor, notifier, clock, gauge, 0.1) == [1]  # the alarm: 通知转移
    assert _read(monitor, notifier, clock, gauge, 0.3) == [1]
    assert _read(monitor, notifier, clock, gauge, 0.6) == [1, 2]  # 0.5 m over: 准备转移
    assert _read(monitor, notifier, clock, gauge, 0.8) == [1, 2]
    assert _read(monitor, notifier, clock, gauge, 0.4) == [1, 2]  # falling back sends nothing lower
    assert _read(monitor, notifier, clock, gauge, 0.7) == [1, 2]  # nor 准备转移 again on the way up
    assert _read(monitor, notifier, clock, gauge, 1.2) == [1, 2, 3]  # 1 m over: 立即转移
    assert _read(monitor, notifier, clock, gauge, 1.6) == [1, 2, 3]
    ds = [d for d in store.directives() if flood.step_of(d) in (2, 3)]
    assert {tuple(d.targets) for d in ds} == {(WANZHOU,)} and all(d.require_ack and d.priority == "urgent" for d in ds)
    alarm = monitor.alarms()[gauge.code]
    warned = [a for a in store.audit_entries(alarm.id) if a.action == "flood.warn"]
    assert len(warned) == 3 and gauge.code in warned[2].note and "立即转移" in warned[2].note
    # at a street (the directives arrive by sync) its 防汛责任人 is told each step once
    street_code = engine.registry.children(WANZHOU)[0].code
    street = init_store(str(tmp_path / "s.duckdb"), "street", street_code, clock=clock)
    try:
        roster.import_rows(street, engine.registry, roster.parse_csv(
            "user,name,role,department,jurisdiction,phone,email,on_duty,rotation,duties\n"
            f"flood-s,陈思宇,grid_worker,,{street_code},2,,yes,0,防汛责任人\n"))
        street_notifier = Notifier(street, clock=clock, registry=engine.registry)
        for d in ds:
            street.put_directive(d, origin=store.node)
        directives.deliver_arrived(street)
        street_notifier.tick(force=True)
        street_notifier.tick(force=True)
        told = sorted(n.subject for d in ds for n in street.notifications(ref=d.id))
        assert len(told) == 2 and "准备转移" in told[0] + told[1] and "立即转移" in told[0] + told[1]
        assert {n.recipient for d in ds for n in street.notifications(ref=d.id)} == {"flood-s"}
        assert {r.jurisdiction_code for d in ds for r in street.receipts(d.id)} == {street_code}
    finally:
        street.close()


def test_a_restarted_notifier_does_not_send_a_step_again(world):
    store, engine, clock, gauge, path = world
    monitor = SensorMonitor(engine)
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    _read(monitor, notifier, clock, gauge, 0.2)
    assert _read(monitor, notifier, clock, gauge, 0.9) == [1, 2]
    store.close()
    reopened = open_store(path, clock)
    try:
        engine2 = Engine(reopened, clock=clock)
        again = Notifier(reopened, clock=clock, registry=engine2.registry)
        again.tick(force=True)
        assert _steps(reopened) == [1, 2]
        assert _read(SensorMonitor(engine2), again, clock, gauge, 0.95) == [1, 2]
        assert _read(SensorMonitor(engine2), again, clock, gauge, 1.0) == [1, 2, 3]
    finally:
        reopened.close()


def test_a_gauge_jumping_past_both_lines_sends_only_the_highest_step(world):
    store, engine, clock, gauge, _ = world
    monitor = SensorMonitor(engine)
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    assert _read(monitor, notifier, clock, gauge, 1.4) == [1, 3]  # steps only go up; no stale 准备转移


@pytest.mark.parametrize("value, step", [(-0.01, 0), (0.0, 1), (0.49, 1), (0.5, 2), (0.99, 2), (1.0, 3), (9.0, 3)])
def test_level_step(value, step):
    assert flood.level_step(value) == step
