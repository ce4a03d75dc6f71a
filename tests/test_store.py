"""The store: migrations, schema vs declarations, change log, audit chain, one writer, bad files."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading

import duckdb
import pytest

from cqgov_tui.clock import SimClock
from cqgov_tui.domain import schema
from cqgov_tui.domain.entities import Directive, Receipt
from cqgov_tui.errors import BadInput, StoreCorrupt, StoreError, StoreMissing
from cqgov_tui.store import init_store, open_store
from cqgov_tui.store.connection import connect
from cqgov_tui.store.migrations import LATEST, MIGRATIONS, migrate

from factories import make_event


def test_schema_matches_entity_declarations(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    for name, cls in schema.tables().items():
        rows = store.conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [name],
        ).fetchall()
        declared = [(c.name, c.duck, "YES" if c.nullable else "NO") for c in schema.columns(cls)]
        assert rows == declared, name
    # the open-event queue is the same shape as events
    q = store.conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name='event_queue' ORDER BY ordinal_position").fetchall()
    assert [r[0] for r in q] == schema.column_names(type(make_event()))


def test_arrow_schema_derives_from_declaration():
    arrow = schema.arrow_schema(type(make_event()))
    assert arrow.names == schema.column_names(type(make_event()))
    assert str(arrow.field("departments").type) == "list<item: string>"
    assert not arrow.field("id").nullable and arrow.field("due_at").nullable


def test_migrations_are_recorded_and_upgrade_an_old_store(tmp_db):
    conn = connect(tmp_db, create=True)
    migrate(conn, 1.0, upto=1)
    conn.execute("INSERT INTO store_meta VALUES ('epoch','e'),('tier','district'),('code','500108'),('node','n')")
    row = dataclasses.astuple(make_event(id="old-1"))
    conn.execute(f"INSERT INTO events VALUES ({', '.join('?' for _ in row)})", list(row))
    conn.close()
    store = open_store(tmp_db)
    assert store.schema_version() == LATEST
    versions = [r[0] for r in store.conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
    assert versions == sorted(v for v, _, _ in MIGRATIONS)  # numbers are assigned per line of work: gaps are fine
    assert store.get_event("old-1").title == "井盖缺失"  # data survived the upgrade
    store.put_directive(Directive("d1", "D-1", "city", "500000", "t", "x", "urgent", ["500108"], True, 2.0, 1.0, "u", 1))
    assert store.get_directive("d1").targets == ["500108"]


def test_newer_schema_is_refused(tmp_db):
    init_store(tmp_db, "city", "500000").close()
    c = duckdb.connect(tmp_db)
    c.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    c.close()
    with pytest.raises(StoreError, match="newer than this cqgov"):
        open_store(tmp_db)


def test_change_log_written_with_every_change_and_monotonic(tmp_db):
    store = init_store(tmp_db, "district", "500108", clock=SimClock())
    e = make_event()
    with store.tx():
        store.insert_event(e)
    with store.tx():
        store.update_event(dataclasses.replace(e, status="verified"), ["status"])
    changes = store.changes_after(0)
    assert [c["seq"] for c in changes] == [1, 2]
    assert changes[0]["op"] == "create" and changes[0]["data"]["text"] == "人行道井盖缺失"
    # an update ships only what changed (SYNC.md: a transition, not the whole row)
    assert changes[1]["data"] == {"id": e.id, "status": "verified", "version": 2}


def test_rolled_back_transaction_leaves_no_change_and_no_row(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    with pytest.raises(RuntimeError):
        with store.tx():
            store.insert_event(make_event(id="x1"))
            raise RuntimeError("boom")
    assert store.get_event("x1") is None
    assert store.head() == 0


def test_nested_transactions_join_the_outer_one_and_listeners_hear_each_commit_once_outside_the_lock(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    heard: list[tuple[int, bool]] = []

    def listener(head: int) -> None:
        # The lock is free when listeners run: another thread can take it at once.
        free = [False]

        def probe() -> None:
            if store.lock.acquire(timeout=5):
                free[0] = True
                store.lock.release()

        t = threading.Thread(target=probe)
        t.start()
        t.join(10)
        heard.append((head, free[0]))

    store.commit_listeners.append(listener)
    with store.tx():
        store.insert_event(make_event(id="n1"))  # (insert_event opens a nested transaction)
        with store.tx():
            store.insert_event(make_event(id="n2"))
        assert heard == [], "nothing is told before the outer transaction commits"
    assert heard == [(2, True)], "one commit, told once, with its head, outside the lock"
    # A failure in a nested transaction undoes the outer one too, and nobody is told.
    with pytest.raises(RuntimeError):
        with store.tx():
            store.insert_event(make_event(id="n3"))
            with store.tx():
                store.insert_event(make_event(id="n4"))
                raise RuntimeError("boom")
    assert store.get_event("n3") is None and store.get_event("n4") is None
    assert store.head() == 2 and heard == [(2, True)]
    # The store is usable afterwards, from another thread too (the lock was released).
    done = threading.Event()

    def write() -> None:
        with store.tx():
            store.insert_event(make_event(id="n5"))
        done.set()

    t = threading.Thread(target=write)
    t.start()
    t.join(30)
    assert done.is_set() and store.get_event("n5") is not None and heard[-1][0] == 3


def test_queue_keeps_open_events_only_and_orders_by_colour_then_deadline(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    with store.tx():
        store.insert_event(make_event(id="a", colour="yellow", due_at=10.0))
        store.insert_event(make_event(id="b", colour="red", due_at=50.0))
        store.insert_event(make_event(id="c", colour="red", due_at=20.0))
        store.insert_event(make_event(id="d", colour="green", status="closed", due_at=None))
    assert [e.id for e in store.queue()] == ["c", "b", "a"]
    assert [e.id for e in store.queue(include_closed=True, colours=["green"])] == ["d"]
    with store.tx():
        store.update_event(dataclasses.replace(store.get_event("c"), status="closed"), ["status"])
    assert [e.id for e in store.queue()] == ["b", "a"]
    assert store.colour_counts() == {"500108": {"red": 1, "yellow": 1}}


def test_duplicate_insert_refused_and_nothing_changes(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    with store.tx():
        store.insert_event(make_event(id="a"))
    head = store.head()
    with pytest.raises(BadInput):
        with store.tx():
            store.insert_event(make_event(id="a"))
    assert store.head() == head and store.count_events() == 1


def test_audit_chain_detects_change_delete_and_reorder(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    with store.tx():
        for i in range(5):
            store.append_audit(event_id=f"e{i}", action="verify", from_status="reported", to_status="verified",
                               actor="u", role="dispatcher", tier="district", note=f"n{i}")
    assert store.verify_audit().ok
    store.conn.execute("UPDATE audit_log SET note = 'forged' WHERE seq = 3")
    v = store.verify_audit()
    assert not v.ok and v.first_bad_seq == 3
    store.conn.execute("UPDATE audit_log SET note = 'n2' WHERE seq = 3")
    assert store.verify_audit().ok
    store.conn.execute("DELETE FROM audit_log WHERE seq = 4")
    assert store.verify_audit().first_bad_seq == 4


def test_receipts_round_trip(tmp_db):
    store = init_store(tmp_db, "street", "500108001")
    store.put_receipt(Receipt("d1", "500108001", "delivered", 1.0, None, None, None, None, 0, 1))
    assert store.receipts("d1")[0].state == "delivered"


def test_init_refuses_existing_file_and_unknown_tier(tmp_db):
    init_store(tmp_db, "city", "500000").close()
    with pytest.raises(BadInput, match="already exists"):
        init_store(tmp_db, "city", "500000")
    with pytest.raises(BadInput, match="unknown tier"):
        init_store(tmp_db + "2", "province", "500000")
    assert not os.path.exists(tmp_db + "2")


def test_missing_corrupt_and_foreign_files_give_one_line_errors(tmp_path):
    with pytest.raises(StoreMissing, match="no such store"):
        open_store(str(tmp_path / "nope.duckdb"))
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreCorrupt) as exc:
        open_store(str(bad))
    assert "\n" not in str(exc.value)
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    with pytest.raises(StoreCorrupt):
        open_store(str(empty))
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (a INT)")
    with pytest.raises(StoreCorrupt, match="not a cqgov store"):
        open_store(str(foreign))
    truncated = tmp_path / "trunc.duckdb"
    s = init_store(str(truncated), "city", "500000")
    with s.tx():
        for i in range(300):
            s.insert_event(make_event(id=f"t{i}", text="x" * 500))
    s.close()
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError):
        open_store(str(truncated))


def test_second_process_gets_a_clear_lock_error(tmp_db):
    store = init_store(tmp_db, "district", "500108")
    code = (
        "import sys\n"
        "from cqgov_tui.store import open_store\n"
        "from cqgov_tui.errors import StoreLocked\n"
        f"try:\n    open_store({tmp_db!r})\nexcept StoreLocked as e:\n    print(e); sys.exit(7)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 7, r.stderr
    line = r.stdout.strip()
    assert tmp_db in line and "in use by process" in line and "\n" not in line
    assert "Traceback" not in r.stderr
    store.close()
