"""Issue 14 item 1: duty overrides (someone covering a role in a jurisdiction for a while) — `cqgov roster
override` on a store and through a real tier server on 127.0.0.1, the ``roster.override`` command's typed body,
and overrides replicated like roster rows (scoped by jurisdiction, a new version replacing the old).
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.clock import SimClock
from cqgov_tui.people import roster
from cqgov_tui.store import init_store, open_store
from test_people_server import T0, Serving, command

from cqgov_tui.notify.config import NotifyConfig

OFFICERS = ("user,name,role,department,jurisdiction,phone,email,on_duty,rotation\n"
            "zhang,张伟,duty_officer,,500105,1,,yes,0\n"
            "li,李娜,duty_officer,,500105,2,,yes,1\n")


def _cli(*args: str):
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


@pytest.fixture
def db(tmp_path):
    from cqgov_tui.geo.registry import get_registry

    path = str(tmp_path / "d.duckdb")
    store = init_store(path, "district", "500105")
    roster.import_rows(store, get_registry(), roster.parse_csv(OFFICERS))
    store.close()
    return path


def test_roster_override_on_a_store_puts_the_cover_first_and_refuses_bad_input_in_one_line(db):
    now = time.time()
    code, out = _cli("roster", "on-call", "--db", db, "--role", "duty_officer", "--code", "500105", "--json")
    assert code == 0 and json.loads(out)["chain"][0] == "zhang"
    for args, message in (
            (["--user", "li", "--from", f"{now + 7200:.0f}", "--to", f"{now:.0f}"], "must end after it starts"),
            (["--user", "nobody", "--from", f"{now - 60:.0f}", "--to", "2h"], "no person 'nobody'"),
            (["--user", "li", "--jurisdiction", "jiangbei", "--from", f"{now - 60:.0f}", "--to", "2h"],
             "roster.override: jurisdiction:"),
            (["--user", "li", "--role", "chef", "--from", f"{now - 60:.0f}", "--to", "2h"], "unknown role 'chef'"),
            (["--user", "li", "--from", "tomorrowish", "--to", "2h"], "unreadable"),
            (["--user", "li", "--from", f"{now - 60:.0f}", "--to", "400d"], "at most 366 days")):
        opts = {"--role": "duty_officer", "--jurisdiction": "500105"}
        full = list(args)
        for k, v in opts.items():
            if k not in full:
                full += [k, v]
        code, out = _cli("roster", "override", "--db", db, *full)
        assert code != 0 and message in out and len(out.strip().splitlines()) == 1, (args, out)
    code, out = _cli("roster", "overrides", "--db", db, "--json")
    assert json.loads(out)["overrides"] == []  # nothing refused left a row behind

    code, out = _cli("roster", "override", "--db", db, "--user", "li", "--role", "duty_officer",
                     "--jurisdiction", "500105", "--from", f"{now - 60:.0f}", "--to", "2h", "--json")
    assert code == 0, out
    assert json.loads(out)["user"] == "li" and json.loads(out)["version"] == 1
    code, out = _cli("roster", "on-call", "--db", db, "--role", "duty_officer", "--code", "500105", "--json")
    assert json.loads(out)["chain"][:2] == ["li", "zhang"]
    code, out = _cli("roster", "overrides", "--db", db)
    assert code == 0 and out.startswith("li") and "duty_officer" in out
    # the change log carries it for replicas
    with open_store(db) as store:
        assert [o.user for o in store.overrides()] == ["li"]


def test_roster_override_through_a_server_and_replicated_like_roster_rows(tmp_path):
    from cqgov_tui.geo.registry import get_registry
    from cqgov_tui.sync.client import SyncClient

    registry = get_registry()
    streets = [s.code for s in registry.children("500105")[:2]]
    grids = [registry.grid_codes(s)[0] for s in streets]
    clock = SimClock(T0)
    with Serving(tmp_path, NotifyConfig(), clock) as s:
        admin = s.token("admin", "admin")
        worker = s.token("a1", "grid_worker")
        command(s.url, admin, "roster.import", {"csv": "user,name,role,department,jurisdiction,phone,email,on_duty,"
                                                       "rotation\n"
                                                       f"a1,甲,grid_worker,,{grids[0]},1,,yes,0\n"
                                                       f"a2,丙,grid_worker,,{grids[0]},3,,yes,1\n"
                                                       f"b1,乙,grid_worker,,{grids[1]},2,,yes,0\n"})
        body = {"user": "a2", "role": "grid_worker", "jurisdiction": grids[0], "starts_at": T0 - 60,
                "ends_at": T0 + 3600}
        with pytest.raises(Exception, match="may not set duty overrides"):
            command(s.url, worker, "roster.override", body)
        with pytest.raises(Exception, match="roster.override: ends_at"):
            command(s.url, admin, "roster.override", body | {"ends_at": "soon"})
        with pytest.raises(Exception, match="roster.override: shift"):
            command(s.url, admin, "roster.override", body | {"shift": "day"})
        assert s.store.overrides() == []
        # through the CLI, as a dispatcher would
        r = CliRunner().invoke(main, ["roster", "override", "--server", s.url, "--token", admin, "--user", "a2",
                                      "--role", "grid_worker", "--jurisdiction", grids[0],
                                      "--from", f"{T0 - 60:.0f}", "--to", f"{T0 + 3600:.0f}", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["set_by"] == "admin"
        command(s.url, admin, "roster.override", {"user": "b1", "role": "grid_worker", "jurisdiction": grids[1],
                                                  "starts_at": T0 - 60, "ends_at": T0 + 3600})
        r = CliRunner().invoke(main, ["roster", "overrides", "--server", s.url, "--token", admin, "--json"])
        assert sorted(o["user"] for o in json.loads(r.output)["overrides"]) == ["a2", "b1"]
        assert [p.user for p in roster.on_call(s.store, "grid_worker", grids[0], T0).chain][:2] == ["a2", "a1"]

        replica = init_store(str(tmp_path / "replica.duckdb"), "street", streets[0], clock=clock, node="console-a1")
        token = s.server.authority.issue(user="a1", role="grid_worker", tier="street", scope=streets[0],
                                         now=clock.now(), ttl=86400)
        client = SyncClient(replica, s.url, token, clock, wait=0.0)
        try:
            assert client.pull_until_caught_up().caught_up
            held = replica.overrides()
            assert [(o.user, o.jurisdiction, o.version) for o in held] == [("a2", grids[0], 1)]  # not b1's street
            assert [p.user for p in roster.on_call(replica, "grid_worker", grids[0], T0).chain][:2] == ["a2", "a1"]
            # set again (same role, place and start): a new version replaces it on the replica
            command(s.url, admin, "roster.override", body | {"ends_at": T0 + 600})
            assert client.pull_until_caught_up().caught_up
            (o,) = replica.overrides()
            assert (o.version, o.ends_at) == (2, T0 + 600)
            assert [p.user for p in roster.on_call(replica, "grid_worker", grids[0], T0 + 900).chain] == ["a1", "a2"]
        finally:
            client.close()
            replica.close()
