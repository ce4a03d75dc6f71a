"""The invariants the store's unit of work owns, after random command batches and after kill -9 mid-commit:
the queue holds exactly the open events (and the in-memory index agrees with it), the change log is
gapless, the audit chain verifies, and a refused command in a batch leaves no row behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cqgov_tui.clock import SimClock
from cqgov_tui.domain.entities import TERMINAL
from cqgov_tui.server.app import TierServer
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store, open_store
from cqgov_tui.sync.router import GroupCommit

SECRET = b"unit-of-work-secret-0123456789abcdef01"
_TERMINAL = tuple(s.value for s in TERMINAL)
_STREETS = ["500108001", "500108002", "500108003"]
_CATEGORIES = ["manhole_cover", "garbage", "noise", "no-such-category"]
_ACTIONS = ["verify", "assess", "dispatch", "accept", "arrive", "dispose", "feedback", "close", "reject",
            "comment", "review", "bogus"]


def check_invariants(store) -> None:
    """What must hold of any committed store, read with SQL and from the in-memory index."""
    conn = store.conn
    queue = {r[0] for r in conn.execute("SELECT id FROM event_queue").fetchall()}
    open_ids = {r[0] for r in conn.execute(f"SELECT id FROM events WHERE status NOT IN {_TERMINAL}").fetchall()}
    assert queue == open_ids, "event_queue must hold exactly the open events"
    assert conn.execute("SELECT count(*) FROM (SELECT * FROM event_queue EXCEPT SELECT * FROM events)").fetchall()[0][0] == 0
    lo, hi, n = conn.execute("SELECT coalesce(min(seq), 1), coalesce(max(seq), 0), count(*) FROM changes").fetchall()[0]
    assert (lo, hi) == (1, n) and store.head() == n, "the change log must be gapless from 1 to the head"
    assert store.verify_audit().ok
    indexed = {e.id: e for e in store.open_events()}
    stored = {e.id: e for e in store.queue(limit=100_000)}
    assert indexed == stored, "the open-event index must agree with event_queue"


def _setup(tmp_path, name="street.duckdb"):
    clock = SimClock(1_795_000_000.0)
    store = init_store(str(tmp_path / name), "street", "500108001", clock=clock)
    server = TierServer(store, TokenAuthority(SECRET), clock=clock)
    user = server.authority.verify(server.authority.issue(user="li", role="admin", tier="street", scope="500108001",
                                                          now=clock.now(), ttl=10**6), clock.now())
    return clock, store, server, user


commands = st.lists(st.one_of(
    st.tuples(st.just("report"), st.sampled_from(_CATEGORIES), st.sampled_from(_STREETS[:1] + ["500108001001"])),
    st.tuples(st.just("act"), st.integers(0, 30), st.sampled_from(_ACTIONS)),
), min_size=1, max_size=12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.tuples(commands, st.booleans()), min_size=1, max_size=5))
def test_random_batches_keep_every_invariant(tmp_path_factory, batches):
    tmp = tmp_path_factory.mktemp("uow")
    clock, store, server, user = _setup(tmp)
    committer = GroupCommit(server)
    numbers: list[str] = []
    n = 0
    try:
        for batch, advance in batches:
            cmds = []
            for op in batch:
                n += 1
                if op[0] == "report":
                    body = {"category": op[1], "code": op[2], "title": f"事件 {n}"}
                else:
                    ref = numbers[op[1] % len(numbers)] if numbers else "0108-20261124-99999"
                    body = {"event": ref, "action": op[2], "note": "备注" if op[2] in ("reject", "comment") else ""}
                cmds.append({"id": f"cmd-{n:06d}", "type": op[0], "body": body})
            events_before = store.count_rows("events")
            audit_before = store.count_rows("audit_log")
            reply = committer.submit(user, cmds)
            accepted = {a["id"]: a["result"] for a in reply["accepted"]}
            assert len(accepted) + len(reply["rejected"]) == len(cmds)
            reports = [c for c in cmds if c["type"] == "report" and c["id"] in accepted]
            numbers += [accepted[c["id"]]["number"] for c in reports]
            # a refused command leaves no row: only accepted reports add events
            assert store.count_rows("events") == events_before + len(reports)
            if not accepted:
                assert store.count_rows("audit_log") == audit_before
            check_invariants(store)
            if advance:
                clock.advance(3600)
                server.engine.sweep()
                check_invariants(store)
        # what was written survives a reopen, and a fresh index agrees with it
        path = store.path
        store.close()
        store = open_store(path, clock)
        check_invariants(store)
    finally:
        store.close()


def test_a_refused_command_between_accepted_ones_is_undone_to_its_mark(tmp_path):
    clock, store, server, user = _setup(tmp_path)
    try:
        committer = GroupCommit(server)
        cmds = [{"id": "ok-000001", "type": "report", "body": {"category": "garbage", "code": "500108001"}},
                {"id": "bad-00001", "type": "report", "body": {"category": "garbage", "code": "500108001",
                                                              "colour": "purple"}},
                {"id": "ok-000002", "type": "report", "body": {"category": "garbage", "code": "500108001"}}]
        reply = committer.submit(user, cmds)
        assert [a["id"] for a in reply["accepted"]] == ["ok-000001", "ok-000002"]
        assert [r["id"] for r in reply["rejected"]] == ["bad-00001"]
        numbers = [a["result"]["number"] for a in reply["accepted"]]
        # the refused report took no serial: numbers run on without a gap
        assert [n[-5:] for n in numbers] == ["00001", "00002"]
        check_invariants(store)
    finally:
        store.close()


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from cqgov_tui.clock import SystemClock
    from cqgov_tui.server.app import TierServer
    from cqgov_tui.server.auth import TokenAuthority
    from cqgov_tui.store import open_store
    from cqgov_tui.sync.router import GroupCommit
    store = open_store({path!r})
    server = TierServer(store, TokenAuthority({secret!r}))
    clock = SystemClock()
    user = server.authority.verify(server.authority.issue(user="li", role="admin", tier="street", scope="500108001",
                                                          now=clock.now(), ttl=3600), clock.now())
    committer = GroupCommit(server)
    n = 0
    for round in range(10_000):
        cmds = []
        for i in range(200):
            n += 1
            cmds.append({{"id": f"k-{{n:08d}}", "type": "report",
                          "body": {{"category": "garbage", "code": "500108001", "title": f"kill {{n}}"}}}})
        committer.submit(user, cmds)
        print("committed", round, flush=True)
""")


