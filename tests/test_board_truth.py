"""Issue 13, "the board tells the truth": every indicator from data, none without it; risk grades that move.

Each test puts N things in the store — events, closings, call-backs, receipts, readings, figures, an
inspection — and checks that exactly the matching indicators move, by exactly what they should.
"""

from __future__ import annotations

import pytest

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.engine import risk_grades
from cqgov_tui.engine.directives import advance, deliver_to_all, send
from cqgov_tui.engine.runways import compute_board
from cqgov_tui.engine.sensors import SensorMonitor
from cqgov_tui.errors import BadInput, IllegalTransition, UnknownCode
from cqgov_tui.store import init_store

NOW = 1_795_000_000.0
JIANGBEI = "500105"


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture
def store(tmp_db):
    s = init_store(tmp_db, "district", JIANGBEI, clock=SimClock(NOW))
    yield s
    s.close()


@pytest.fixture
def engine(store, catalogue):
    return Engine(store, catalogue, clock=store.clock)


OFFICER = User("duty", "值班长", Role.DUTY_OFFICER, Tier.DISTRICT, JIANGBEI)
FIELD = User("cg", "城管", Role.DEPARTMENT, Tier.DISTRICT, JIANGBEI, "cgj")


def _indicators(board) -> dict:
    return {i.code: i for s in board.sectors for r in s.runways for sub in r.sub_runways for i in sub.indicators}


def _value(store, catalogue, code, scope=JIANGBEI):
    return _indicators(compute_board(store, catalogue, store.clock.now(), scope))[code].value


def _close(engine, event, actor=OFFICER):
    for action, who in (("verify", actor), ("dispatch", actor), ("accept", FIELD), ("arrive", FIELD),
                        ("dispose", FIELD), ("feedback", FIELD), ("close", actor)):
        event = engine.act(event.id, action, who)
    return event


def _street(registry_code: str = JIANGBEI) -> str:
    from cqgov_tui.geo.registry import get_registry

    return next(j.code for j in get_registry().children(registry_code))


# ---------------------------------------------------------------- a fresh store


def test_fresh_store_has_no_constants_no_red_and_no_data_is_none(store, catalogue):
    for scope in ("500000", JIANGBEI, "500107"):
        board = compute_board(store, catalogue, NOW, scope)
        inds = _indicators(board)
        assert not [c for c, i in inds.items() if i.metric.startswith("const")]
        assert board.counts["red"] == 0 and board.colour is not None and board.colour.value == "green", scope
        # nothing measured yet: rates, means, readings and figures have no value and no colour
        for code, i in inds.items():
            if i.metric.split(":")[0] in ("overdue_ratio", "mean_response_min", "handle_days", "satisfaction",
                                          "callback_ratio", "ontime_ratio", "sensor_max", "figure", "figure_mean",
                                          "fresh", "receipts_ack_ratio", "risk_inspected_ratio", "closed_24h"):
                assert i.value is None and i.colour is None, code
        assert board.counts["none"] > 0


def test_each_jurisdiction_sees_its_own_indicator_set(store, catalogue):
    city = _indicators(compute_board(store, catalogue, NOW, "500000"))
    jiulongpo = _indicators(compute_board(store, catalogue, NOW, "500107"))
    yongchuan = _indicators(compute_board(store, catalogue, NOW, "500118"))
    jiangbei = _indicators(compute_board(store, catalogue, NOW, JIANGBEI))
    feature_jlp = {c for c, i in catalogue.indicators.items() if "500107" in i.places}
    feature_yc = {c for c, i in catalogue.indicators.items() if "500118" in i.places}
    assert feature_jlp and feature_jlp <= set(jiulongpo) and not feature_jlp & set(city)
    assert feature_yc and not feature_yc & set(jiulongpo) and not feature_yc & set(jiangbei)
    # 江北 has septic-tank methane sensors; 永川 none: the methane indicators are 江北's, not 永川's
    assert "cs03.02.methane_max" in jiangbei and "cs03.02.methane_max" not in yongchuan
    # a street inside 九龙坡 sees its district's 特色子跑道
    street = _street("500107")
    assert feature_jlp & set(_indicators(compute_board(store, catalogue, NOW, street)))


def test_vital_signs_and_kpis_are_told_apart(store, catalogue):
    inds = _indicators(compute_board(store, catalogue, NOW, JIANGBEI))
    assert inds["cs01.01.open"].kind == "vital" and inds["cs01.01.overdue"].kind == "kpi"
    assert inds["cs14.02.k1"].kind == "kpi"  # 民呼我为综合满意率
    assert inds["cs14.03.k3"].kind == "vital"  # 当日办结数, declared a vital sign


