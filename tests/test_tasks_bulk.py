"""The bulk write path of grid tasks (issue 14 item 2): a block of tasks staged through the unit of work is
written with one statement per table, its change-log rows carry exactly each task's row (JSON made by DuckDB),
the log stays gapless, a rollback to a mark undoes the whole block, and a completion batch writes the same rows
an entity-at-a-time write would have."""

from __future__ import annotations

import json

import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.people import Task
from cqgov_tui.domain.schema import evolve, to_row
from cqgov_tui.store import init_store, open_store
from cqgov_tui.store.people import task_scope

T0 = 1_795_000_000.0


def _task(i: int, **kw) -> Task:
    base = dict(id=f"00000000-0000-8000-8000-{i:012d}", kind="periodic", template="grid_patrol", event_id=None,
                day="20261118", district_code="500105", street_code="500105001",
                grid_code=f"500105001{i % 7:03d}", target=None, title=f"网格巡查 \"{i}\"\n\\", assignee=f"gw{i % 3}",
                status="assigned", created_at=T0, due_at=T0 + 3600.123456789, accepted_at=None, done_at=None,
                finding=None, note="", photo=None, created_by="system", origin_node="district-500105", version=1)
    base.update(kw)
    return Task(**base)


@pytest.fixture
def store(tmp_path):
    s = init_store(str(tmp_path / "d.duckdb"), "district", "500105", clock=SimClock(T0))
    yield s
    s.close()


def _log(store, entity="task"):
    return [c for c in store.changes_after(0, 100_000) if c["entity"] == entity]


def test_a_block_of_tasks_is_stored_and_logged_row_for_row(store):
    made = [_task(i) for i in range(50)]
    with store.tx():
        store.set_meta("before", "1")  # a row logged one at a time in the same flush
        assert store.put_tasks(made) == 50
        assert store.get_task(made[3].id) == made[3]  # reads in the transaction see the block
    stored = store.get_tasks([t.id for t in made])
    assert [stored[t.id] for t in made] == made
    log = _log(store)
    assert [c["key"] for c in log] == [t.id for t in made]
    assert [c["data"] for c in log] == [to_row(t) for t in made]  # the same values json.dumps would carry
    assert [c["scope"] for c in log] == [task_scope(t) for t in made]
    seqs = [c["seq"] for c in store.changes_after(0, 100_000)]
    assert seqs == list(range(1, len(seqs) + 1)) and store.head() == len(seqs)


def test_a_block_and_single_rows_in_one_transaction_keep_the_log_gapless_and_the_last_write(store):
    made = [_task(i) for i in range(10)]
    with store.tx():
        store.put_task(_task(100))
        store.put_tasks(made)
        store.put_task(evolve(made[2], note="改过", version=2))  # a later single write of a block's row wins
        store.put_task(_task(101))
    assert store.get_task(made[2].id).note == "改过"
    assert store.count_rows("tasks") == 12
    log = store.changes_after(0, 100)
    assert [c["seq"] for c in log] == list(range(1, 14))
    assert [c["key"] for c in log] == [_task(100).id, *(t.id for t in made), made[2].id, _task(101).id]
    assert log[11]["data"]["note"] == "改过" and log[3]["data"]["note"] == ""


def test_rolling_back_to_a_mark_undoes_the_whole_block(store):
    with store.tx():
        store.put_tasks([_task(i) for i in range(5)])
    head = store.head()
    with store.tx():
        mark = store.mark()
        store.put_tasks([_task(i, status="done", version=2) for i in range(3)] + [_task(9)])
        store.rollback_to(mark)
        assert store.get_task(_task(9).id) is None
        assert store.get_task(_task(1).id).status == "assigned"
        store.put_task(_task(20))
    assert store.head() == head + 1 and store.count_rows("tasks") == 6
    assert store.get_task(_task(1).id).status == "assigned"


def test_a_completion_block_updates_only_the_changed_columns_and_logs_whole_rows(store, tmp_path):
    made = [_task(i) for i in range(30)]
    store.put_tasks(made)
    done = [evolve(t, status="done", done_at=T0 + 60, accepted_at=T0 + 60, finding="hazard" if i % 2 else None,
                   note=f"第{i}项", version=2) for i, t in enumerate(made[:20])]
    with store.tx():
        store.put_tasks(done, changed=frozenset({"status", "done_at", "accepted_at", "finding", "note", "version"}))
    after = store.get_tasks([t.id for t in made])
    assert [after[t.id] for t in done] == done and [after[t.id] for t in made[20:]] == made[20:]
    assert [c["data"] for c in _log(store)[30:]] == [to_row(t) for t in done]
    store.close()
    again = open_store(str(tmp_path / "d.duckdb"), SimClock(T0))
    try:
        assert again.get_task(done[5].id) == done[5]
    finally:
        again.close()
    json.dumps(to_row(done[0]))  # plain values only


def test_a_refused_write_after_a_block_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.tx():
            store.put_tasks([_task(i) for i in range(5)])
            raise RuntimeError("refused")
    assert store.count_rows("tasks") == 0 and store.head() == 0


def test_a_completion_of_tasks_made_in_the_same_transaction_writes_them_whole(store):
    made = [_task(i) for i in range(4)]
    with store.tx():
        store.put_tasks(made)
        store.put_tasks([evolve(t, status="done", version=2) for t in made], changed=frozenset({"status", "version"}))
    assert {t.status for t in store.get_tasks([t.id for t in made]).values()} == {"done"}
    assert store.count_rows("tasks") == 4 and store.head() == 8
