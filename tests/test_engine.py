"""The engine: SLA deadlines and the overdue ladder, plans, dedup, inhibition, 多跨 roll-up, CLI act and audit verify."""

from __future__ import annotations

import json
import random
from datetime import datetime

import duckdb
import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.loader import load_catalogue, parse_plans_text
from cqgov_tui.cli import main
from cqgov_tui.clock import CST, SimClock
from cqgov_tui.domain.entities import Role, SmartPlan, Status, Tier, User
from cqgov_tui.engine import Engine, dedup, inhibit, lifecycle, multi, sla
from cqgov_tui.engine.plans import PlanMatcher
from cqgov_tui.errors import BadInput, IllegalTransition, PermissionDenied
from cqgov_tui.geo.registry import get_registry
from cqgov_tui.store import init_store, open_store
from tests.factories import make_event

CAT = load_catalogue()
REG = get_registry()
START = datetime(2026, 11, 18, 10, 0, tzinfo=CST).timestamp()
MIN = 60.0


def user(role=Role.DISPATCHER, tier=Tier.DISTRICT, scope="500108", name=None) -> User:
    name = name or f"{Role(role).value}@{Tier(tier).value}"
    return User(name, name, Role(role), Tier(tier), scope)


@pytest.fixture
def make_engine():
    stores = []

    def _make(tier="district", code="500108", start=START):
        clock = SimClock(start)
        store = init_store(":memory:", tier, code, clock=clock)
        stores.append(store)
        return Engine(store, CAT, REG, clock), clock

    yield _make
    for s in stores:
        s.close()


def point(code: str, seed: int = 0) -> tuple[float, float]:
    return REG.random_point(code, random.Random(seed))


def report(eng, category="dispute", code="500108001", seed=0, **kw):
    lon, lat = kw.pop("lonlat", None) or point(code, seed)
    return eng.report(category=category, title=kw.pop("title", "t"), lon=lon, lat=lat, **kw)


def trail(eng, event, action=None):
    return [a for a in eng.store.audit_entries(event.id) if action is None or a.action == action]


# ---------------------------------------------------------------- SLA deadlines


@pytest.mark.parametrize("profile, walk", [
    ("grid", [("reported", 1), ("verified", 5), ("accepted", 5), ("on_scene", 10), ("feedback", 1440)]),
    ("fire", [("reported", 1), ("dispatched", 3), ("on_scene", 5), ("disposed", 240), ("closed", None)]),
    ("gas", [("reported", 5), ("verified", 5), ("dispatched", 12), ("on_scene", 20), ("disposed", 240)]),
])
def test_stage_deadlines_follow_the_profile(profile, walk):
    p = CAT.sla(profile)
    for status, minutes in walk:
        due = sla.due_at(p, status, START)
        assert (None if due is None else (due - START) / MIN) == minutes, (profile, status)


def test_engine_deadline_moves_with_each_stage_and_time_left(make_engine):
    eng, clock = make_engine()
    e = report(eng, category="manhole_cover")  # grid profile: respond 1, on scene 5, report 10
    assert e.sla_profile == "grid" and e.due_at == START + 1 * MIN
    clock.advance(30)
    assert eng.time_left(e) == 30 and not eng.is_overdue(e)
    d = user()
    e = eng.act(e.id, "verify", d)
    assert e.due_at == START + 5 * MIN
    e = eng.act(e.id, "dispatch", d)
    e = eng.act(e.id, "accept", user(Role.DEPARTMENT))
    e = eng.act(e.id, "arrive", user(Role.GRID_WORKER))
    assert e.due_at == START + 10 * MIN
    clock.set(START + 11 * MIN)
    assert eng.is_overdue(e) and eng.time_left(e) == -1 * MIN


def test_fire_plan_puts_event_on_the_1_3_5_profile(make_engine):
    eng, _ = make_engine("district", "500103")
    rp = sorted((r for r in CAT.risk_points.values() if r.category_code == "highrise_fire"
                 and r.grid_code.startswith("500103")), key=lambda r: r.code)[0]
    e = eng.report(category="highrise_fire", title="火", lon=rp.lon, lat=rp.lat)
    assert e.sla_profile == "fire" and e.status == "dispatched" and e.plan_code == "highrise_fire"
    assert e.due_at == e.reported_at + 3 * MIN  # dispatched within 1 already met; on scene by 3


