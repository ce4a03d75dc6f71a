"""`cqgov events supervise` (issue 13): 督办 on a local store, through a real tier server on 127.0.0.1, and from a
replica through its outbox; refusals are one line with the exit code of their refusal code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.domain.entities import Role, User
from cqgov_tui.errors import EXIT_BAD_INPUT, EXIT_DENIED, EXIT_ILLEGAL
from cqgov_tui.store import open_store

from synchost import TierServing

SECRET = b"supervise-cli-test-secret-0123456789"
ADMIN = User("ops", "ops", Role.ADMIN, "district", "500108")


def _one_line(res) -> str:
    text = res.output.strip()
    assert text.count("\n") == 0 and "Traceback" not in res.output, res.output
    return text


def _supervisions(store, number: str) -> list:
    return [d for d in store.directives() if d.title == f"督办 {number}"]


@pytest.fixture
def local(tmp_path):
    runner = CliRunner()
    db = str(tmp_path / "d.duckdb")
    assert runner.invoke(main, ["init", "--db", db, "--tier", "district", "--code", "500108"]).exit_code == 0
    numbers = []
    for title in ("渣土车撒漏", "井盖缺失"):
        res = runner.invoke(main, ["events", "report", "--db", db, "--category", "muck_spill", "--code", "500108001",
                                   "--title", title, "--json"])
        assert res.exit_code == 0, res.output
        numbers.append(json.loads(res.output)["number"])
    return runner, db, numbers


def test_supervise_on_a_local_store_sends_a_directive_to_the_owning_street(local):
    runner, db, (open_one, _) = local
    res = runner.invoke(main, ["events", "supervise", open_one, "--db", db, "--note", "请30分钟内清理", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    with open_store(db, read_only=True) as store:
        [d] = _supervisions(store, open_one)
        assert out["directive_id"] == d.id and d.targets == ["500108001"] and d.require_ack
        assert "请30分钟内清理" in d.text
        assert store.get_receipt(d.id, "500108001").state == "delivered"
        trail = store.audit_entries(out["event_id"])
        assert trail[-1].action == "supervise_request" and d.number in trail[-1].note


def test_supervise_refusals_are_one_line_and_change_nothing(local):
    runner, db, (open_one, closed) = local
    for step in ("verify", "assess", "dispatch", "accept", "arrive", "dispose", "feedback", "close"):
        # (the category's plan may have taken the first steps already: those are refused, exit 3)
        res = runner.invoke(main, ["events", "act", "--db", db, closed, step, "--role", "admin"])
        assert res.exit_code in (0, EXIT_ILLEGAL), res.output
    with open_store(db, read_only=True) as store:
        assert store.resolve_event(closed).status == "closed"
    cases = [
        (["events", "supervise", closed, "--note", "请说明"], EXIT_ILLEGAL, "closed"),
        (["events", "supervise", "0108-20991231-99999", "--note", "请说明"], EXIT_DENIED, "jurisdiction"),
        (["events", "supervise", open_one, "--note", "  "], EXIT_BAD_INPUT, "--note"),
        (["events", "supervise", open_one, "--note", "x", "--deadline", "yesterday"], EXIT_BAD_INPUT, "deadline"),
    ]
    for args, code, words in cases:
        res = runner.invoke(main, [*args, "--db", db])
        assert res.exit_code == code and words in _one_line(res), (args, res.output)
    with open_store(db, read_only=True) as store:
        assert not store.directives()


def test_supervise_through_a_server_and_from_a_replica(tmp_path):
    runner = CliRunner()
    with TierServing(tmp_path, "district", "500108", SECRET) as district:
        engine = district.server.engine
        event = engine.report(category="muck_spill", title="渣土车撒漏", code="500108001", actor=ADMIN,
                              apply_plans=False)
        other = engine.report(category="muck_spill", title="井盖缺失", code="500108002", actor=ADMIN,
                              apply_plans=False)
        remote = ["--server", district.url, "--token", district.token]
        res = runner.invoke(main, ["events", "supervise", event.number, "--note", "请立即处置", *remote, "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["number"] == _supervisions(district.store, event.number)[0].number
        # The server's refusal carries a code: an unknown event is "not in your jurisdiction" (exit 4).
        res = runner.invoke(main, ["events", "supervise", "0108-20991231-99999", "--note", "x", *remote])
        assert res.exit_code == EXIT_DENIED and "jurisdiction" in _one_line(res)
        # A replica queues the supervision in its outbox; the next sync sends it and the server applies it.
        rep = str(tmp_path / "rep.duckdb")
        sync = ["sync", "--server", district.url, "--token", district.token, "--db", rep, "--once", "--wait", "0"]
        assert runner.invoke(main, sync).exit_code == 0
        res = runner.invoke(main, ["events", "supervise", other.number, "--note", "请核实", "--db", rep])
        assert res.exit_code == 0 and "queued" in _one_line(res), res.output
        assert not _supervisions(district.store, other.number)
        res = runner.invoke(main, sync + ["--json"])
        assert res.exit_code == 0, res.output
        [d] = _supervisions(district.store, other.number)
        assert d.targets == ["500108002"]