# ---------------------------------------------------------------- N things move indicators by exactly N


def test_n_reports_move_open_and_reported_counts_by_exactly_n(store, catalogue, engine):
    street = _street()
    before = _value(store, catalogue, "st05.01.open")  # 垃圾清运在办事件
    for n in range(1, 4):
        engine.report(category="garbage", title=f"垃圾{n}", code=street, actor=OFFICER, source="grid")
        assert _value(store, catalogue, "st05.01.open") == before + n
    assert _value(store, catalogue, "ms10.01.k1") == 3  # 网格员当日上报 (reported_by:grid)
    assert _value(store, catalogue, "cs14.01.open") == 3  # 市民诉求办理 counts every category
    assert _value(store, catalogue, "cs01.01.open") == 0  # another category does not move


def test_closings_and_callbacks_move_satisfaction_handle_time_and_ontime(store, catalogue, engine):
    street = _street()
    events = [engine.report(category="noise", title=f"噪声{n}", code=street, actor=OFFICER) for n in range(4)]
    assert _value(store, catalogue, "cs14.03.k1") is None  # 平均办理时长: nothing closed yet
    store.clock.advance(2 * 86400)  # two days later: inside the standard profile's 3-day close deadline
    for e in events:
        _close(engine, e)
    assert _value(store, catalogue, "cs14.03.k1") == pytest.approx(2.0)  # days, report → closed
    assert _value(store, catalogue, "cs14.03.k2") == 100.0  # 按时办结率
    assert _value(store, catalogue, "cs14.02.k1") is None  # 满意率: no call-back yet
    ratings = ["5 电话回访满意", "4/5", "rating 2/5 via phone; 噪声仍在", "1"]
    for n, (e, rating) in enumerate(zip(events, ratings), 1):
        engine.act(e.id, "callback", OFFICER, note=rating)
        assert _value(store, catalogue, "cs14.02.k2") == 25.0 * n  # 办结回访率
    assert _value(store, catalogue, "cs14.02.k1") == 50.0  # two of four satisfied (4 or 5)
    # the call-back's note is kept in the one form the board reads
    notes = [a.note for a in store.event_audit(events[2].id) if a.action == "callback"]
    assert notes == ["rating 2/5 via phone; 噪声仍在"]


def test_callback_only_after_closing_and_with_a_rating(store, catalogue, engine):
    e = engine.report(category="noise", title="噪声", code=_street(), actor=OFFICER)
    with pytest.raises(IllegalTransition):
        engine.act(e.id, "callback", OFFICER, note="5")
    _close(engine, e)
    with pytest.raises(BadInput, match="rating from 1 to 5"):
        engine.act(e.id, "callback", OFFICER, note="很满意")
    with pytest.raises(BadInput):
        engine.act(e.id, "callback", OFFICER, note="7")
    assert not [a for a in store.event_audit(e.id) if a.action == "callback"]


def test_late_closing_is_not_on_time(store, catalogue, engine):
    e = engine.report(category="garbage", title="垃圾", code=_street(), actor=OFFICER)
    store.clock.advance(2 * 86400)  # grid profile: closed within 1,440 minutes
    _close(engine, e)
    assert _value(store, catalogue, "cs14.03.k2") == 0.0


def test_receipts_move_the_acknowledgement_ratio(store, catalogue):
    from cqgov_tui.geo.registry import get_registry

    reg = get_registry()
    streets = [j.code for j in reg.children(JIANGBEI)]
    d = send(store, reg, actor=OFFICER, targets=[JIANGBEI], text="防汛检查", title="防汛检查",
             deadline_at=NOW + 3600, require_ack=True)
    deliver_to_all(store, reg, d, OFFICER)
    assert _value(store, catalogue, "dj04.02.k1") == 0.0  # 政令按时确认率: none acknowledged yet
    for n, code in enumerate(streets[:3], 1):
        advance(store, d.id, code, "acknowledged", OFFICER)
        assert _value(store, catalogue, "dj04.02.k1") == pytest.approx(round(100.0 * n / len(streets), 2))
    assert _value(store, catalogue, "dj04.02.k2") == 0  # 逾期未确认: the deadline has not passed
    store.clock.advance(7200)
    assert _value(store, catalogue, "dj04.02.k2") == len(streets) - 3