# ---------------------------------------------------------------- overdue ladder


def test_street_event_ladder_street_district_city_then_stops(make_engine):
    """A garbage pile (grid profile, escalate_after [30, 120]): the district supervises 30 minutes after
    the missed 1-minute deadline, the city two hours after that — not within three minutes."""
    eng, clock = make_engine("street", "500108001")
    e = report(eng, category="garbage")  # grid profile, blue, respond within 1 min
    assert e.colour == "blue" and e.due_at == START + MIN
    clock.set(START + MIN)
    assert eng.sweep().escalated == []  # due now is not yet overdue
    clock.set(START + MIN + 1)
    r = eng.sweep()
    assert e.id in r.overdue and e.id in r.held and r.escalated == []  # overdue, waiting its profile's delay
    clock.set(START + 31 * MIN - 1)
    assert eng.sweep().escalated == []
    clock.set(START + 31 * MIN)
    r = eng.sweep()
    e = eng.store.get_event(e.id)
    assert r.escalated == [e.id] and e.supervised_by == "district" and e.colour == "yellow" and e.escalation_level == 1
    assert e.due_at == START + 31 * MIN  # the supervisor's clock starts when supervision fires
    clock.set(START + 151 * MIN - 1)
    assert eng.sweep().escalated == []  # the city waits its own two hours, not every sweep
    clock.set(START + 151 * MIN + 1)
    assert eng.sweep().escalated == [e.id]
    e = eng.store.get_event(e.id)
    assert e.supervised_by == "city" and e.colour == "orange" and e.escalation_level == 2
    for k in range(3, 8):  # the city is the top: colour and supervision stay
        clock.set(START + 151 * MIN + k * 60 * MIN)
        r = eng.sweep()
        assert e.id in r.overdue and r.escalated == []
    e = eng.store.get_event(e.id)
    assert (e.colour, e.supervised_by, e.escalation_level) == ("orange", "city", 2)
    steps = trail(eng, e, "supervise")
    assert [s.note.split("; ")[1] for s in steps] == ["district supervises", "city supervises"]
    assert all(s.from_status == s.to_status == "reported" for s in steps)
    assert eng.store.verify_audit().ok


def test_escalation_delays_follow_the_category_profile(make_engine):
    """A fire (fire profile, escalate_after [0, 3]) is supervised the moment its deadline passes."""
    eng, clock = make_engine("street", "500108001")
    fire = report(eng, category="ebike_fire")
    garbage = report(eng, category="garbage")
    clock.set(START + 2 * MIN)
    r = eng.sweep()
    assert fire.id in r.escalated and garbage.id not in r.escalated


@pytest.mark.parametrize("tier, code, ladder", [("district", "500108", ["city"]), ("city", "500000", ["city"])])
def test_district_and_city_events_get_one_step(make_engine, tier, code, ladder):
    eng, clock = make_engine(tier, code)
    e = report(eng, category="garbage")
    for k in (1, 31, 32, 200, 400):
        clock.set(START + k * MIN + 1)
        eng.sweep()
    e = eng.store.get_event(e.id)
    assert [s.note.split("; ")[1].split()[0] for s in trail(eng, e, "supervise")] == ladder
    assert e.supervised_by == "city" and e.colour == "yellow"


def test_late_sweep_escalates_one_step_at_a_time(make_engine):
    eng, clock = make_engine("street", "500108001")
    e = report(eng, category="garbage")
    clock.set(START + 10 * 60 * MIN)  # slept through both delays
    assert eng.sweep().escalated == [e.id]
    e = eng.store.get_event(e.id)
    assert e.escalation_level == 1 and e.due_at == START + 31 * MIN
    assert eng.sweep().escalated == [e.id]  # the next sweep takes the next step
    assert eng.store.get_event(e.id).escalation_level == 2


def test_closed_events_are_never_swept(make_engine):
    eng, clock = make_engine()
    e = report(eng)
    eng.act(e.id, "reject", user(), note="重复来电")
    clock.advance(10 * 86400)
    r = eng.sweep()
    assert r.overdue == [] and eng.store.get_event(e.id).escalation_level == 0


