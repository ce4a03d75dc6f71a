"""Replicas cannot be misused from the CLI (issue 12 items 2 and 3), against a real tier server on 127.0.0.1:
`sync` refuses a store that is not that server's replica, `serve` refuses a replica, and writes on a replica go
through its outbox — made offline, pushed by the next `sync`, numbered and applied by the server."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.store import init_store, open_store

from synchost import TierServing

SECRET = b"replica-cli-test-secret-0123456789"


def _one_line(res) -> str:
    text = res.output.strip()
    assert text.count("\n") == 0 and "Traceback" not in res.output, res.output
    return text


def _sync(runner, server, db, token=None):
    return runner.invoke(main, ["sync", "--server", server.url, "--token", token or server.token, "--db", db,
                                "--once", "--wait", "0", "--json"])


def _summary(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.fixture(autouse=True)
def _logging_restored():
    """`serve` sets up logging for its process; invoked in-process, it must not leak into later commands."""
    import logging

    root, cqgov = logging.getLogger(), logging.getLogger("cqgov")
    saved = (list(root.handlers), root.level, list(cqgov.handlers), cqgov.level)
    yield
    root.handlers[:], cqgov.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    cqgov.setLevel(saved[3])


@pytest.fixture
def district(tmp_path):
    with TierServing(tmp_path, "district", "500108", SECRET) as server:
        yield server


def _store_state(path: str) -> tuple[int, int, str]:
    store = open_store(path, read_only=True)
    try:
        return store.count_rows("events"), store.head(), store.node
    finally:
        store.close()


def test_sync_into_an_ordinary_store_is_refused_and_changes_nothing(district, tmp_path):
    runner = CliRunner()
    own = str(tmp_path / "own.duckdb")
    assert runner.invoke(main, ["init", "--db", own, "--tier", "district", "--code", "500108"]).exit_code == 0
    res = runner.invoke(main, ["events", "report", "--db", own, "--category", "muck_spill", "--code", "500108001"])
    assert res.exit_code == 0, res.output
    before = _store_state(own)
    res = _sync(runner, district, own)
    line = _one_line(res)
    assert res.exit_code == 2 and "not a replica" in line
    assert _store_state(own) == before


def test_serve_refuses_a_replica(district, tmp_path):
    runner = CliRunner()
    rep = str(tmp_path / "rep.duckdb")
    _summary(_sync(runner, district, rep))
    res = runner.invoke(main, ["serve", "--tier", "district", "--code", "500108", "--db", rep, "--port", "0"])
    line = _one_line(res)
    assert res.exit_code == 2 and "is a replica of district-500108" in line
    assert not os.path.exists(rep + ".secret")


def test_a_replica_of_another_jurisdiction_is_refused(district, tmp_path):
    runner = CliRunner()
    other = str(tmp_path / "other.duckdb")
    init_store(other, "district", "500112", node="replica-other").close()
    before = _store_state(other)
    res = _sync(runner, district, other)
    assert res.exit_code == 2 and "replica of 500112" in _one_line(res)
    assert _store_state(other) == before


def test_writes_on_a_replica_go_through_the_outbox_and_reach_the_server(district, tmp_path):
    runner = CliRunner()
    rep = str(tmp_path / "rep.duckdb")
    # The server's own event, pulled into a fresh replica.
    seeded = district.server.engine.report(category="muck_spill", title="渣土车撒漏", text="", code="500108001",
                                           actor=district.server.authority.verify(district.token, district.clock.now()),
                                           apply_plans=False)
    assert seeded.number.startswith("500108-")
    _summary(_sync(runner, district, rep))

    # Offline: act and report on the replica. Nothing reaches the server yet.
    res = runner.invoke(main, ["events", "act", "--db", rep, seeded.number, "verify", "--json"])
    assert res.exit_code == 0, res.output
    queued = json.loads(res.output)
    assert queued["queued"] and queued["outbox"] == 1 and queued["event"]["status"] == "verified"
    res = runner.invoke(main, ["events", "report", "--db", rep, "--category", "noise", "--code", "500108002",
                               "--title", "夜间施工噪声"])
    assert res.exit_code == 0 and "queued in the outbox" in res.output and "cqgov sync --server" in res.output
    pending_id = res.output.split()[1]
    assert district.store.get_event(seeded.id).status == "reported"
    assert district.store.get_event(pending_id) is None
    local = open_store(rep, read_only=True)
    try:
        assert local.get_event(pending_id).number == "待同步"  # never a number of the server's kind
    finally:
        local.close()

    # The next sync pushes both; the server applies them and numbers the new event.
    summary = _summary(_sync(runner, district, rep))
    assert summary["pushed"] == 2 and summary["accepted"] == 2 and summary["outbox"] == 0, summary
    assert district.store.get_event(seeded.id).status == "verified"
    made = district.store.get_event(pending_id)
    assert made is not None and made.number.startswith("500108-") and made.number != seeded.number
    local = open_store(rep, read_only=True)
    try:
        assert local.get_event(pending_id).number == made.number  # the server's number came back
        assert local.get_event(seeded.id).status == "verified"
    finally:
        local.close()
    res = runner.invoke(main, ["events", "show", "--db", rep, made.number, "--json"])
    assert res.exit_code == 0 and f'"id": "{pending_id}"' in res.output


def test_a_refused_replica_write_comes_back_with_its_reason(district, tmp_path):
    from cqgov_tui.store.outbox import Outbox

    runner = CliRunner()
    rep = str(tmp_path / "rep.duckdb")
    admin = district.server.authority.verify(district.token, district.clock.now())
    seeded = district.server.engine.report(category="noise", title="噪声", text="", code="500108001", actor=admin,
                                           apply_plans=False)
    _summary(_sync(runner, district, rep))
    district.server.engine.act(seeded.id, "verify", admin)  # the server moves on while the replica is offline
    res = runner.invoke(main, ["events", "act", "--db", rep, seeded.number, "verify"])
    assert res.exit_code == 0 and "queued" in res.output, res.output  # legal as far as the replica knows
    summary = _summary(_sync(runner, district, rep))
    assert summary["rejected"] == 1 and summary["outbox"] == 0, summary
    local = open_store(rep, read_only=True)
    try:
        (refused,) = Outbox(local).rejections()
        assert refused.type == "act" and refused.result["reason"]
        assert local.get_event(seeded.id).status == "verified"  # the server's row, not a local guess
    finally:
        local.close()


def test_a_replica_bound_to_another_server_takes_no_snapshot_from_this_one(district, tmp_path):
    from cqgov_tui.sync import identity
    from cqgov_tui.sync.client import SyncClient, SyncError

    runner = CliRunner()
    rep = str(tmp_path / "rep.duckdb")
    init_store(rep, "district", "500108", node="replica-elsewhere").close()
    store = open_store(rep)
    try:
        store.set_meta(identity.SERVER_KEY, "district-500108-old")
        before = (store.count_rows("events"), store.head())
        res = _sync(runner, district, rep)  # the CLI asks the server who it is first
        assert res.exit_code == 2 and "is a replica of district-500108-old" in res.output
        client = SyncClient(store, district.url, district.token, wait=0)
        try:
            with pytest.raises(SyncError, match="replica of district-500108-old"):
                client.pull_once()
        finally:
            client.close()
        assert (store.count_rows("events"), store.head()) == before
    finally:
        store.close()


def test_the_console_opens_a_replica_only_with_its_server(district, tmp_path):
    from cqgov_tui.console.session import open_backend
    from cqgov_tui.errors import BadInput

    rep = str(tmp_path / "rep.duckdb")
    _summary(_sync(CliRunner(), district, rep))
    with pytest.raises(BadInput, match=f"cqgov tui --server {district.url}"):
        open_backend(db_path=rep)
    open_store(rep, read_only=True).close()  # refused, and closed again
