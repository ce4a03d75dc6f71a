"""Runway board: indicator values and colours from events/readings, roll-up, history, time in red, CLI."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from factories import make_event

from cqgov_tui.catalogue.loader import load_catalogue
from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.engine.runways import _red_union, compute_board
from cqgov_tui.engine.sensors import SensorMonitor
from cqgov_tui.errors import UnknownCode
from cqgov_tui.ids import uuid7
from cqgov_tui.store import init_store

NOW = 1_795_000_000.0


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="module")
def small(catalogue):
    """Two sectors' worth of event- and sensor-fed indicators, without the externally fed consts."""
    keep_runways = {"cs01", "cs04", "pa01"}
    subs = {c: s for c, s in catalogue.sub_runways.items() if s.runway_code in keep_runways}
    inds = {c: i for c, i in catalogue.indicators.items()
            if i.sub_runway_code in subs and not i.metric.startswith(("const:", "risk_high:"))}
    return dataclasses.replace(
        catalogue,
        sectors={c: s for c, s in catalogue.sectors.items() if c in ("cs", "pa")},
        runways={c: r for c, r in catalogue.runways.items() if c in keep_runways},
        sub_runways=subs, indicators=inds)


@pytest.fixture
def store(tmp_db):
    clock = SimClock(NOW)
    s = init_store(tmp_db, "city", "500000", clock=clock)
    yield s
    s.close()


def _add(store, n, category, district="500108", status="reported", due_in=3600.0, **over):
    with store.tx():
        for k in range(n):
            at = store.clock.now() - 600 - k
            store.insert_event(make_event(
                id=uuid7(int(at * 1000)), now=at, category_code=category, status=status, district_code=district,
                street_code=f"{district}001", grid_code=f"{district}001001", due_at=store.clock.now() + due_in,
                **over))


def _reds(board) -> set[str]:
    return {i.code for s in board.sectors for r in s.runways for sub in r.sub_runways for i in sub.indicators
            if i.colour is not None and i.colour.value == "red"}


def _ind(board, code):
    for s in board.sectors:
        for r in s.runways:
            for sub in r.sub_runways:
                for i in sub.indicators:
                    if i.code == code:
                        return s, r, sub, i
    raise KeyError(code)


def test_open_count_crosses_thresholds_and_rolls_up_to_red(store, small):
    ind = small.indicators["cs01.01.open"]  # open:highrise_fire, 5/10/20/40
    assert ind.thresholds == (5.0, 10.0, 20.0, 40.0)
    board = compute_board(store, small, NOW)
    assert board.colour.value == "green"
    seen = []
    for total in (4, 5, 10, 20, 40):
        _add(store, total - (seen[-1][0] if seen else 0), "highrise_fire")
        s, r, sub, i = _ind(compute_board(store, small, NOW), "cs01.01.open")
        seen.append((total, i.value, i.colour.value))
    assert seen == [(4, 4.0, "green"), (5, 5.0, "blue"), (10, 10.0, "yellow"), (20, 20.0, "orange"),
                    (40, 40.0, "red")]
    board = compute_board(store, small, NOW)
    s, r, sub, i = _ind(board, "cs01.01.open")
    assert (sub.colour.value, r.colour.value, s.colour.value, board.colour.value) == ("red",) * 4
    assert board.sector("pa").colour.value == "green"  # the other sector is untouched
    assert s.counts["red"] == 1 and board.counts["red"] == 1
    # scoped: the events are in 南岸区 500108, not 江北区 500105
    assert _ind(compute_board(store, small, NOW, "500108"), "cs01.01.open")[3].value == 40.0
    other = compute_board(store, small, NOW, "500105")
    assert _ind(other, "cs01.01.open")[3].value == 0.0 and other.colour.value == "green"


def test_closed_events_do_not_count_as_open(store, small):
    _add(store, 30, "highrise_fire", status="closed", closed_at=NOW - 60, due_in=0)
    _add(store, 3, "highrise_fire")
    _, _, _, i = _ind(compute_board(store, small, NOW), "cs01.01.open")
    assert i.value == 3.0


