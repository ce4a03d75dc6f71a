"""Console view-models, headless: filter parsing, queue diffs, directives progress, map raster and drill,
link status, and the sample city's loop — all without Textual."""

from __future__ import annotations

import base64
import json

import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.console.backend import LocalBackend, link_status_of, token_user
from cqgov_tui.console.board import normalise, sparkline
from cqgov_tui.console.detail import event_detail
from cqgov_tui.console.directives import DirectiveDraft, directive_row
from cqgov_tui.console.feed import ConsoleFeed
from cqgov_tui.console.mapview import MapState, rasterise, region_fill
from cqgov_tui.console.names import Names
from cqgov_tui.console.queue import diff_queue, load_queue, parse_filter
from cqgov_tui.console.sample import build_sample_store, sample_user
from cqgov_tui.domain.colour import Colour
from cqgov_tui.domain.entities import Directive, Level, Receipt, Role, Tier, User
from cqgov_tui.errors import BadInput


START = 1_795_000_000.0


@pytest.fixture(scope="module")
def world():
    clock = SimClock()
    store, engine = build_sample_store(clock, extra=10)
    backend = LocalBackend(store, user=sample_user(), clock=clock, engine=engine, sweep=False)
    yield backend
    store.close()


def test_queue_is_sorted_by_colour_then_deadline(world):
    rows = load_queue(world.store, world.names)
    assert len(rows) == world.store.count_events(open_only=True)
    keys = [(r.colour.rank, r.due_at if r.due_at is not None else float("inf")) for r in rows]
    assert keys == sorted(keys)


def test_filter_recognises_colour_status_category_district_and_text(world):
    names, reg = world.names, world.registry
    f = parse_filter("red 已核实 燃气泄漏 南岸区 燃气味", names, reg)
    assert f.colours == ("red",)
    assert f.statuses == ("verified",)
    assert f.categories == ("gas_leak",)
    assert f.districts == ("500108",)
    assert f.text == "燃气味"
    rows = load_queue(world.store, names, parse_filter("colour:red", names, reg))
    assert rows and all(r.colour is Colour.RED for r in rows)
    with pytest.raises(ValueError):
        parse_filter("colour:purple", names, reg)


def test_diff_reports_added_changed_removed_and_order(world):
    rows = load_queue(world.store, world.names)
    a, b, c = rows[0], rows[1], rows[2]
    from dataclasses import replace

    d = diff_queue([a, b, c], [replace(b, version=b.version + 1), a])
    assert d.removed == (c.id,) and d.changed == (b.id,) and d.added == () and d.reordered
    assert diff_queue([a, b], [a, b]).empty


def test_detail_has_timeline_stage_timers_and_role_actions(world):
    row = next(r for r in load_queue(world.store, world.names) if r.status.value == "reported")
    d = event_detail(world.store, row.id, world.user, world.names, world.catalogue)
    assert d.timeline[0].action == "report"
    assert d.stages and all(st.reached_at is None for st in d.stages[:1])
    assert "verify" in [a.action for a in d.actions]
    grid_worker = User("g", "g", Role.GRID_WORKER, Tier.CITY, "500108")
    outside = event_detail(world.store, row.id, grid_worker, world.names, world.catalogue)
    if not row.district_code.startswith("500108"):
        assert outside.actions == ()


def test_directive_progress_is_cumulative_and_overdue_counts_unacked():
    now = 1_795_000_000.0
    d = Directive("d1", "ZL-1", "city", "500000", "t", "", "urgent", ["a", "b", "c"], True, now - 1, now - 100, "u", 1)
    rs = [Receipt("d1", "a", "executed", now, now, now, now, "x", 0, 1),
          Receipt("d1", "b", "read", now, now, None, None, "x", 0, 1),
          Receipt("d1", "c", "pending", None, None, None, None, None, 0, 1)]
    row = directive_row(d, rs, now)
    assert row.reached == (2, 2, 1, 1)
    assert row.overdue == 2
    assert directive_row(d, rs, now - 10).overdue == 0


def test_directive_draft_refuses_what_cannot_be_delivered():
    with pytest.raises(BadInput):
        DirectiveDraft("", "x", ("500108",)).validate()
    with pytest.raises(BadInput):
        DirectiveDraft("t", "x", ()).validate()
    with pytest.raises(BadInput):
        DirectiveDraft("t", "x", ("500108",), priority="whenever").validate()
    assert DirectiveDraft("t", "x", ("500108",)).validate().body()["targets"] == ["500108"]