# ---------------------------------------------------------------- lifecycle refusals


def test_illegal_transition_names_state_and_action_and_changes_nothing(make_engine):
    eng, _ = make_engine()
    e = report(eng)
    head, n = eng.store.head(), len(eng.store.audit_entries())
    with pytest.raises(IllegalTransition, match=r"cannot close an event that is reported"):
        eng.act(e.id, "close", user())
    with pytest.raises(IllegalTransition, match=r"reject needs a reason \(event is reported\)"):
        eng.act(e.id, "reject", user(), note="   ")
    with pytest.raises(PermissionDenied, match=r"a grid_worker may not reject \(event is reported\)"):
        eng.act(e.id, "reject", user(Role.GRID_WORKER), note="假")
    with pytest.raises(PermissionDenied, match=r"^no event '.*' in your jurisdiction$"):  # nothing of the event
        eng.act(e.id, "verify", user(scope="500105"))
    with pytest.raises(IllegalTransition, match=r"unknown action 'fly'"):
        eng.act(e.id, "fly", user())
    assert eng.store.head() == head and len(eng.store.audit_entries()) == n
    assert eng.store.get_event(e.id) == e


def test_escalate_refused_at_city_and_sets_supervision_below(make_engine):
    eng, _ = make_engine("city", "500000")
    e = report(eng)
    with pytest.raises(PermissionDenied, match="the city tier may not escalate"):
        eng.act(e.id, "escalate", user(Role.DUTY_OFFICER, Tier.CITY, "500000"))
    deng, _ = make_engine("district", "500108")
    d = report(deng)
    d = deng.act(d.id, "escalate", user(Role.DUTY_OFFICER), note="重大")
    assert (d.status, d.supervised_by, d.escalation_level) == ("escalated", "city", 1)
    d = deng.act(d.id, "dispatch", user())  # the upper tier takes it on from there
    assert d.status == "dispatched"


def test_reject_needs_reason_and_records_it(make_engine):
    eng, _ = make_engine()
    e = eng.act(report(eng).id, "reject", user(), note="虚假报警")
    assert e.status == "rejected" and e.closed_at is not None
    assert trail(eng, e)[-1].note == "虚假报警"


def test_rules_table_is_the_only_authority():
    # every open loop state has a way forward; terminal states accept only comments (and review after close)
    for s in Status:
        acts = {r.action for r in lifecycle.RULES.values() if s in r.sources}
        if s in (Status.MERGED, Status.REJECTED):
            assert acts == {"comment"}
        elif s is Status.REVIEWED:
            assert acts == {"comment", "callback"}  # 回访 after closing (engine.callbacks)
        else:
            assert acts - {"comment"}, s
    assert lifecycle.allowed_actions("reported", "grid_worker", "street") == ["verify", "comment"]
    assert "escalate" not in lifecycle.allowed_actions("reported", "duty_officer", "city")


# ---------------------------------------------------------------- plans


def _plan(**kw) -> SmartPlan:
    return SmartPlan(code="p", name="p", categories=kw.pop("categories", ("noise",)), **kw)


def test_plan_matching_by_category_colour_place_hours_and_risk_point():
    m = PlanMatcher(CAT, REG)
    day = datetime(2026, 11, 18, 12, 0, tzinfo=CST).timestamp()
    night = datetime(2026, 11, 18, 23, 30, tzinfo=CST).timestamp()
    ev = make_event(category_code="noise", colour="blue", grid_code="500108001001", street_code="500108001")
    assert m.matches(_plan(), ev, day)
    assert not m.matches(_plan(categories=("garbage",)), ev, day)
    assert m.matches(_plan(colours=("blue", "red")), ev, day)
    assert not m.matches(_plan(colours=("red",)), ev, day)
    assert m.matches(_plan(places=("500108001",)), ev, day)
    assert not m.matches(_plan(places=("500105",)), ev, day)
    assert m.matches(_plan(hours=(22, 6)), ev, night) and not m.matches(_plan(hours=(22, 6)), ev, day)
    assert m.matches(_plan(hours=(8, 18)), ev, day) and not m.matches(_plan(hours=(8, 18)), ev, night)
    rp = next(r for r in CAT.risk_points.values() if r.category_code == "septic_methane")
    at_tank = make_event(category_code="noise", lon=rp.lon + 0.0003, lat=rp.lat)  # ~29 m east
    far = make_event(category_code="noise", lon=107.9, lat=31.9)
    assert m.matches(_plan(near_risk_km=0.1), at_tank, day)
    assert not m.matches(_plan(near_risk_km=0.1), far, day)
    assert not m.matches(_plan(near_risk_km=0.1), make_event(category_code="noise", lon=None, lat=None), day)