def test_overdue_ratio(store, small):
    _add(store, 3, "waterlogging", due_in=-60)  # past the current stage's deadline
    _add(store, 7, "waterlogging", due_in=600)
    _, _, _, i = _ind(compute_board(store, small, NOW), "cs04.01.overdue")
    assert i.value == 30.0 and i.colour.value == "red"  # 5/10/20/30 %


def test_full_catalogue_runway_turns_red(store, catalogue):
    before = compute_board(store, catalogue, NOW)
    runway = next(r for r in before.sector("cs").runways if r.code == "cs05")
    assert runway.colour.value != "red"
    _add(store, 40, "streetlight")
    after = compute_board(store, catalogue, NOW)
    runway = next(r for r in after.sector("cs").runways if r.code == "cs05")
    assert runway.colour.value == "red"
    # 40 open streetlight reports: their open count is red, and so is "closed today" (none of them closed)
    assert _reds(after) - _reds(before) == {"cs05.03.open", "cs14.03.k3"}
    assert after.sector("cs").counts["red"] == before.sector("cs").counts["red"] + 2
    # the city's set: every common indicator it can measure, no district's 特色子跑道
    shown = {i.code for s in after.sectors for r in s.runways for sub in r.sub_runways for i in sub.indicators}
    assert sum(after.counts.values()) == len(shown)
    assert shown <= {c for c, i in catalogue.indicators.items() if not i.places}


def test_mean_response_from_the_audit(store, small):
    engine = Engine(store, small, clock=store.clock)
    officer = User("duty", "值班长", Role.DUTY_OFFICER, Tier.CITY, "500000")
    minutes = []
    for k, delay in enumerate((2, 4)):  # waterlogging: grid profile, first milestone "verified" (1 min)
        event = engine.report(category="waterlogging", title="积水", code=f"500108{k + 1:03d}", actor=officer)
        store.clock.advance(delay * 60)
        engine.act(event.id, "verify", officer)
        minutes.append(delay)
    _, _, _, i = _ind(compute_board(store, small, store.clock.now()), "cs04.01.resp")
    assert i.value == pytest.approx(sum(minutes) / len(minutes))  # each verified `delay` minutes after its report
    assert i.colour.value == "red"  # boundaries 1/1.5/2/3 × the 1-minute first stage
    # a day later the responses have left the 24 h window: no data, no colour
    _, _, _, later = _ind(compute_board(store, small, store.clock.now() + 86400 + 600), "cs04.01.resp")
    assert later.value is None and later.colour is None


def test_sensor_indicators_history_and_time_in_red(store, small, catalogue):
    sensor = next(s for s in catalogue.sensors.values() if s.kind == "water_level")
    rp = catalogue.risk_points[sensor.risk_point_code]
    scope = rp.grid_code[:6]
    clock = store.clock
    monitor = SensorMonitor(Engine(store, small, clock=clock))
    t0 = clock.now()
    monitor.ingest([(sensor.code, t0 - 30, 35.0)])  # over 30 cm: red band
    b = compute_board(store, small, t0, scope, record=True)
    _, _, sub, i = _ind(b, "cs04.01.water_level_max")
    assert (i.value, i.colour.value) == (35.0, "red")
    assert _ind(b, "cs04.01.water_level_alarms")[3].value == 1.0
    assert b.recorded > 0
    clock.set(t0 + 100)
    assert compute_board(store, small, clock.now(), scope, record=True).recorded == 0  # throttled
    clock.set(t0 + 600)
    compute_board(store, small, clock.now(), scope, record=True)
    clock.set(t0 + 900)
    monitor.ingest([(sensor.code, t0 + 890, 2.0)])
    clock.set(t0 + 1200)
    compute_board(store, small, clock.now(), scope, record=True)
    clock.set(t0 + 1800)
    b = compute_board(store, small, clock.now(), scope)
    _, _, sub, i = _ind(b, "cs04.01.water_level_max")
    assert i.colour.value == "green" and i.value == 2.0
    assert i.time_in_red_s == 1200.0  # red recorded at t0 and t0+600, green from t0+1200
    assert i.history == [35.0, 35.0, 2.0, 2.0]  # three recorded points, then the value now
    # the alarm's own event missed its 1-minute verify deadline: overdue ratio red from t0+600 on;
    # the sub-runway was red while either was, t0 … t0+1800
    overdue = _ind(b, "cs04.01.overdue")[3]
    assert overdue.colour.value == "red" and overdue.time_in_red_s == 1200.0
    assert sub.time_in_red_s == 1800.0
    # the red window looks back 24 h only
    late = compute_board(store, small, t0 + 86400 + 600, scope)
    assert _ind(late, "cs04.01.water_level_max")[3].time_in_red_s == 600.0  # t0+600 … t0+1200 is still inside
    later = compute_board(store, small, t0 + 86400 + 1300, scope)
    assert _ind(later, "cs04.01.water_level_max")[3].time_in_red_s == 0.0
    # another scope has its own (empty) history
    assert _ind(compute_board(store, small, clock.now(), "500000"), "cs04.01.water_level_max")[3].history == [2.0]


