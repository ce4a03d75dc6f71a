"""The notifier follows the audit log from memory and stores its cursor only when it must.

* ``audit_since`` outside a transaction answers from the committed entries the
  store remembers; whatever the history of commits, rollbacks and cache drops,
  it equals what DuckDB holds.
* Entries that concern nobody (a report, a verify…) move the notifier's cursor in
  memory only; a message moves the stored cursor in its own transaction; a
  restart from a cursor left behind re-examines those entries, sends nothing
  twice and misses nothing.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import AuditEntry, Role, Tier, User
from cqgov_tui.notify.service import CURSOR_KEY, CURSOR_STORE_S, Notifier
from cqgov_tui.people import tasks
from cqgov_tui.store import init_store, open_store
from test_people import AT_10, world  # noqa: F401 - the district with a roster (gw1 works at its first grid)

DISPATCHER = User("disp", "调度员", Role.DISPATCHER, Tier.DISTRICT, "500105")


def _from_duckdb(store, seq: int, limit: int) -> list[AuditEntry]:
    return store._select(AuditEntry, "FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit])


class _Refused(Exception):
    pass


# A step: ("commit", n entries) | ("refuse", n entries: staged, then the transaction fails) | ("forget",)
steps = st.lists(st.one_of(
    st.tuples(st.just("commit"), st.integers(1, 6)),
    st.tuples(st.just("refuse"), st.integers(1, 3)),
    st.tuples(st.just("forget")),
), max_size=14)


@settings(max_examples=40, deadline=None)
@given(history=steps, probes=st.lists(st.tuples(st.integers(-2, 60), st.integers(1, 8)), min_size=1, max_size=8))
def test_audit_since_from_memory_equals_duckdb(tmp_path_factory, history, probes):
    path = str(tmp_path_factory.mktemp("audit") / "d.duckdb")
    store = init_store(path, "district", "500105", clock=SimClock(AT_10))
    try:
        for step in history:
            if step[0] == "forget":
                store.invalidate_caches()
                continue
            kind, n = step
            try:
                with store.tx():
                    for i in range(n):
                        store.append_audit(event_id=f"e{i}", action="verify", from_status=None, to_status=None,
                                           actor="t", role="admin", tier="district", note=kind, scope="500105")
                    if kind == "refuse":
                        raise _Refused
            except _Refused:
                pass
        for seq, limit in probes:
            assert store.audit_since(seq, limit) == _from_duckdb(store, seq, limit)
    finally:
        store.close()


def _stored_cursor(store) -> int:
    return int(store.meta(CURSOR_KEY))


def test_transitions_move_the_cursor_in_memory_and_a_message_stores_it(world):
    store, engine, clock, grids, path = world
    grid = grids[0]
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    start = _stored_cursor(store)
    notifier.tick(force=True)
    for _ in range(3):
        event = engine.report(category="garbage", title="垃圾堆放", code=grid)
        engine.act(event.id, "verify", DISPATCHER)
    commits = store.head()
    notifier.tick()
    # Reports and verifies concern nobody: nothing was written, not even the cursor (it is stored later).
    assert store.head() == commits
    assert _stored_cursor(store) == start
    assert notifier._cursor == store.audit_head()

    tasks.dispatch_to_person(engine, event.number, "gw1", DISPATCHER)
    notifier.tick()
    sent = store.notifications(recipient="gw1")
    assert [n.channel for n in sent] == ["inbox"] and sent[0].ref == event.id
    # The message and the cursor past it were committed together.
    assert _stored_cursor(store) >= max(a.seq for a in store.audit_entries(event.id) if a.action == "assign")

    engine.act(event.id, "accept", DISPATCHER)
    notifier.tick()
    assert _stored_cursor(store) < store.audit_head()
    clock.advance(CURSOR_STORE_S + 1)
    notifier.tick()  # nothing new, but the interval has passed
    assert _stored_cursor(store) == store.audit_head()

    engine.report(category="garbage", title="另一处垃圾", code=grid)
    notifier.tick()
    assert _stored_cursor(store) < store.audit_head()
    notifier.stop()  # never started: stop still stores where it got to
    assert _stored_cursor(store) == store.audit_head()


def test_a_restart_behind_the_memory_cursor_sends_nothing_twice_and_misses_nothing(world):
    store, engine, clock, grids, path = world
    grid = grids[0]
    notifier = Notifier(store, clock=clock, registry=engine.registry)
    first = engine.report(category="garbage", title="垃圾堆放", code=grid)
    engine.act(first.id, "verify", DISPATCHER)
    tasks.dispatch_to_person(engine, first.number, "gw1", DISPATCHER)
    notifier.tick()
    assert len(store.notifications(recipient="gw1")) == 1
    second = engine.report(category="garbage", title="又一处垃圾", code=grid)
    engine.act(second.id, "verify", DISPATCHER)
    notifier.tick()
    behind = _stored_cursor(store)
    assert behind < notifier._cursor  # the process dies here: the cursor in memory is lost
    store.close()

    store = open_store(path, clock=clock)
    try:
        from cqgov_tui.engine import Engine

        engine = Engine(store, clock=clock)
        again = Notifier(store, clock=clock, registry=engine.registry)
        assert again._cursor == behind
        again.tick()
        assert len(store.notifications(recipient="gw1")) == 1  # the report and verify it saw again tell nobody
        tasks.dispatch_to_person(engine, second.number, "gw1", DISPATCHER)
        again.tick()
        assert sorted(n.ref for n in store.notifications(recipient="gw1")) == sorted([first.id, second.id])
    finally:
        store.close()


def test_a_gap_in_what_is_remembered_sends_readers_to_duckdb(tmp_path):
    """Entries told to the memory out of order (some written another way in between) restart what is
    remembered after the gap; a reader from before it gets DuckDB's answer, not a shifted slice."""
    from dataclasses import replace

    store = init_store(str(tmp_path / "d.duckdb"), "district", "500105", clock=SimClock(AT_10))
    try:
        with store.tx():
            for i in range(4):
                store.append_audit(event_id=f"e{i}", action="verify", from_status=None, to_status=None,
                                   actor="t", role="admin", tier="district", scope="500105")
        entries = _from_duckdb(store, 0, 10)
        assert store.audit_since(0, 10) == entries
        later = replace(entries[-1], seq=entries[-1].seq + 3)
        store._remember_audit([later])  # seq 5 and 6 never told
        assert store.audit_since(0, 10) == entries  # from DuckDB: memory starts after the gap
        assert store.audit_since(later.seq - 1, 10) == [later]
    finally:
        store.close()