def test_night_noise_plan_dispatches_only_at_night(make_engine):
    eng, clock = make_engine()
    by_day = report(eng, category="noise", seed=1)
    assert by_day.status == "reported" and by_day.plan_code is None
    clock.set(datetime(2026, 11, 18, 23, 0, tzinfo=CST).timestamp())
    at_night = report(eng, category="noise", seed=2)
    assert at_night.plan_code == "night_noise" and at_night.status == "dispatched"
    assert at_night.assignee == "sthj" and "gaj" in at_night.departments and at_night.sla_profile == "urgent"
    actions = [a.action for a in trail(eng, at_night)]
    assert actions == ["report", "plan", "verify", "dispatch", "notify"]


def test_engine_runs_plans_loaded_from_text(make_engine, tmp_path):
    plans = parse_plans_text(
        "- code: dispute_fast\n  name: 纠纷快处\n  categories: [dispute]\n  places: ['500108001']\n"
        "  auto_sign: true\n  dispatch: true\n  co_departments: [gaj]\n  sla_profile: urgent\n", "t.yaml", CAT)
    eng, _ = make_engine()
    eng.plans.catalogue = type(CAT)(**{**CAT.__dict__, "plans": plans})
    inside = report(eng, code="500108001", seed=3)
    outside = report(eng, code="500108002", seed=3)
    assert inside.status == "dispatched" and inside.sla_profile == "urgent" and "gaj" in inside.departments
    assert outside.status == "reported" and outside.plan_code is None


@pytest.mark.parametrize("text, line, reason", [
    ("- code: x\n  name: x\n  categories: [no_such]\n", 3, "no_such"),
    ("- code: x\n  name: x\n  categories: [noise]\n  hours: [25, 3]\n", 4, "hour"),
    ("- code: x\n  name: x\n  categories: [noise]\n  open_multi: [nowhere]\n", 4, "nowhere"),
    ("- code: x\n  name: x\n  categories: [noise]\n  sla_profile: slow\n", 4, "slow"),
])
def test_bad_plan_text_names_file_and_line(text, line, reason):
    with pytest.raises(BadInput) as err:
        parse_plans_text(text, "plans/bad.yaml", CAT)
    msg = str(err.value)
    assert msg.startswith(f"plans/bad.yaml:{line}") and reason in msg and "\n" not in msg


# ---------------------------------------------------------------- dedup


def _offset(lon, lat, east_m=0.0, north_m=0.0):
    import math

    return lon + east_m / (111_320.0 * math.cos(math.radians(lat))), lat + north_m / 111_320.0


def test_dedup_confidence_bounds():
    a = make_event(lon=106.57, lat=29.52)
    assert dedup.confidence(a, a) == 1.0
    lon, lat = _offset(106.57, 29.52, east_m=49)
    assert dedup.confidence(make_event(lon=lon, lat=lat, grid_code="x"), a) < 0.5
    lon, lat = _offset(106.57, 29.52, east_m=51)
    assert dedup.confidence(make_event(lon=lon, lat=lat), a) is None
    assert dedup.confidence(make_event(reported_at=a.reported_at + 1801), a) is None


def test_auto_merge_near_and_soon_flag_otherwise(make_engine):
    eng, clock = make_engine()
    first = report(eng, category="garbage", seed=4)
    clock.advance(60)
    twin = report(eng, category="garbage", lonlat=_offset(first.lon, first.lat, east_m=5))
    assert twin.status == "merged" and twin.merged_into == first.id
    assert trail(eng, twin, "merge")[0].actor == "system"
    clock.advance(8 * 60)
    maybe = report(eng, category="garbage", lonlat=_offset(first.lon, first.lat, north_m=30))
    assert maybe.status == "reported" and maybe.duplicate_of == first.id and maybe.merged_into is None
    assert trail(eng, maybe, "flag_duplicate")
    other_cat = report(eng, category="noise", lonlat=(first.lon, first.lat))
    assert other_cat.duplicate_of is None and other_cat.status != "merged"
    clock.advance(31 * 60)
    later = report(eng, category="garbage", lonlat=(first.lon, first.lat))
    assert later.duplicate_of is None and later.status == "reported"


