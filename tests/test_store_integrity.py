"""A store's integrity from outside: city-unique event numbers, foreign files refused at once, a cut
write-ahead log refused instead of replayed short, reads that leave the files alone, `store check` on
real single-block corruption, and backups of a closed store (issue 11 item 7, issue 12 items 1, 6, 8)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import duckdb
import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.errors import StoreCorrupt, StoreError
from cqgov_tui.store import init_store, open_store
from cqgov_tui.store.check import check_store

BLOCK = 262144  # DuckDB's block size; data blocks start after the file header and two database headers
DATA_START = 3 * 4096


def _actor(tier: str, code: str) -> User:
    return User("li", "李", Role.ADMIN, Tier(tier), code)


def _store_with_events(path: str, n: int = 120, code: str = "500108") -> tuple[list[str], int]:
    """A closed district store holding ``n`` reported events; returns their numbers and the log head."""
    clock = SimClock()
    store = init_store(path, "district", code, clock=clock)
    engine = Engine(store)
    numbers = []
    for i in range(n):
        e = engine.report(category="muck_spill", title=f"渣土车撒漏{i}", text="x" * 40, code=f"{code}001",
                          actor=_actor("district", code), apply_plans=False)
        numbers.append(e.number)
        clock.advance(30)
    head = store.head()
    store.close()
    return numbers, head


def _one_line(result) -> str:
    text = result.output.strip()
    assert text.count("\n") == 0, result.output
    assert "Traceback" not in result.output
    return text


# ---------------------------------------------------------------- numbers (issue 12 item 1)


def test_first_streets_of_two_districts_number_apart_and_show_finds_exactly_one(tmp_path):
    a, b = "500108001", "500118001"
    assert a[-4:] == b[-4:]  # the collision the old numbers (last four digits of the code) had
    clock = SimClock()
    city = init_store(str(tmp_path / "city.duckdb"), "city", "500000", clock=clock)
    copies = []
    for code in (a, b):
        street = init_store(str(tmp_path / f"{code}.duckdb"), "street", code, clock=clock)
        event = Engine(street).report(category="muck_spill", title="渣土车撒漏", text="", code=code,
                                      actor=_actor("street", code), apply_plans=False)
        assert event.number.startswith(f"{code}-")
        copies.append(event)
        street.close()
    assert copies[0].number != copies[1].number
    own = Engine(city).report(category="noise", title="噪声", text="", code="500108001", actor=_actor("city", "500000"),
                              apply_plans=False)
    assert own.number.startswith("500000-")
    for e in copies:  # the city keeps both streets' events, as federation delivers them
        city.upsert_event_copy(e)
    assert city.duplicate_event_numbers() == 0  # what the demo's summary checks
    city.close()
    runner = CliRunner()
    for e in copies:
        res = runner.invoke(main, ["events", "show", "--db", str(tmp_path / "city.duckdb"), e.number, "--json"])
        assert res.exit_code == 0, res.output
        assert f'"id": "{e.id}"' in res.output


def test_a_replica_never_numbers_events(tmp_path):
    rep = init_store(str(tmp_path / "rep.duckdb"), "district", "500108", node="replica-abc")
    try:
        with pytest.raises(StoreError, match="replica"):
            Engine(rep).report(category="noise", title="噪声", text="", code="500108001",
                               actor=_actor("district", "500108"), apply_plans=False)
        assert rep.count_rows("events") == 0
    finally:
        rep.close()


# ---------------------------------------------------------------- foreign files (issue 12 item 6)


def test_a_sqlite_file_fails_at_once_without_fetching_an_extension(tmp_path):
    path = str(tmp_path / "old.sqlite")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a)")
    con.commit()
    con.close()
    res = CliRunner().invoke(main, ["events", "list", "--db", path])
    line = _one_line(res)
    assert res.exit_code == 5 and "SQLite" in line and "http" not in line and "INSTALL" not in line
    with pytest.raises(StoreCorrupt, match="SQLite"):
        open_store(path)


def test_stores_open_with_extension_autoloading_off(tmp_path):
    store = init_store(str(tmp_path / "s.duckdb"), "city", "500000")
    try:
        settings = dict(store.conn.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
        assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    finally:
        store.close()


# ---------------------------------------------------------------- the write-ahead log (issue 12 item 8)

_WRITER = r"""
import os, sys
from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import Role, Tier, User
from cqgov_tui.engine import Engine
from cqgov_tui.store import open_store
store = open_store(sys.argv[1], SimClock())
engine = Engine(store)
actor = User("li", "li", Role.ADMIN, Tier.DISTRICT, "500108")
for i in range(int(sys.argv[2])):
    engine.report(category="noise", title=f"n{i}", text="", code="500108001", actor=actor, apply_plans=False)