def test_readings_move_sensor_indicators(store, catalogue, engine):
    sensors = [s for s in catalogue.sensors.values() if s.kind == "methane"][:3]
    monitor = SensorMonitor(engine)
    assert _value(store, catalogue, "cs03.02.methane_max") is None
    monitor.ingest([[s.code, NOW - 60, 8.0 + n] for n, s in enumerate(sensors)])
    assert _value(store, catalogue, "cs03.02.methane_max") == 10.0
    assert _value(store, catalogue, "cs03.02.methane_alarms") == 0
    assert _value(store, catalogue, "cs03.02.methane_fresh") == 100.0
    monitor.ingest([[sensors[0].code, NOW - 30, 45.0]])
    assert _value(store, catalogue, "cs03.02.methane_alarms") == 1
    store.clock.advance(20 * 60)  # 20 minutes without readings: none fresh
    assert _value(store, catalogue, "cs03.02.methane_fresh") == 0.0


def test_fed_figures_move_their_indicators(store, catalogue):
    street = _street()
    assert _value(store, catalogue, "cs01.04.rate") is None  # 消防通道畅通达标率
    store.feed_figure("cs01.04.rate", street, NOW - 10, 96.0, "一表通")
    store.feed_figure("cs01.04.rate", street[:-1] + "9", NOW - 10, 90.0, "一表通")
    assert _value(store, catalogue, "cs01.04.rate") == 93.0  # mean of each street's latest
    assert _value(store, catalogue, "cs01.04.fresh") == 100.0
    store.feed_figure("cs01.04.warn", street, NOW - 5, 2.0, "一表通")
    store.feed_figure("cs01.04.warn", street, NOW - 1, 3.0, "一表通")  # the latest counts
    assert _value(store, catalogue, "cs01.04.warn") == 3.0


# ---------------------------------------------------------------- risk that moves


def _tank(catalogue):
    sensor = next(s for s in catalogue.sensors.values() if s.kind == "methane")
    return sensor, catalogue.risk_points[sensor.risk_point_code]


def test_methane_alarm_raises_the_tank_and_the_district_then_clearing_and_inspection_lower_it(
        store, catalogue, engine):
    sensor, tank = _tank(catalogue)
    assert tank.owner  # 责任人
    high_before = _value(store, catalogue, "cs03.02.risk")  # 化粪池甲烷监测高风险点位
    red_before = _value(store, catalogue, "cs03.03.k2")  # 红色风险化粪池
    assert risk_grades.grade_of(store, catalogue, NOW, tank.code).colour.value == tank.colour.value
    monitor = SensorMonitor(engine)
    monitor.ingest([[sensor.code, NOW - 10, 45.0]])  # 45 %LEL: over the 25 threshold
    grade = risk_grades.grade_of(store, catalogue, NOW, tank.code)
    assert grade.colour.value == "red" and any("45" in r for r in grade.reasons)
    assert _value(store, catalogue, "cs03.02.risk") == high_before + 1
    assert _value(store, catalogue, "cs03.03.k2") == red_before + 1
    engine.sweep()  # the sweep audits the change
    history = store.risk_grade_history(tank.code)
    assert [h[2].split(";")[0] for h in history] == [f"{tank.colour.value} → red"]
    assert f"责任人 {tank.owner}" in history[0][2]
    # clearing: the reading falls under clear_below, the alarm event is still open → orange
    store.clock.advance(60)
    monitor.ingest([[sensor.code, store.clock.now() - 1, 3.0]])
    engine.sweep()
    assert risk_grades.grade_of(store, catalogue, store.clock.now(), tank.code).colour.value == "orange"
    assert _value(store, catalogue, "cs03.03.k2") == red_before
    assert _value(store, catalogue, "cs03.02.risk") == high_before + 1
    # an inspection finds it in order: one step under its register grade (green stays green)
    store.clock.advance(60)
    g = risk_grades.inspect(store, catalogue, tank.code, "ok", OFFICER, store.clock.now(), note="现场检测正常")
    assert g.colour.rank > 1  # neither red nor orange
    assert _value(store, catalogue, "cs03.02.risk") == high_before
    grades_seen = [h[2].split(";")[0] for h in store.risk_grade_history(tank.code)]
    assert grades_seen == [f"{tank.colour.value} → red", "red → orange", f"orange → {g.colour.value}"]
    assert _value(store, catalogue, "cs03.03.k1") is not None  # 巡查覆盖率 now has an inspection to count
    assert store.verify_audit().ok


def test_inspection_refuses_unknown_points_and_results(store, catalogue):
    _, tank = _tank(catalogue)
    with pytest.raises(UnknownCode):
        risk_grades.inspect(store, catalogue, "RP-NOPE", "ok", OFFICER, NOW)
    with pytest.raises(BadInput):
        risk_grades.inspect(store, catalogue, tank.code, "fine", OFFICER, NOW)
    assert store.risk_grade_history() == []