def test_flagged_duplicate_is_not_auto_dispatched_by_a_plan(make_engine):
    eng, clock = make_engine("district", "500101")
    spill = report(eng, category="muck_spill", code="500101001", seed=7)
    assert spill.status == "dispatched"
    clock.advance(6 * 60)
    again = report(eng, category="muck_spill", lonlat=_offset(spill.lon, spill.lat, north_m=35))
    assert again.duplicate_of == spill.id and again.status == "reported"
    assert [a.action for a in trail(eng, again)] == ["report", "flag_duplicate", "plan", "hold"]


def test_merge_target_must_be_open_and_not_itself(make_engine):
    eng, _ = make_engine()
    a, b = report(eng, seed=5), report(eng, seed=6)
    eng.act(b.id, "reject", user(), note="无效")
    head = eng.store.head()
    with pytest.raises(BadInput, match="it is rejected"):
        eng.act(a.id, "merge", user(), target=b.id)
    with pytest.raises(BadInput, match="into itself"):
        eng.act(a.id, "merge", user(), target=a.id)
    with pytest.raises(IllegalTransition, match="needs the event to merge into"):
        eng.act(a.id, "merge", user())
    assert eng.store.head() == head
    c = report(eng, seed=8)
    a = eng.act(a.id, "merge", user(), target=c.number)
    assert a.status == "merged" and a.merged_into == c.id


# ---------------------------------------------------------------- inhibition


def test_flood_warning_inhibits_grid_alarms_beneath_it_only(make_engine):
    eng, clock = make_engine("city", "500000")
    before = report(eng, category="waterlogging", code="500105", seed=1)
    warning = eng.report(category="flood_warning", title="暴雨预警", code="500105")
    assert warning.inhibited_by is None
    subs = eng.store.children_of(warning.id)
    assert len(subs) == len(REG.children("500105")) and all(s.inhibited_by is None for s in subs)
    under = [report(eng, category="waterlogging", code="500105", seed=10 + i) for i in range(3)]
    underpass = report(eng, category="underpass_flooding", code="500105", seed=20)
    elsewhere = report(eng, category="waterlogging", code="500108", seed=2)
    other_cat = report(eng, category="garbage", code="500105", seed=3)
    assert all(e.inhibited_by == warning.id for e in under + [underpass])
    assert before.inhibited_by is None and elsewhere.inhibited_by is None and other_cat.inhibited_by is None
    assert not inhibit.is_alerting(under[0]) and inhibit.is_alerting(elsewhere)
    assert eng.store.get_event(under[0].id).status == "reported"  # still recorded and handled
    # overdue under an open warning: held, not escalated; once the warning ends the ladder resumes
    clock.advance(35 * MIN)  # past the grid profile's 1-minute deadline and its 30-minute escalation delay
    r = eng.sweep()
    assert set(e.id for e in under) <= set(r.held) and elsewhere.id in r.escalated
    assert all(eng.store.get_event(e.id).escalation_level == 0 for e in under)
    for s in eng.store.children_of(warning.id):
        eng.act(s.id, "reject", user(Role.DUTY_OFFICER, Tier.CITY, "500000"), note="预警解除")
    eng.act(warning.id, "merge", user(Role.DUTY_OFFICER, Tier.CITY, "500000"), target=other_cat.id)
    clock.advance(5 * MIN)
    r = eng.sweep()
    assert set(e.id for e in under) <= set(r.escalated)
    after = report(eng, category="waterlogging", code="500105", seed=30)
    assert after.inhibited_by is None