def test_red_union_counts_overlaps_once():
    red = {"a": [(0.0, 10.0), (20.0, 30.0)], "b": [(5.0, 25.0)], "c": [(40.0, 41.0)]}
    assert _red_union(red, ["a", "b", "c"]) == 31.0
    assert _red_union(red, ["a"]) == 20.0
    assert _red_union(red, []) == 0.0


def test_unknown_sector_is_one_line(store, small):
    board = compute_board(store, small, NOW)
    assert board.sector("城市运行").code == "cs"
    with pytest.raises(UnknownCode, match="unknown sector 'zz'"):
        board.sector("zz")


def test_board_feeds_the_console_pane(store, catalogue):
    from cqgov_tui.console.board import load_board

    sectors = load_board(store, catalogue, NOW, "500000")
    assert [s.code for s in sectors] == list(catalogue.sectors)
    assert sum(len(r.children) for s in sectors for r in s.children) == \
        sum(1 for s in catalogue.sub_runways.values() if not s.places)


# ---------------------------------------------------------------- CLI


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "kpi.duckdb")
    init_store(path, "city", "500000").close()
    return path


def test_cli_kpi_tree_plain(db):
    result = CliRunner().invoke(main, ["kpi", "--db", db])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("跑道 runways scope 500000")
    assert any(" cs 城市运行" in line for line in lines)
    assert any(" cs01 高楼消防" in line for line in lines)
    assert not any("cs01.01" in line for line in lines)  # default depth stops at runways
    assert "\x1b[" not in result.stdout


def test_cli_kpi_sector_by_name_shows_indicators(db):
    result = CliRunner().invoke(main, ["kpi", "--db", db, "--sector", "城市运行"])
    assert result.exit_code == 0, result.output
    assert "cs01.01 高层建筑火灾处置" in result.stdout
    assert "高层建筑火灾处置在办事件 = 0 件  [5/10/20/40↑]" in result.stdout
    assert " pa " not in result.stdout


def test_cli_kpi_json(db, catalogue):
    result = CliRunner().invoke(main, ["kpi", "--db", db, "--sector", "cs", "--json", "--scope", "500108"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["scope_code"] == "500108" and [s["code"] for s in data["sectors"]] == ["cs"]
    ind = data["sectors"][0]["runways"][0]["sub_runways"][0]["indicators"][0]
    assert set(ind) >= {"code", "name", "value", "unit", "colour", "thresholds", "history", "time_in_red_s"}
    assert ind["colour"] in ("red", "orange", "yellow", "blue", "green", None)


@pytest.mark.parametrize("args, message", [
    (["--sector", "zz"], "unknown sector 'zz'"),
    (["--scope", "509999"], "unknown district code '509999'"),
    (["--scope", "abc"], "scope must be a jurisdiction code"),
])
def test_cli_kpi_bad_input_is_one_line(db, args, message):
    result = CliRunner().invoke(main, ["kpi", "--db", db, *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