print(store.count_rows("events"), flush=True)
os._exit(0)  # dies without closing: the commits stay in the write-ahead log, as after a crash
"""


def _crash_after_writes(path: str, n: int) -> int:
    out = subprocess.run([sys.executable, "-c", _WRITER, path, str(n)], capture_output=True, text=True, timeout=120,
                         check=True)
    return int(out.stdout.split()[-1])


def test_a_truncated_wal_is_refused_and_an_intact_one_replayed(tmp_path):
    path = str(tmp_path / "s.duckdb")
    init_store(path, "district", "500108").close()
    total = _crash_after_writes(path, 40)
    wal = path + ".wal"
    assert os.path.getsize(wal) > 0
    spare = str(tmp_path / "spare")
    os.mkdir(spare)
    for f in (path, wal, path + ".walmark"):
        shutil.copy(f, spare)
    # A read leaves the log where it is (DuckDB replays it in memory).
    size = os.path.getsize(wal)
    res = CliRunner().invoke(main, ["events", "list", "--db", path, "--all", "--limit", "1000", "--json"])
    assert res.exit_code == 0, res.output
    assert os.path.getsize(wal) == size
    # Cut the log in half: refused in one line, and nothing is replayed or checkpointed away.
    with open(wal, "r+b") as f:
        f.truncate(size // 2)
    res = CliRunner().invoke(main, ["events", "list", "--db", path])
    line = _one_line(res)
    assert res.exit_code == 5 and "truncated" in line and "write-ahead log" in line
    assert os.path.getsize(wal) == size // 2
    with pytest.raises(StoreCorrupt, match="truncated"):
        open_store(path)
    # A log that is all there opens with every commit.
    intact = os.path.join(spare, "s.duckdb")
    store = open_store(intact)
    try:
        assert store.count_rows("events") == total
    finally:
        store.close()
    # A clean close checkpoints: no log and no mark are left for the next open.
    assert not os.path.exists(intact + ".wal") and not os.path.exists(intact + ".walmark")


def test_a_deleted_wal_is_refused_but_a_checkpoint_since_the_mark_is_not(tmp_path):
    path = str(tmp_path / "s.duckdb")
    init_store(path, "district", "500108").close()
    _crash_after_writes(path, 5)
    shutil.copy(path, str(tmp_path / "copy.duckdb"))
    shutil.copy(path + ".walmark", str(tmp_path / "copy.duckdb.walmark"))
    os.remove(path + ".wal")
    with pytest.raises(StoreCorrupt, match="missing"):
        open_store(path)
    # The mark belongs to the headers it saw: after a checkpoint (other headers) it says nothing.
    con = duckdb.connect(path, config={"autoload_known_extensions": False, "autoinstall_known_extensions": False})
    con.execute("CREATE TABLE scratch (a INTEGER)")
    con.execute("CHECKPOINT")
    con.close()
    open_store(path, read_only=True).close()


# ---------------------------------------------------------------- store check (issue 11 item 7)


def _corrupt_block_of(path: str, table: str, column: str, avoid: set[int]) -> int:
    """Overwrite bytes inside a data block holding ``table.column`` and no block in ``avoid``; the block id."""
    con = duckdb.connect(path, read_only=True)
    try:
        blocks = {r[0] for r in con.execute(
            f"SELECT block_id FROM pragma_storage_info('{table}') WHERE column_name = ? AND block_id >= 0",
            [column]).fetchall()}
    finally:
        con.close()
    candidates = sorted(blocks - avoid)
    assert candidates, f"{table}.{column} shares every block with {avoid}"
    block = candidates[-1]
    with open(path, "r+b") as f:
        f.seek(DATA_START + block * BLOCK + 4096)
        f.write(b"\xa5" * 256)
    return block


def _blocks_of(path: str, tables: list[str]) -> set[int]:
    con = duckdb.connect(path, read_only=True)
    try:
        return {r[0] for t in tables for r in con.execute(
            f"SELECT block_id FROM pragma_storage_info('{t}') WHERE block_id >= 0").fetchall()}
    finally:
        con.close()


def test_single_block_corruption_that_list_and_audit_miss_is_found_by_check(tmp_path):
    path = str(tmp_path / "s.duckdb")
    numbers, head = _store_with_events(path)
    runner = CliRunner()
    res = runner.invoke(main, ["store", "check", "--db", path])
    assert res.exit_code == 0 and "sound" in res.output and f"change log 1..{head}" in res.output, res.output
    # What `events list` and `audit verify` read stays intact; the change log's data is damaged.
    read_by_others = _blocks_of(path, ["event_queue", "audit_log", "store_meta", "schema_migrations"])
    _corrupt_block_of(path, "changes", "data", read_by_others)
    res = runner.invoke(main, ["events", "list", "--db", path])
    assert res.exit_code == 0 and numbers[0] in res.output
    assert runner.invoke(main, ["audit", "verify", "--db", path]).exit_code == 0
    res = runner.invoke(main, ["store", "check", "--db", path])
    line = _one_line(res)
    assert res.exit_code == 1 and "table changes is unreadable" in line and "checksum" in line


@pytest.mark.parametrize("damage, fault", [
    ("DELETE FROM event_queue WHERE id = (SELECT min(id) FROM event_queue)", "missing from event_queue"),
    ("UPDATE event_queue SET version = version + 7 WHERE id = (SELECT min(id) FROM event_queue)",
     "not that open event"),
    ("DELETE FROM changes WHERE seq = 17", "gap at seq 17"),
    ("UPDATE audit_log SET note = 'rewritten' WHERE seq = 5", "audit chain broken at seq 5"),
])
def test_check_names_the_first_logical_fault(tmp_path, damage, fault):
    path = str(tmp_path / "s.duckdb")
    _store_with_events(path, n=12)
    con = duckdb.connect(path)
    con.execute(damage)
    con.close()
    store = open_store(path, read_only=True)
    try:
        report = check_store(store)
    finally:
        store.close()
    assert not report.ok and fault in report.fault


def test_a_servers_check_walks_the_audit_chain_from_the_last_verified_entry(tmp_path):
    """Start-up cost follows what was appended since the last check; the entry the mark names must still be
    there unchanged, and ``cqgov store check`` (the full walk) still finds damage before the mark."""
    path = str(tmp_path / "s.duckdb")
    _store_with_events(path, n=12)
    store = open_store(path)
    try:
        first = check_store(store, audit_from_mark=True)
        assert first.ok and first.audit_entries > 10  # no mark yet: the whole chain, then the mark recorded
        again = check_store(store, audit_from_mark=True)
        assert again.ok and again.audit_entries == 0  # nothing appended since
        mark = store.meta("audit_checked")
    finally:
        store.close()
    seq = int(mark.split()[0])
    con = duckdb.connect(path)
    con.execute("UPDATE audit_log SET note = 'rewritten' WHERE seq = 3")  # before the mark: the full walk's job
    con.close()
    store = open_store(path)
    try:
        assert check_store(store, audit_from_mark=True).ok
        full = check_store(store)
        assert not full.ok and "audit chain broken at seq 3" in full.fault
    finally:
        store.close()
    con = duckdb.connect(path)
    con.execute("UPDATE audit_log SET hash = 'x' WHERE seq = ?", [seq])  # the verified entry itself
    con.close()
    store = open_store(path)
    try:
        report = check_store(store, audit_from_mark=True)
        assert not report.ok and f"audit chain broken at seq {seq}" in report.fault
    finally:
        store.close()


# ---------------------------------------------------------------- backup of a closed store (issue 12 item 8)


def test_backup_of_a_closed_store_copies_its_log_and_leaves_it_alone(tmp_path):
    path = str(tmp_path / "s.duckdb")
    init_store(path, "district", "500108").close()
    total = _crash_after_writes(path, 8)  # the last commits are only in the log
    wal_size = os.path.getsize(path + ".wal")
    copy = str(tmp_path / "backup.duckdb")
    runner = CliRunner()
    res = runner.invoke(main, ["store", "backup", "--db", path, "--to", copy])
    assert res.exit_code == 0 and "check of the copy: sound" in res.output, res.output
    assert os.path.getsize(path + ".wal") == wal_size  # the store was read, not changed
    assert not os.path.exists(copy + ".wal")  # the copy is one self-contained file
    store = open_store(copy, read_only=True)
    try:
        assert store.count_rows("events") == total
    finally:
        store.close()
    res = runner.invoke(main, ["store", "backup", "--db", path, "--to", copy])
    assert res.exit_code == 2 and "never overwrites" in _one_line(res)


def test_store_check_json(tmp_path):
    path = str(tmp_path / "s.duckdb")
    _store_with_events(path, n=10)
    res = CliRunner().invoke(main, ["store", "check", "--db", path, "--json"])
    assert res.exit_code == 0, res.output
    assert '"ok": true' in res.output and '"fault": null' in res.output