def test_inhibited_event_plan_notifications_are_suppressed(make_engine):
    eng, _ = make_engine("city", "500000")
    warning = eng.report(category="flood_warning", title="暴雨预警", code="500105")
    rp = sorted((r for r in CAT.risk_points.values() if r.grid_code.startswith("500105")), key=lambda r: r.code)[0]
    e = eng.report(category="waterlogging", title="积水", colour="orange", lon=rp.lon, lat=rp.lat)
    assert e.plan_code == "waterlogging_serious" and e.inhibited_by == warning.id and e.status == "dispatched"
    actions = [a.action for a in trail(eng, e)]
    assert "notify" not in actions and "notify_suppressed" in actions


# ---------------------------------------------------------------- 多跨


def test_multi_master_rolls_up_from_subtasks(make_engine):
    eng, _ = make_engine("city", "500000")
    city = user(Role.DUTY_OFFICER, Tier.CITY, "500000")
    master = eng.report(category="water_pollution", title="江面油污", code="500105")
    subs = eng.open_subtasks(master.id, ["500105", "500106", "500108"], city)
    assert [s.district_code for s in subs] == ["500105", "500106", "500108"] and all(s.parent_id == master.id for s in subs)
    # a district acts only on its own sub-task
    with pytest.raises(PermissionDenied, match="in your jurisdiction"):
        eng.act(subs[0].id, "verify", user(scope="500108"))
    steps = [("verify", Role.DISPATCHER), ("dispatch", Role.DISPATCHER), ("accept", Role.DEPARTMENT),
             ("arrive", Role.DEPARTMENT), ("dispose", Role.DEPARTMENT), ("feedback", Role.DEPARTMENT),
             ("close", Role.DISPATCHER)]
    for action, role in steps:
        for i, s in enumerate(subs[:2]):
            eng.act(s.id, action, user(role, scope=s.district_code))
        # the third district has not moved: the master waits for its least advanced live sub-task
        assert eng.store.get_event(master.id).status == "reported"
    eng.act(subs[2].id, "reject", user(scope="500108"), note="不在本区河段")
    m = eng.store.get_event(master.id)
    assert m.status == "closed" and m.closed_at is not None
    rolls = [a for a in trail(eng, m) if a.note == "多跨 roll-up from sub-tasks"]
    assert [a.to_status for a in rolls] == ["verified", "dispatched", "accepted", "on_scene", "disposed", "feedback", "closed"]
    assert multi.rolled_up_status(eng.store.children_of(master.id)) is Status.CLOSED
    assert eng.store.verify_audit().ok


def test_open_subtasks_refusals(make_engine):
    eng, _ = make_engine("district", "500108")
    m = report(eng)
    with pytest.raises(PermissionDenied, match="may not open sub-tasks"):
        eng.open_subtasks(m.id, ["500108001"], user(Role.GRID_WORKER))
    with pytest.raises(PermissionDenied, match="outside 500108"):
        eng.open_subtasks(m.id, ["500105"], user())  # the district's system may not place work in another district
    head = eng.store.head()
    with pytest.raises(BadInput):
        eng.open_subtasks(m.id, ["999999"], user())
    subs = eng.open_subtasks(m.id, ["500108001", "cgj"], user())
    with pytest.raises(IllegalTransition, match="itself a sub-task"):
        eng.open_subtasks(subs[0].id, ["500108002"], user())
    assert subs[1].status == "dispatched" and subs[1].assignee == "cgj" and subs[0].status == "reported"
    assert eng.store.get_event(m.id).status == "reported" and eng.store.head() > head


def test_highrise_fire_plan_opens_department_subtasks(make_engine):
    eng, _ = make_engine("district", "500103")
    rp = sorted((r for r in CAT.risk_points.values() if r.category_code == "highrise_fire"
                 and r.grid_code.startswith("500103")), key=lambda r: r.code)[0]
    m = eng.report(category="highrise_fire", title="火", lon=rp.lon, lat=rp.lat)
    subs = eng.store.children_of(m.id)
    assert sorted(s.assignee for s in subs) == ["gaj", "wjw", "xfzd"]
    assert all(s.status == "dispatched" and s.sla_profile == "fire" for s in subs)


# ---------------------------------------------------------------- CLI: events act, audit verify