def test_map_raster_places_each_district_inside_its_shape(world):
    reg = world.registry
    canvas = rasterise(reg, "500000", 80, 24)
    assert len(canvas.regions) == len(reg.children("500000"))
    inside = sum(v >= 0 for row in canvas.cells for v in row)
    assert 0.2 * 80 * 24 < inside < 80 * 24
    nanan = next(r for r in canvas.regions if r.code == "500108")
    found = canvas.region_at(nanan.x, nanan.y)
    assert found is not None and found.code == "500108"


def test_map_state_drills_moves_and_flashes(world):
    reg = world.registry
    st = MapState(reg)
    canvas = rasterise(reg, "500000", 80, 24)
    first = st.move(canvas, 1, 0)
    assert first is not None
    second = st.move(canvas, 1, 0)
    assert second != first or second is not None
    assert st.drill("500108") and st.level() is Level.DISTRICT
    st.flash(["500108001001"], now=100.0)
    assert st.flashing(101.0) == {"500108001"}
    assert st.flashing(200.0) == set()
    assert st.up() and st.code == "500000" and st.selected == "500108"
    assert not st.up()


def test_region_fill_is_worst_open_colour(world):
    fill = region_fill(world.store, Level.CITY)
    rows = load_queue(world.store, world.names)
    for r in rows:
        assert fill[r.district_code].rank <= r.colour.rank


def test_feed_reports_only_what_changed(world):
    feed = ConsoleFeed(world)
    first = feed.poll(Level.CITY)
    assert first.queue is not None and first.fill is not None
    idle = feed.poll(Level.CITY)
    assert idle.queue is None and idle.fill is None and idle.changed == frozenset()
    target = next(r for r in first.queue if r.status.value == "reported")
    assert world.act(target.id, "verify").ok
    moved = feed.poll(Level.CITY)
    assert target.id in moved.changed and moved.queue is not None


def test_feed_hands_a_prefetched_board_to_the_next_call_once(world):
    feed = ConsoleFeed(world)
    feed.prefetch_board()
    ahead = feed._prefetched
    assert ahead and feed.board(force=True) is ahead  # the launcher's board, not a second computation
    assert feed.board() is None  # then on its timer again
    again = feed.board(force=True)
    assert again is not ahead and [n.code for n in again] == [n.code for n in ahead]


def test_local_backend_refusal_carries_the_reason(world):
    row = next(r for r in load_queue(world.store, world.names) if r.status.value == "reported")
    out = world.act(row.id, "close")
    assert not out.ok and "reported" in out.message
    assert world.store.get_event(row.id).status == "reported"


def test_link_status_reads_the_sync_clients_status():
    from cqgov_tui.sync.client import SyncStatus

    st = link_status_of(SyncStatus(
        state="live", lag_s=42.0, offline_since=None, outbox=3, rejected=2, last_error=None, bytes_in=0, bytes_out=0,
        recent_rejections=[{"id": "c2", "type": "act", "reason": "newest"}, {"id": "c1", "type": "act", "reason": "old"}],
    ), "http://127.0.0.1:1")
    assert st.mode == "lagging" and st.slow and st.outbox == 3
    assert [r.command_id for r in st.rejections] == ["c1", "c2"] and st.rejections[-1].reason == "newest"
    off = link_status_of(SyncStatus("offline", None, 1_795_000_000.0, 7, 0, "pull: ConnectError", 0, 0).as_dict(), "u")
    assert off.mode == "offline" and off.offline_since == 1_795_000_000.0 and off.outbox == 7
    assert link_status_of(SyncStatus("starting", None, None, 0, 0, None, 0, 0), "u").mode == "connecting"


def test_token_user_reads_server_tokens():
    from cqgov_tui.server.auth import TokenAuthority

    token = TokenAuthority(b"k" * 32).issue(user="li", role="dispatcher", tier="district", scope="500108",
                                            now=START, ttl=60)
    fallback = sample_user()
    u = token_user(token, fallback)
    assert (u.user, u.role, u.tier, u.scope_code) == ("li", Role.DISPATCHER, Tier.DISTRICT, "500108")
    payload = base64.urlsafe_b64encode(json.dumps({"user": "wang", "role": "auditor"}).encode()).decode().rstrip("=")
    assert token_user(f"{payload}.sig", fallback).role == Role.AUDITOR
    assert token_user("garbage", fallback) == fallback


def test_board_normalises_engine_shapes_and_draws_sparklines():
    node = normalise({"code": "cs", "name": "城市运行", "colour": "red", "time_in_red": 60,
                      "runways": [{"code": "r1", "name": "高楼消防", "colour": Colour.ORANGE, "value": 3,
                                   "thresholds": [1, 2, 3, 4], "history": [1, 2, 3]}]})
    assert node.colour is Colour.RED and node.children[0].colour is Colour.ORANGE
    assert node.children[0].history == (1.0, 2.0, 3.0)
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([]) == ""


