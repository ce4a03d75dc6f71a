"""Issue 13: reports by code never auto-merged, alarm storms and 多跨 incidents grouped (one supervision),
the 考评 ranking and the 事件热榜 on a seeded store (engine and `cqgov kpi rank|hot|feed`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.console.names import Names
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine, grouping
from cqgov_tui.engine.evaluation import hot_list, rank
from cqgov_tui.engine.sensors import SensorMonitor
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.store import init_store, open_store

NOW = 1_795_000_000.0
MIN = 60.0
CITY = User("duty", "值班长", Role.DUTY_OFFICER, Tier.CITY, "500000")
FIELD = User("cg", "城管", Role.DEPARTMENT, Tier.CITY, "500000", "cgj")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture
def world(tmp_db, catalogue):
    store = init_store(tmp_db, "city", "500000", clock=SimClock(NOW))
    yield store, Engine(store, catalogue, clock=store.clock)
    store.close()


def test_two_reports_by_code_in_one_street_are_never_auto_merged(world):
    store, engine = world
    a = engine.report(category="garbage", title="涂山镇垃圾堆A", code="500108001", actor=CITY)
    b = engine.report(category="garbage", title="涂山镇垃圾堆B", code="500108001", actor=CITY)
    assert store.get_event(b.id).status == "reported" and b.merged_into is None
    assert b.duplicate_of is None  # a street's anchor is not a position: not even a candidate
    grid = next(j.code for j in get_registry().children("500108001"))
    c = engine.report(category="garbage", title="网格垃圾C", code=grid, actor=CITY)
    d = engine.report(category="garbage", title="网格垃圾D", code=grid, actor=CITY)
    assert d.merged_into is None and d.duplicate_of == c.id  # same grid: a candidate, for a person to decide
    merges = [x for x in store.audit_entries() if x.action == "merge"]
    assert merges == [] and a.id != b.id


def test_reports_at_their_own_position_still_merge(world):
    _, engine = world
    a = engine.report(category="garbage", title="垃圾", lon=106.57, lat=29.52, actor=CITY)
    b = engine.report(category="garbage", title="垃圾", lon=106.57, lat=29.52, actor=CITY)
    assert b.status == "merged" and b.merged_into == a.id


def _smoke_sensors(catalogue, n):
    by_street: dict[str, list] = {}
    for s in catalogue.sensors.values():
        if s.kind == "smoke":
            rp = catalogue.risk_points[s.risk_point_code]
            by_street.setdefault(rp.grid_code[:9], []).append(s)
    street, sensors = max(by_street.items(), key=lambda kv: len(kv[1]))
    assert len(sensors) >= n
    return street, sensors[:n]


def test_alarm_storm_is_one_group_with_one_set_of_subtasks_and_one_supervision(world, catalogue):
    store, engine = world
    street, sensors = _smoke_sensors(catalogue, 3)
    monitor = SensorMonitor(engine)
    monitor.ingest([[s.code, NOW - 30 + i, 9.0] for i, s in enumerate(sensors)])  # three detectors, one street
    alarms = [e for e in store.open_events() if e.source == "sensor"]
    assert len(alarms) == 3
    groups = grouping.groups(store.open_events())
    leaders = [g for g in groups.values() if store.get_event(g.leader).source == "sensor"]
    assert len(leaders) == 1 and leaders[0].count == len(store.open_events())  # alarms and sub-tasks: one group
    subtasks = [e for e in store.open_events() if e.parent_id]
    assert {e.parent_id for e in subtasks} <= {leaders[0].leader}  # only the leader opened sub-tasks
    grouped = [a for a in store.audit_entries() if a.action == "group"]
    assert len(grouped) == 2 and all("grouped with" in a.note for a in grouped)
    store.clock.advance(30 * MIN)  # everything overdue
    result = engine.sweep()
    assert result.escalated == [leaders[0].leader]  # one supervision for the incident
    assert set(result.held) >= {e.id for e in store.open_events()} - {leaders[0].leader}


def test_master_and_subtasks_raise_one_supervision(world):
    store, engine = world
    master = engine.report(category="water_pollution", title="江面油污", code="500105", actor=CITY)
    subs = engine.open_subtasks(master.id, ["500105", "500106", "500108"], CITY)
    assert len(subs) == 3
    store.clock.advance(60 * MIN)
    result = engine.sweep()
    assert result.escalated == [master.id]
    assert all(s.id in result.held for s in subs)
    store.clock.advance(60 * MIN)
    assert engine.sweep().escalated == []  # the city event is at the top of its ladder


def test_leaders_follow_report_order_and_the_window(world):
    store, engine = world
    from factories import make_event

    rows = [make_event(id=f"e{i}", source="sensor", category_code="highrise_fire", street_code="500108001",
                       now=NOW + i * 20 * MIN) for i in range(3)]
    rows.append(make_event(id="far", source="sensor", category_code="highrise_fire", street_code="500108001",
                           now=NOW + 200 * MIN))
    rows.append(make_event(id="other", source="sensor", category_code="highrise_fire", street_code="500108002",
                           now=NOW))
    rows.append(make_event(id="sub", parent_id="e1", source="upper", now=NOW + 25 * MIN))
    lead = grouping.leaders(rows)
    assert lead == {"e0": "e0", "e1": "e0", "e2": "e0", "far": "far", "other": "other", "sub": "e0"}


# ---------------------------------------------------------------- 考评 and 事件热榜 on a seeded store


def _close(engine, event, actor=CITY):
    for action, who in (("verify", actor), ("dispatch", actor), ("accept", FIELD), ("arrive", FIELD),
                        ("dispose", FIELD), ("feedback", FIELD), ("close", actor)):
        event = engine.act(event.id, action, who)
    return event


@pytest.fixture
def seeded(tmp_path, catalogue):
    """南岸区: 4 events, 3 closed fast, 2 satisfied call-backs; 江北区: 3 events, none closed, 1 overdue-supervised
    twice (the sweep, then the city)."""
    path = str(tmp_path / "rank.duckdb")
    store = init_store(path, "city", "500000", clock=SimClock(NOW))
    engine = Engine(store, catalogue, clock=store.clock)
    nanan = [engine.report(category="noise", title=f"南岸噪声{i}", code="500108001", actor=CITY) for i in range(4)]
    jiangbei = [engine.report(category="noise", title=f"江北噪声{i}", code="500105001", actor=CITY) for i in range(3)]
    dup = engine.report(category="noise", title="江北噪声重复", code="500105001", actor=CITY)
    engine.act(dup.id, "merge", CITY, target=jiangbei[0].id)
    store.clock.advance(10 * MIN)
    for e in nanan[:3]:
        _close(engine, e)
    engine.act(nanan[0].id, "callback", CITY, note="5")
    engine.act(nanan[1].id, "callback", CITY, note="4 满意")
    engine.act(nanan[2].id, "callback", CITY, note="1 未解决")
    store.clock.advance(120 * MIN)  # 江北's are past the 60-minute dispatch deadline and its 10-minute delay
    engine.sweep()
    from cqgov_tui.server.commands import CommandHandler

    with store.tx():
        CommandHandler(engine).execute(CITY, "supervise", {"event": jiangbei[1].id, "note": "请加快处置"})
    store.close()
    return path, nanan, jiangbei


def test_rank_by_district_on_a_seeded_store(seeded, catalogue):
    path, nanan, jiangbei = seeded
    with open_store(path, SimClock(NOW + 130 * MIN)) as store:
        names = Names(lambda: catalogue, get_registry)
        ranking = rank(store, catalogue, names, store.clock.now(), "district", "7d")
    by = {r.code: r for r in ranking.ranks}
    assert [r.code for r in ranking.ranks] == ["500108", "500105"]  # 南岸 closes and answers; 江北 does not
    na, jb = by["500108"], by["500105"]
    assert (na.events, na.closed, na.closure_rate, na.callbacks) == (4, 3, 75.0, 3)
    assert na.satisfaction == pytest.approx(66.7) and na.rework_rate == pytest.approx(33.3)
    assert na.overdue_rate == 25.0  # the fourth waited past its deadline and was supervised
    assert (jb.events, jb.closed, jb.closure_rate, jb.overdue_rate) == (3, 0, 0.0, 100.0)
    assert jb.satisfaction is None and jb.score == 0.0  # no call-backs: not guessed
    assert na.response_min == 10.0 and jb.response_min is None
    assert na.name == "南岸区"


def test_hot_list_on_a_seeded_store(seeded, catalogue):
    path, nanan, jiangbei = seeded
    with open_store(path, SimClock(NOW + 130 * MIN)) as store:
        hot = hot_list(store, Names(lambda: catalogue, get_registry), store.clock.now(), "7d")
    assert [(i.event_id, i.value) for i in hot.lists["reported"]] == [(jiangbei[0].id, 2.0)]  # itself + a merge
    assert hot.lists["open"][0].event_id in {nanan[3].id, *(e.id for e in jiangbei)}
    assert {i.event_id for i in hot.lists["open"]} == {nanan[3].id, *(e.id for e in jiangbei)}
    assert hot.lists["supervised"][0].event_id == jiangbei[1].id and hot.lists["supervised"][0].value == 2.0
    assert {i.event_id for i in hot.lists["escalated"]} == {nanan[3].id, *(e.id for e in jiangbei)}


def test_cli_kpi_rank_and_hot(seeded):
    path, _, _ = seeded
    runner = CliRunner()
    res = runner.invoke(main, ["kpi", "rank", "--db", path, "--by", "district", "--period", "3650d", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["by"] == "district" and data["period"] == "3650d"  # the CLI runs on the wall clock
    assert [r["code"] for r in data["ranks"]][0] == "500108" and data["ranks"][0]["position"] == 1
    res = runner.invoke(main, ["kpi", "rank", "--db", path, "--by", "department", "--period", "3650d"])
    assert res.exit_code == 0 and "考评 ranking by department" in res.stdout
    res = runner.invoke(main, ["kpi", "hot", "--db", path, "--json"])
    assert res.exit_code == 0 and set(json.loads(res.stdout)["lists"]) == {"reported", "open", "escalated",
                                                                           "supervised"}
    res = runner.invoke(main, ["kpi", "hot", "--db", path])
    assert res.exit_code == 0 and "最久未结" in res.stdout


@pytest.mark.parametrize("args, message", [
    (["kpi", "rank", "--period", "7w"], "period: window '7w'"),
    (["kpi", "rank", "--period", "0d"], "period: window '0d'"),
    (["kpi", "rank", "--by", "planet"], "planet"),
    (["kpi", "feed", "a b", "1"], "figure name 'a b'"),
    (["kpi", "feed", "x", "nan"], "finite"),
])
def test_cli_kpi_bad_input_is_one_line_and_changes_nothing(seeded, args, message):
    path, _, _ = seeded
    res = CliRunner().invoke(main, [*args[:2], "--db", path, *args[2:]])
    assert res.exit_code != 0 and message in res.output and len(res.output.strip().splitlines()) == 1


def test_cli_kpi_feed_moves_a_fed_indicator(seeded):
    path, _, _ = seeded
    runner = CliRunner()
    res = runner.invoke(main, ["kpi", "feed", "--db", path, "--scope", "500108001", "cs01.04.rate", "97.5"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["kpi", "--db", path, "--sector", "cs", "--json", "--kind", "kpi"])
    data = json.loads(res.stdout)
    inds = {i["code"]: i for r in data["sectors"][0]["runways"] for s in r["sub_runways"] for i in s["indicators"]}
    assert inds["cs01.04.rate"]["value"] == 97.5 and all(i["kind"] == "kpi" for i in inds.values())
