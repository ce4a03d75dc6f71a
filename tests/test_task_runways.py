"""Issue 14 item 3: grid-task counts and on-time rates feed the runways (``tasks_*`` metrics), and a task's
inspection is the inspection risk grades read (one rule, ``engine.risk_grades``).

As in test_board_truth.py: put N things in the store and check that exactly the matching indicators move,
by exactly what they should.
"""

from __future__ import annotations

import datetime as dt

import pytest

from cqgov_tui.catalogue.metrics import parse_metric
from cqgov_tui.clock import CST, SimClock
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine, risk_grades
from cqgov_tui.engine.runways import compute_board
from cqgov_tui.people import tasks
from cqgov_tui.store import init_store

JIANGBEI = "500105"
AT_10 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=CST).timestamp()
ADMIN = User("adm", "管理员", Role.ADMIN, Tier.DISTRICT, JIANGBEI)
DONE, OVERDUE, DONE_RATIO, ONTIME = "ms10.01.k3", "ms10.01.k4", "ms10.01.k5", "ms10.01.k6"


@pytest.fixture
def world(tmp_path):
    clock = SimClock(AT_10)
    store = init_store(str(tmp_path / "d.duckdb"), "district", JIANGBEI, clock=clock)
    engine = Engine(store, clock=clock)
    yield store, engine, clock
    store.close()


def _values(store, engine, scope=JIANGBEI) -> dict[str, float | None]:
    board = compute_board(store, engine.catalogue, store.clock.now(), scope)
    return {i.code: i.value for s in board.sectors for r in s.runways for sub in r.sub_runways
            for i in sub.indicators if i.code in (DONE, OVERDUE, DONE_RATIO, ONTIME)}


def test_the_catalogue_carries_the_grid_task_indicators():
    from cqgov_tui.catalogue.loader import load_catalogue

    cat = load_catalogue()
    assert {c: cat.indicators[c].metric for c in (DONE, OVERDUE, DONE_RATIO, ONTIME)} == {
        DONE: "tasks_done:*@1d", OVERDUE: "tasks_overdue:*", DONE_RATIO: "tasks_done_ratio:*@1d",
        ONTIME: "tasks_ontime_ratio:*@7d"}
    assert cat.indicators[ONTIME].kind == "kpi" and cat.indicators[DONE].kind == "vital"


@pytest.mark.parametrize("text, message", [
    ("tasks_done:periodic", "takes '*'"), ("tasks_overdue:*@1d", "takes no window"), ("tasks_due:*@0d", "window"),
])
def test_task_metrics_refuse_what_they_cannot_measure(text, message):
    with pytest.raises(ValueError, match=message):
        parse_metric(text)


def test_n_completed_tasks_move_the_task_indicators_by_exactly_n(world):
    store, engine, clock = world
    # no task anywhere: no data, not zero (none overdue is a state, like receipts_overdue)
    assert _values(store, engine) == {DONE: None, OVERDUE: 0.0, DONE_RATIO: None, ONTIME: None}
    made = tasks.generate_day(store, engine.registry, engine.catalogue, JIANGBEI, clock.now())
    total = made.created
    street = engine.registry.children(JIANGBEI)[0].code
    in_street = [t for t in store.tasks(scope_code=street, limit=100_000) if t.kind == "periodic"]
    assert in_street and total > len(in_street)
    # nothing due yet (12:00–20:00) and nothing done: still nothing to measure
    assert _values(store, engine) == {DONE: None, OVERDUE: 0.0, DONE_RATIO: None, ONTIME: None}

    tasks.complete_tasks(store, [(t.id, None, "") for t in in_street[:3]], ADMIN)  # 10:00, before their due time
    v = _values(store, engine)
    assert (v[DONE], v[OVERDUE], v[ONTIME]) == (3.0, 0.0, 100.0)
    assert v[DONE_RATIO] is None  # none due in the last day yet

    clock.set(AT_10 + 23 * 3600)  # 09:00 next day: the whole day's tasks are past due, within the last day
    v = _values(store, engine)
    assert v[DONE] == 3.0 and v[OVERDUE] == float(total - 3) and v[ONTIME] == 100.0
    assert v[DONE_RATIO] == round(100.0 * 3 / total, 2)

    tasks.complete_tasks(store, [(t.id, None, "补做") for t in in_street[3:5]], ADMIN)  # two done late
    v = _values(store, engine)
    assert v[DONE] == 5.0 and v[OVERDUE] == float(total - 5)
    assert v[ONTIME] == 60.0 and v[DONE_RATIO] == round(100.0 * 5 / total, 2)
    # the street's board counts its own tasks only; another street's sees none of these completions
    sv = _values(store, engine, street)
    assert sv[DONE] == 5.0 and sv[OVERDUE] == float(len(in_street) - 5)
    other = engine.registry.children(JIANGBEI)[1].code
    assert _values(store, engine, other)[DONE] == 0.0  # its tasks are due, none done

    clock.set(AT_10 + 3 * 86400)  # the completions leave the one-day window and stay in the seven-day one
    v = _values(store, engine)
    assert (v[DONE], v[ONTIME], v[OVERDUE]) == (0.0, 60.0, float(total - 5))


def test_an_inspection_task_is_the_inspection_risk_grades_read(world):
    store, engine, clock = world
    tasks.generate_day(store, engine.registry, engine.catalogue, JIANGBEI, clock.now())
    inspections = [t for t in store.tasks(scope_code=JIANGBEI, limit=100_000) if t.target]
    assert len(inspections) >= 2
    hazard, ok = inspections[0], next(t for t in inspections[1:] if t.target != inspections[0].target)
    before = risk_grades.grade_of(store, engine.catalogue, clock.now(), hazard.target)
    assert before.inspected_at is None
    tasks.complete_tasks(store, [(hazard.id, "hazard", "井盖松动"), (ok.id, "ok", "")], ADMIN)
    now = clock.now()
    g = risk_grades.grade_of(store, engine.catalogue, now, hazard.target)
    assert g.inspected_at == now and "巡查发现隐患 inspection found a hazard" in g.reasons
    assert g.colour.rank <= Colour.YELLOW.rank
    g_ok = risk_grades.grade_of(store, engine.catalogue, now, ok.target)
    register = engine.catalogue.risk_points[ok.target].colour
    assert g_ok.inspected_at == now and g_ok.colour.rank >= Colour(register).rank
    # the sweep audits the changes the task brought, like an inspection recorded by hand
    changed = {c.code for c in risk_grades.refresh(store, engine.catalogue, now)}
    assert hazard.target in changed or Colour(engine.catalogue.risk_points[hazard.target].colour).rank \
        <= Colour.YELLOW.rank
    # a task inspection and a hand inspection are one history: the later one decides
    clock.advance(60)
    risk_grades.inspect(store, engine.catalogue, hazard.target, "ok", ADMIN, clock.now(), note="复查正常")
    again = risk_grades.grade_of(store, engine.catalogue, clock.now(), hazard.target)
    assert "巡查发现隐患 inspection found a hazard" not in again.reasons and again.inspected_at == clock.now()