@pytest.fixture
def cli_db(tmp_path):
    path = str(tmp_path / "cli.duckdb")
    init_store(path, "district", "500108").close()
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _report_cli(db, **kw):
    r = _run("events", "report", "--db", db, "--category", kw.get("category", "dispute"), "--code",
             kw.get("code", "500108001"), "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_cli_events_act_paths_and_one_line_refusals(cli_db):
    e = _report_cli(cli_db)
    r = _run("events", "act", e["number"], "verify", "--db", cli_db, "--role", "dispatcher")
    assert r.exit_code == 0 and r.output.strip() == f"{e['number']} verified"
    r = _run("events", "act", e["id"], "close", "--db", cli_db)
    assert r.exit_code == 3 and r.output.strip() == "cqgov: cannot close an event that is verified (已核实)"
    r = _run("events", "act", e["id"], "reject", "--db", cli_db)
    assert r.exit_code == 3 and "reject needs a reason" in r.output and len(r.output.strip().splitlines()) == 1
    r = _run("events", "act", e["id"], "arrive", "--db", cli_db, "--role", "dispatcher")
    assert r.exit_code in (3, 4) and len(r.output.strip().splitlines()) == 1
    r = _run("events", "act", "nope-0000", "verify", "--db", cli_db)
    assert r.exit_code == 2 and r.output.strip() == "cqgov: no event 'nope-0000'"
    r = _run("events", "act", e["id"], "teleport", "--db", cli_db)
    assert r.exit_code == 3 and "unknown action 'teleport'" in r.output and "Traceback" not in r.output
    r = _run("events", "act", e["id"], "dispatch", "--db", cli_db, "--department", "nosuch")
    assert r.exit_code == 2 and "unknown department 'nosuch'" in r.output
    r = _run("events", "act", e["id"], "dispatch", "--db", cli_db, "--department", "cgj", "--department", "gaj", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["assignee"] == "cgj"
    other = _report_cli(cli_db, code="500108002")
    r = _run("events", "act", other["id"], "merge", "--into", e["number"], "--db", cli_db, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["merged_into"] == e["id"]
    r = _run("events", "show", e["id"], "--db", cli_db, "--json")
    assert [a["action"] for a in json.loads(r.output)["audit"]] == ["report", "verify", "dispatch"]
    assert _run("audit", "verify", "--db", cli_db).exit_code == 0


def _tamper(db, sql):
    con = duckdb.connect(db)
    try:
        con.execute(sql)
    finally:
        con.close()


@pytest.mark.parametrize("sql, bad_seq", [
    ("UPDATE audit_log SET note = 'edited' WHERE seq = 3", 3),
    ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5", 5),
    ("DELETE FROM audit_log WHERE seq = 4", 4),
    ("DELETE FROM audit_log WHERE seq = 1", 1),
    ("UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 3 WHEN 3 THEN 2 ELSE seq END WHERE seq IN (2, 3)", 2),
    ("UPDATE audit_log SET acted_at = acted_at + 1 WHERE seq = 6", 6),
])
def test_audit_verify_cli_catches_change_delete_reorder(cli_db, sql, bad_seq):
    e = _report_cli(cli_db)
    for action in ("verify", "dispatch", "accept", "arrive", "dispose"):
        role = "dispatcher" if action in ("verify", "dispatch") else "department"
        assert _run("events", "act", e["id"], action, "--db", cli_db, "--role", role).exit_code == 0
    ok = _run("audit", "verify", "--db", cli_db, "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["entries"] == 6
    _tamper(cli_db, sql)
    r = _run("audit", "verify", "--db", cli_db)
    assert r.exit_code != 0 and f"seq {bad_seq}" in r.output
    r = _run("audit", "verify", "--db", cli_db, "--json")
    assert r.exit_code != 0 and json.loads(r.output)["first_bad_seq"] == bad_seq


def test_audit_verify_catches_truncated_tail_head_mismatch(cli_db):
    e = _report_cli(cli_db)
    _run("events", "act", e["id"], "verify", "--db", cli_db, "--role", "dispatcher")
    with open_store(cli_db) as st:
        head = st.verify_audit().head
    _tamper(cli_db, "DELETE FROM audit_log WHERE seq = 2")
    with open_store(cli_db) as st:
        v = st.verify_audit()
    # removing the newest entry leaves a valid prefix; its head differs from the witnessed one
    assert v.ok and v.entries == 1 and v.head != head
