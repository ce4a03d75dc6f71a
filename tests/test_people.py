"""People (issue 14): the roster, who is on duty, dispatch to a person, my work, grid tasks generated once a day.

Local stores on a simulated clock and CliRunner; the server side is in test_people_server.py.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.cli import main
from cqgov_tui.clock import CST, SimClock
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import risk_grades
from cqgov_tui.errors import BadInput, CqgovError, IllegalTransition, PermissionDenied
from cqgov_tui.people import roster, tasks
from cqgov_tui.store import init_store, open_store

ROSTER = """user,name,role,department,jurisdiction,phone,email,on_duty,rotation,duties
zhang,张伟,duty_officer,,500105,13800000001,zhang@jb.example,yes,0,
li,李娜,duty_officer,,500105,13800000002,li@jb.example,yes,1,
night,夜班值班员,duty_officer,,500105,13800000009,,night,2,
gw1,陈思宇,grid_worker,,{grid},13900000001,,yes,0,flood
gw2,王磊,网格员,,{grid2},13900000002,,day,0,
cg1,江北城管-李明,department,cgj,500105,13700000001,,yes,0,
"""
AT_10 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=CST).timestamp()
AT_03 = dt.datetime(2026, 11, 19, 3, 0, tzinfo=CST).timestamp()


def _grids(registry, district="500105"):
    street = registry.children(district)[0].code
    return registry.grid_codes(street)


@pytest.fixture
def world(tmp_path):
    from cqgov_tui.engine import Engine

    clock = SimClock(AT_10)
    path = str(tmp_path / "d.duckdb")
    store = init_store(path, "district", "500105", clock=clock)
    engine = Engine(store, clock=clock)
    g = _grids(engine.registry)
    text = ROSTER.format(grid=g[0], grid2=g[1])
    roster.import_rows(store, engine.registry, roster.parse_csv(text))
    yield store, engine, clock, g, path
    store.close()


def test_roster_import_who_is_on_by_shift_and_reported_status(world):
    store, engine, clock, g, _ = world
    assert {p.user for p in store.people()} == {"zhang", "li", "night", "gw1", "gw2", "cg1"}
    assert store.get_person("gw2").role == "grid_worker"  # 网格员 is read as the role
    assert store.get_person("gw1").duties == ["flood"]
    on = {p.user for p in roster.who_is_on(store, clock.now())}
    assert on == {"zhang", "li", "gw1", "gw2", "cg1"}  # 10:00: the night shift is off
    assert {p.user for p in roster.who_is_on(store, AT_03)} == {"zhang", "li", "night", "gw1", "cg1"}
    roster.report_status(store, "li", "off", 106.57, 29.6, clock.now())
    assert "li" not in {p.user for p in roster.who_is_on(store, clock.now())}
    # a re-import keeps what the person's client reported
    roster.import_rows(store, engine.registry, roster.parse_csv(ROSTER.format(grid=g[0], grid2=g[1])))
    li = store.get_person("li")
    assert (li.status, li.lon, li.lat) == ("off", 106.57, 29.6)
    chain = roster.on_call(store, "duty_officer", g[0], clock.now()).chain
    assert [p.user for p in chain] == ["zhang"]  # li reported off; night is not on shift


@pytest.mark.parametrize("text, message", [
    ("user,name\nx,y\n", "missing columns role"),
    ("user,name,role,department,jurisdiction,phone,email,on_duty\na,A,chef,,500105,,,yes\n", "roster:2: role: unknown role"),
    ("user,name,role,department,jurisdiction,phone,email,on_duty\na,A,grid_worker,,500105,,bad-mail,yes\n",
     "roster:2: email"),
    ("user,name,role,department,jurisdiction,phone,email,on_duty\na,A,grid_worker,,500105,,,sometimes\n",
     "roster:2: on_duty"),
    ("user,name,role,department,jurisdiction,phone,email,on_duty\na,A,grid_worker,,500105,,,yes\n"
     "a,B,grid_worker,,500105,,,yes\n", "roster:3: user 'a' already on line 2"),
])
def test_a_bad_roster_is_refused_with_its_line_and_changes_nothing(world, text, message):
    store, engine, *_ = world
    before = [(p.user, p.version) for p in store.people()]
    with pytest.raises(BadInput, match=message):
        roster.import_rows(store, engine.registry, roster.parse_csv(text))
    assert [(p.user, p.version) for p in store.people()] == before


def test_a_roster_row_outside_the_store_or_of_an_unknown_place_is_refused(world):
    store, engine, *_ = world
    head = store.head()
    for code, why in (("500108", "outside 500105"), ("500105999", "unknown jurisdiction")):
        rows = roster.parse_csv(f"user,name,role,department,jurisdiction,phone,email,on_duty\nx,X,grid_worker,,{code},,,yes\n")
        with pytest.raises(BadInput, match=why):
            roster.import_rows(store, engine.registry, rows)
    assert store.head() == head


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_as_a_roster_is_parsed_or_refused_in_one_line(text):
    header = "user,name,role,department,jurisdiction,phone,email,on_duty\n"
    for candidate in (text, header + text):
        try:
            rows = roster.parse_csv(candidate)
        except BadInput as exc:
            assert "\n" not in str(exc)
        else:
            assert all(r.role in {x.value for x in Role} for r in rows)


def test_dispatch_to_a_person_then_accept_arrive_dispose_from_my_work(world):
    store, engine, clock, g, _ = world
    event = engine.report(category="garbage", title="垃圾堆放", code=g[0])
    engine.act(event.id, "verify", User("d", "d", Role.DISPATCHER, Tier.DISTRICT, "500105"))
    dispatcher = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")
    event, task = tasks.dispatch_to_person(engine, event.number, "gw1", dispatcher)
    assert event.status == "dispatched" and task.assignee == "gw1" and task.event_id == event.id
    assert any(a.action == "assign" and "gw1" in a.note for a in store.audit_entries(event.id))
    mine = tasks.my_work(store, "gw1", clock.now())
    assert [t.id for t in mine] == [task.id]
    other = User("gw2", "王磊", Role.GRID_WORKER, Tier.DISTRICT, "500105")
    with pytest.raises(PermissionDenied, match="gw1"):
        tasks.act_on_task(engine, task.id, "accept", other)
    worker = User("gw1", "陈思宇", Role.GRID_WORKER, Tier.DISTRICT, "500105")
    assert tasks.act_on_task(engine, task.id, "accept", worker).status == "accepted"
    assert store.get_event(event.id).status == "accepted"
    tasks.act_on_task(engine, task.id, "arrive", worker)
    done = tasks.act_on_task(engine, task.id, "done", worker, note="已清运")
    assert done.status == "done" and store.get_event(event.id).status == "disposed"
    with pytest.raises(IllegalTransition):
        tasks.act_on_task(engine, task.id, "done", worker)
    assert tasks.my_work(store, "gw1", clock.now()) == []


def test_dispatch_refuses_someone_off_duty_far_away_or_unknown(world):
    store, engine, clock, g, _ = world
    event = engine.report(category="garbage", title="垃圾堆放", code=g[0])
    dispatcher = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")
    engine.act(event.id, "verify", dispatcher)
    roster.report_status(store, "gw1", "off", None, None, clock.now())
    with pytest.raises(IllegalTransition, match="not on duty"):
        tasks.dispatch_to_person(engine, event.id, "gw1", dispatcher)
    with pytest.raises(CqgovError, match="no person"):
        tasks.dispatch_to_person(engine, event.id, "nobody", dispatcher)
    assert store.get_event(event.id).status == "verified" and store.tasks(event_id=event.id) == []
    near = [p.user for p, _ in roster.nearby(store, g[0], None, None, clock.now())]
    assert "gw1" not in near and "cg1" in near


def test_a_days_periodic_tasks_are_generated_exactly_once_also_after_a_restart(world):
    store, engine, clock, g, path = world
    first = tasks.generate_day(store, engine.registry, engine.catalogue, "500105", clock.now())
    assert first.created > 2 * len(tasks.grids_of(engine.registry, "500105")) - 1 and not first.already
    again = tasks.generate_day(store, engine.registry, engine.catalogue, "500105", clock.now())
    assert again.already and again.created == 0
    count = store.count_rows("tasks")
    store.close()
    reopened = open_store(path, clock)
    try:
        after = tasks.generate_day(reopened, engine.registry, engine.catalogue, "500105", clock.now())
        assert after.already and reopened.count_rows("tasks") == count
        # the grid's worker has today's patrol and visit; the next day is a new day
        mine = tasks.my_work(reopened, "gw1", clock.now())
        assert {t.template for t in mine} >= {"grid_patrol", "household_visit"}
        clock.advance(86400)
        nxt = tasks.generate_day(reopened, engine.registry, engine.catalogue, "500105", clock.now())
        assert nxt.created > 0 and reopened.count_rows("tasks") == count + nxt.created
        figures = reopened.task_figures("500105", 0, 2e9)
        assert figures["total"] == count + nxt.created and figures["done"] == 0
    finally:
        reopened.close()


def test_completing_tasks_in_a_batch_and_a_hazard_raises_the_risk_grade(world):
    store, engine, clock, g, _ = world
    tasks.generate_day(store, engine.registry, engine.catalogue, "500105", clock.now())
    inspections = [t for t in store.tasks(scope_code="500105", limit=100_000) if t.target]
    assert inspections, "九龙坡/江北 risk points make inspections"
    t = inspections[0]
    admin = User("adm", "adm", Role.ADMIN, Tier.DISTRICT, "500105")
    assert tasks.complete_tasks(store, [(t.id, "hazard", "井盖松动")], admin) == 1
    # the completed inspection is the inspection risk grades read (one rule: engine.risk_grades)
    grade = risk_grades.grade_of(store, engine.catalogue, clock.now(), t.target)
    assert grade.inspected_at == clock.now() and "巡查发现隐患 inspection found a hazard" in grade.reasons
    assert grade.colour.rank <= Colour.YELLOW.rank
    with pytest.raises(IllegalTransition):
        tasks.complete_tasks(store, [(t.id, None, "")], admin)
    with pytest.raises(BadInput, match="finding"):
        tasks.complete_tasks(store, [(inspections[1].id, "maybe", "")], admin)
    assert store.get_task(inspections[1].id).status == "assigned"


def test_cli_roster_dispatch_and_my_work(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "s.duckdb")
    assert runner.invoke(main, ["init", "--db", db, "--tier", "district", "--code", "500105"]).exit_code == 0
    from cqgov_tui.geo.registry import get_registry

    g = _grids(get_registry())
    csv = tmp_path / "roster.csv"
    csv.write_text(ROSTER.format(grid=g[0], grid2=g[1]), encoding="utf-8")
    r = runner.invoke(main, ["roster", "import", "--db", db, str(csv), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["added"] == 6
    r = runner.invoke(main, ["roster", "who-is-on", "--db", db, "--role", "grid_worker", "--json"])
    assert r.exit_code == 0 and {p["user"] for p in json.loads(r.output)["people"]} <= {"gw1", "gw2"}
    bad = tmp_path / "bad.csv"
    bad.write_text("user,name\n", encoding="utf-8")
    r = runner.invoke(main, ["roster", "import", "--db", db, str(bad)])
    assert r.exit_code != 0 and r.output.count("\n") <= 1 and "missing column" in r.output
    r = runner.invoke(main, ["events", "report", "--db", db, "--category", "garbage", "--code", g[0], "--json"])
    number = json.loads(r.output)["number"]
    assert runner.invoke(main, ["events", "act", "--db", db, number, "verify"]).exit_code == 0
    r = runner.invoke(main, ["events", "act", "--db", db, number, "dispatch", "--to", "gw1", "--json"])
    assert r.exit_code == 0, r.output
    task_id = json.loads(r.output)["task_id"]
    r = runner.invoke(main, ["tasks", "mine", "--db", db, "--user", "gw1", "--json"])
    assert [t["id"] for t in json.loads(r.output)["tasks"]] == [task_id]
    for action in ("accept", "arrive", "done"):
        r = runner.invoke(main, ["tasks", "act", "--db", db, "--user", "gw1", task_id, action])
        assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["events", "show", "--db", db, number, "--json"])
    assert json.loads(r.output)["status"] == "disposed"
    r = runner.invoke(main, ["tasks", "act", "--db", db, "--user", "gw2", task_id, "done"])
    assert r.exit_code != 0 and "cqgov:" in r.output
    r = runner.invoke(main, ["roster", "list"])
    assert r.exit_code != 0 and "--db" in r.output


def test_flood_warning_from_a_river_level_alarm_reaches_each_streets_flood_officer(tmp_path):
    """万州: a river-level alarm at the district sends 通知转移 to its streets; at a street the 防汛责任人 (not the
    duty officer) is told, answers with the street's receipt; steps 2 and 3 follow by hand."""
    from cqgov_tui.engine import Engine, directives
    from cqgov_tui.notify import flood
    from cqgov_tui.notify.service import Notifier

    clock = SimClock(AT_10)
    district = init_store(str(tmp_path / "d.duckdb"), "district", "500101", clock=clock)
    street_code = "500101001"  # 陈家坝街道
    street = init_store(str(tmp_path / "s.duckdb"), "street", street_code, clock=clock)
    try:
        engine = Engine(district, clock=clock)
        district_notifier = Notifier(district, clock=clock, registry=engine.registry)
        alarm = engine.report(category="flood_warning", title="苎溪河水位超警戒", code="500101", source="sensor",
                              reporter="river-gauge-1")
        district_notifier.tick()
        sent = [d for d in district.directives() if flood.step_of(d) == 1]
        assert len(sent) == 1 and sent[0].targets == ["500101"] and sent[0].require_ack
        assert any(a.action == "flood.warn" for a in district.audit_entries(alarm.id))
        district_notifier.tick()
        assert len([d for d in district.directives() if flood.step_of(d) == 1]) == 1  # once per alarm
        # at the street (the directive arrives by sync): its 防汛责任人 is told, not its duty officer
        roster.import_rows(street, engine.registry, roster.parse_csv(
            "user,name,role,department,jurisdiction,phone,email,on_duty,rotation,duties\n"
            f"duty-s,值班长,duty_officer,,{street_code},1,,yes,0,\n"
            f"flood-s,陈思宇,grid_worker,,{street_code},2,,yes,0,防汛责任人\n"))
        street_notifier = Notifier(street, clock=clock, registry=engine.registry)
        street.put_directive(sent[0], origin=district.node)
        directives.deliver_arrived(street)
        street_notifier.tick()
        told = street.notifications(ref=sent[0].id)
        assert {n.recipient for n in told} == {"flood-s"} and "通知转移" in told[0].subject
        officer = User("flood-s", "陈思宇", Role.GRID_WORKER, Tier.STREET, street_code)
        receipt = directives.advance(street, sent[0].id, street_code, "acknowledged", officer)
        assert receipt.state == "acknowledged"
        # by hand: 准备转移, then 立即转移
        duty = User("duty-d", "值班长", Role.DUTY_OFFICER, Tier.DISTRICT, "500101")
        for step in (2, 3):
            d = flood.warn(district, engine.registry, duty, [street_code], step, "苎溪河")
            assert flood.step_of(d) == step and d.priority == "urgent"
        with pytest.raises(BadInput, match="step"):
            flood.warn(district, engine.registry, duty, [street_code], 4)
    finally:
        district.close()
        street.close()
