"""Reviews (复盘): stages against their SLA with late flags, actors, supervision, related events, CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.engine.review import draft_review
from cqgov_tui.errors import BadInput
from cqgov_tui.store import init_store

START = 1_795_000_000.0
MIN = 60.0
OFFICER = User("duty", "值班长", Role.DUTY_OFFICER, Tier.DISTRICT, "500108")
WORKER = User("w7", "网格员七", Role.GRID_WORKER, Tier.DISTRICT, "500108")
DEPT = User("cg1", "城管一", Role.DEPARTMENT, Tier.DISTRICT, "500108")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture
def world(tmp_db, catalogue):
    clock = SimClock(START)
    store = init_store(tmp_db, "district", "500108", clock=clock)
    yield store, Engine(store, catalogue, clock=clock), clock
    store.close()


def _loop(engine, clock, event, steps):
    """Run (minutes after report, action, actor) steps on the simulated clock."""
    for at_min, action, actor, *extra in steps:
        clock.set(event.reported_at + at_min * MIN)
        if action == "sweep":
            engine.sweep()
        else:
            engine.act(event.id, action, actor, **(extra[0] if extra else {}))


# streetlight: profile "standard" — verify 30, dispatch 60, on scene 240, dispose 1440, feedback 2880, close 4320
LATE_DISPATCH = [
    (10, "verify", WORKER),
    (70, "sweep", None),  # dispatch deadline (60) missed: supervision
    (85, "dispatch", OFFICER),  # 25 min late
    (90, "accept", DEPT),
    (120, "arrive", DEPT),
    (600, "dispose", DEPT),
    (700, "feedback", DEPT),
    (800, "close", OFFICER),
]


def _closed_event(world, steps=LATE_DISPATCH, code="500108001"):
    store, engine, clock = world
    event = engine.report(category="streetlight", title="路灯不亮", code=code, actor=OFFICER)
    assert event.sla_profile == "standard" and event.plan_code is None
    _loop(engine, clock, event, steps)
    return store.get_event(event.id)


def test_one_late_stage_is_marked_late_with_its_minutes(world, catalogue):
    store, _, _ = world
    event = _closed_event(world)
    review = draft_review(store, catalogue, event.number)
    stages = {s.label: s for s in review.stages}
    assert list(stages) == ["verify", "dispatch", "on scene", "dispose", "feedback", "close"]
    late = [s.label for s in review.stages if s.late]
    assert late == ["dispatch"]
    d = stages["dispatch"]
    assert d.late_by_min == 25.0
    assert d.deadline_at == event.reported_at + 60 * MIN and d.reached_at == event.reported_at + 85 * MIN
    assert d.spent_s == 75 * MIN and d.allowed_s == 30 * MIN and d.over_allowance
    assert d.reached_by == "duty"
    v = stages["verify"]
    assert (v.spent_s, v.allowed_s, v.late, v.late_by_min) == (10 * MIN, 30 * MIN, False, 0.0)
    on_scene = stages["on scene"]
    assert on_scene.spent_s == 35 * MIN and not on_scene.late  # from dispatch (85) to arrival (120)
    assert stages["close"].reached_at == event.closed_at
    assert review.total_s == 800 * MIN
    assert review.late_stages == ["派遣 (dispatch) +25 min"]


def test_timeline_actors_and_supervision(world, catalogue):
    store, _, _ = world
    event = _closed_event(world)
    review = draft_review(store, catalogue, event.id)
    actions = [t.action for t in review.timeline]
    assert actions[0] == "report" and actions[-1] == "close"
    assert actions.index("supervise") < actions.index("dispatch")
    assert [t.at for t in review.timeline] == sorted(t.at for t in review.timeline)
    who = {(a["actor"], a["role"]): a["actions"] for a in review.actors}
    assert who[("w7", "grid_worker")] == ["verify"]
    assert who[("cg1", "department")] == ["accept", "arrive", "dispose", "feedback"]
    assert set(who[("duty", "duty_officer")]) >= {"report", "dispatch", "close"}
    assert len(review.supervision) == 1
    sup = review.supervision[0]
    assert sup.kind == "supervise" and sup.by == "city"
    assert sup.at == event.reported_at + 70 * MIN and sup.ended_at == event.reported_at + 85 * MIN


def test_on_time_event_has_no_late_stage(world, catalogue):
    store, _, _ = world
    steps = [(10, "verify", WORKER), (20, "dispatch", OFFICER), (25, "accept", DEPT), (60, "arrive", DEPT),
             (600, "dispose", DEPT), (700, "feedback", DEPT), (800, "close", OFFICER)]
    event = _closed_event(world, steps)
    review = draft_review(store, catalogue, event.id)
    assert [s.late for s in review.stages] == [False] * 6 and review.late_stages == [] and review.supervision == []
    assert "各阶段均在时限内" in review.to_markdown()


def test_related_events(world, catalogue):
    store, engine, clock = world
    event = _closed_event(world, code="500108001")
    # a second report of the same lamp: nearby (same street), 40 min later — outside dedup's 30 minutes
    clock.set(event.reported_at + 40 * MIN)
    nearby = engine.report(category="streetlight", title="路灯又灭", code="500108001", actor=OFFICER)
    far = engine.report(category="streetlight", title="另一盏路灯", code="500108005", actor=OFFICER)
    other = engine.report(category="noise", title="噪声", code="500108001", actor=OFFICER)
    review = draft_review(store, catalogue, event.id)
    rel = {r.id: r.relation for r in review.related}
    assert rel.get(nearby.id, "").startswith("same category nearby")
    assert far.id not in rel and other.id not in rel


def test_merged_and_subtask_relations(world, catalogue):
    store, engine, clock = world
    master = engine.report(category="streetlight", title="主事件", code="500108001", actor=OFFICER)
    clock.advance(MIN)
    dup = engine.report(category="streetlight", title="重复", code="500108010", actor=OFFICER)
    engine.act(dup.id, "merge", OFFICER, target=master.id)
    sub = engine.report(category="streetlight", title="子任务", code="500108010", actor=OFFICER, parent_id=master.id)
    # the master follows its only sub-task round the loop (多跨 roll-up)
    _loop(engine, clock, sub, [(41, "verify", WORKER), (42, "dispatch", OFFICER), (43, "accept", DEPT),
                                (44, "arrive", DEPT), (45, "dispose", DEPT), (46, "feedback", DEPT),
                                (47, "close", OFFICER)])
    assert store.get_event(master.id).status == "closed"
    review = draft_review(store, catalogue, master.id)
    rel = {r.id: r.relation for r in review.related}
    assert rel[dup.id].startswith("merged into this")
    assert rel[sub.id].startswith("多跨 sub-task")
    sub_review = draft_review(store, catalogue, sub.id)
    assert {r.id: r.relation for r in sub_review.related}[master.id].startswith("多跨 master")


@pytest.mark.parametrize("status_steps", [[], [(5, "verify", WORKER)]])
def test_open_event_is_refused_in_one_line(world, catalogue, status_steps):
    store, engine, clock = world
    event = engine.report(category="streetlight", title="路灯", code="500108001", actor=OFFICER)
    _loop(engine, clock, event, status_steps)
    with pytest.raises(BadInput, match=r"cannot review .*: it is (reported|verified) .*only closed events") as exc:
        draft_review(store, catalogue, event.id)
    assert "\n" not in str(exc.value)


def test_unknown_event_is_refused(world, catalogue):
    store, _, _ = world
    with pytest.raises(BadInput, match="no event 'nope'"):
        draft_review(store, catalogue, "nope")


def test_markdown_and_dict_shapes(world, catalogue):
    store, _, _ = world
    event = _closed_event(world)
    review = draft_review(store, catalogue, event.id)
    md = review.to_markdown()
    for heading in ("# 复盘报告 (Review draft)", "## 各阶段时限 (SLA stages)", "## 时间线 (Timeline)",
                    "## 处置人员 (Who acted)", "## 督办与上提 (Supervision)", "## 关联事件 (Related events)"):
        assert heading in md
    assert "超时 25 分钟 (late by 25 min)" in md
    data = json.loads(json.dumps(review.to_dict(), ensure_ascii=False))
    assert data["number"] == event.number and len(data["stages"]) == 6
    assert data["stages"][1]["late"] is True and data["stages"][1]["late_by_min"] == 25.0


def test_field_text_cannot_inject_terminal_codes(world, catalogue):
    store, engine, clock = world
    steps = [(10, "verify", WORKER, {"note": "ok\x1b[31mRED"})] + LATE_DISPATCH[2:]
    event = _closed_event(world, steps)
    assert "\x1b" not in draft_review(store, catalogue, event.id).to_markdown()


# ---------------------------------------------------------------- CLI


def test_cli_review_markdown_json_and_errors(tmp_path, catalogue):
    db = str(tmp_path / "r.duckdb")
    clock = SimClock(START)
    store = init_store(db, "district", "500108", clock=clock)
    engine = Engine(store, catalogue, clock=clock)
    event = engine.report(category="streetlight", title="路灯不亮", code="500108001", actor=OFFICER)
    _loop(engine, clock, event, LATE_DISPATCH)
    open_one = engine.report(category="streetlight", title="新路灯", code="500108002", actor=OFFICER)
    store.close()
    runner = CliRunner()
    md = runner.invoke(main, ["review", "--db", db, event.number])
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("# 复盘报告") and "派遣 (dispatch)" in md.stdout
    js = runner.invoke(main, ["review", "--db", db, event.id, "--json"])
    assert js.exit_code == 0 and json.loads(js.stdout)["late_stages"] == ["派遣 (dispatch) +25 min"]
    bad = runner.invoke(main, ["review", "--db", db, open_one.id])
    assert bad.exit_code == 2 and "only closed events" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.output