@pytest.mark.parametrize("after_commits", [1, 3])
def test_kill_9_mid_commit_leaves_a_whole_store(tmp_path, after_commits):
    store = init_store(str(tmp_path / "k.duckdb"), "street", "500108001")
    path = store.path
    store.close()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(root=root, path=path, secret=SECRET)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 120
        while seen < after_commits and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line.startswith("committed")
        assert seen == after_commits, "the writer did not commit in time"
        # a commit of 200 reports is in flight (or just beginning): kill it there
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    store = open_store(path)
    try:
        check_invariants(store)
        events = store.count_rows("events")
        assert events % 200 == 0 and events >= 200 * after_commits, "a batch is written whole or not at all"
        assert store.count_rows("applied_commands") == events
    finally:
        store.close()


def test_a_command_id_is_known_again_in_the_same_process_and_after_a_restart(tmp_path):
    """Recent ids are remembered in memory (no SQL for a fresh UUIDv7); older ones are found by key."""
    from cqgov_tui.ids import uuid7

    clock, store, server, user = _setup(tmp_path)
    cmds = [{"id": uuid7(), "type": "report", "body": {"category": "garbage", "code": "500108001"}} for _ in range(3)]
    cmds.append({"id": "not-a-uuid-0001", "type": "report", "body": {"category": "garbage", "code": "500108001"}})
    try:
        first = GroupCommit(server).submit(user, cmds)
        assert len(first["accepted"]) == 4
        again = GroupCommit(server).submit(user, cmds)
        assert len(again["duplicate"]) == 4 and not again["accepted"]
        path = store.path
    finally:
        store.close()
    store = open_store(path, clock)
    try:
        server = TierServer(store, TokenAuthority(SECRET), clock=clock)
        after = GroupCommit(server).submit(user, cmds)
        assert len(after["duplicate"]) == 4 and not after["accepted"]
        assert store.count_rows("events") == 4
        check_invariants(store)
    finally:
        store.close()