def test_names_fall_back_to_codes():
    n = Names()
    assert n.category("c99") == "c99" and n.place("500999") == "500999"


class _Outbox:
    def __init__(self, ids):
        self.rows = [type("Row", (), {"id": i})() for i in ids]

    def rejections(self, limit=20):
        return self.rows[:limit]

    def dismiss(self, cid):
        self.rows = [r for r in self.rows if r.id != cid]
        return True


class _Client:
    wait = 0.1

    def __init__(self, ids):
        self.outbox = _Outbox(ids)

    def status(self):
        return {"state": "live", "recent_rejections": [{"id": r.id, "reason": f"why {r.id}"} for r in self.outbox.rows]}


def test_refusals_from_earlier_sessions_stay_hidden_and_dismiss_clears_the_rest():
    from cqgov_tui.console.backend import RemoteBackend

    client = _Client(["old"])
    user = User("ops", "ops", Role.ADMIN, Tier.CITY, "500000")
    backend = RemoteBackend(None, client, "http://127.0.0.1:1", clock=SimClock(START), user=user)
    assert backend.status().rejections == ()  # refused in an earlier session: not this one's news
    client.outbox.rows.insert(0, type("Row", (), {"id": "new"})())
    assert [r.reason for r in backend.status().rejections] == ["why new"]
    assert backend.dismiss_rejections() == 1
    assert backend.status().rejections == () and [r.id for r in client.outbox.rows] == ["old"]



def test_directive_rows_say_whether_the_viewer_is_among_those_who_answer(sample_file):
    from cqgov_tui.console.directives import load_directives
    from cqgov_tui.store import open_store

    store = open_store(sample_file, read_only=True)
    try:
        def mine(role: Role, department: str | None = None) -> dict[str, bool]:
            viewer = User("u", "u", role, Tier.STREET, "500101001", department)
            return {r.title: r.for_viewer for r in load_directives(store, store.clock.now(), viewer=viewer)}

        # The sample's 防汛 directive is for everyone at its streets; 高层消防 for 城管 and 网格员 only.
        assert mine(Role.GRID_WORKER) == {"防汛四级应急响应": True, "高层建筑消防检查": True}
        assert mine(Role.DEPARTMENT, "cgj")["高层建筑消防检查"]
        assert not mine(Role.DEPARTMENT, "yjj")["高层建筑消防检查"]
        assert mine(Role.DISPATCHER) == {"防汛四级应急响应": True, "高层建筑消防检查": False}
        assert all(r.for_viewer for r in load_directives(store, store.clock.now()))  # no viewer: no marks
    finally:
        store.close()


def test_start_progress_says_ready_once_every_pane_is_filled():
    from cqgov_tui.console.readiness import PANES, StartProgress

    ticks = iter(range(100))
    progress = StartProgress(clock=lambda: float(next(ticks)))
    assert progress.missing == PANES and not progress.ready
    for pane in PANES[:-1]:
        assert progress.fill(pane) is False
    assert progress.fill(PANES[0]) is False  # a second report changes nothing
    assert progress.missing == (PANES[-1],)
    assert progress.fill(PANES[-1]) is True and progress.ready
    assert progress.ready_at == progress.filled[PANES[-1]]
    assert progress.fill(PANES[-1]) is False  # ready is said once
    with pytest.raises(ValueError):
        progress.fill("clock")


def test_first_poll_has_map_colours_and_directives_before_names_are_loaded(sample_file):
    # A backend whose catalogue and registry are not loaded: the poll must not load them (the console's
    # first frame never waits), yet carries the city's colours and the directives; rows say they hold codes.
    from cqgov_tui.store import open_store

    store = open_store(sample_file, read_only=True)
    try:
        backend = LocalBackend(store, user=sample_user(), sweep=False)
        frame = ConsoleFeed(backend).poll(None)
        assert not backend.loaded and frame.named is False
        assert frame.queue and all(r.place == (r.street_code or r.district_code) for r in frame.queue)
        assert frame.fill and all(len(code) == 6 for code in frame.fill)  # districts: the city level's children
        assert frame.directives is not None and len(frame.directives) == 2
        backend.preload()
        named = ConsoleFeed(backend).poll(None)
        assert named.named is True and any(r.place != (r.street_code or r.district_code) for r in named.queue)
    finally:
        store.close()
