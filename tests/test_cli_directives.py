"""`cqgov token create` and `cqgov directive send/status/receipt` against a real district server on loopback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.server.app import TierServer, create_app
from cqgov_tui.server.auth import TokenAuthority
from cqgov_tui.store import init_store
from synchost import ServerThread

SECRET = b"cli-directive-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def district(tmp_path_factory):
    root = tmp_path_factory.mktemp("district")
    (root / "district.secret").write_bytes(SECRET)
    store = init_store(str(root / "district.duckdb"), "district", "500108")
    server = TierServer(store, TokenAuthority(SECRET))
    http = ServerThread(create_app(server, start_background=False)).start()
    yield root, http.url, store
    http.stop()
    store.close()


def cqgov(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def token(root, role, scope="500108", tier="district", department=None):
    args = ["token", "create", "--secret-file", root / "district.secret", "--user", f"{role}-1", "--role", role,
            "--tier", tier, "--scope", scope]
    if department:
        args += ["--department", department]
    res = cqgov(*args)
    assert res.exit_code == 0, res.output
    return res.output.strip()


def test_a_directive_to_a_department_is_sent_followed_and_answered_only_by_its_audience(district):
    root, url, store = district
    duty = token(root, "duty_officer")
    sent = cqgov("directive", "send", "--server", url, "--token", duty, "--to", "500108001，城管,网格员",
                 "--deadline", "2h", "--text", "渣土车夜查，今晚22点前反馈", "--json")
    assert sent.exit_code == 0, sent.output
    result = json.loads(sent.output)
    assert result["targets"] == ["500108001", "dept:cgj", "role:grid_worker"] and result["recipients"] == 1
    ref = result["number"]

    street = dict(scope="500108001", tier="street")
    other = cqgov("directive", "receipt", "--server", url, "--token", token(root, "department", department="应急", **street),
                  ref, "acknowledged", "--code", "500108001")
    assert other.exit_code != 0 and "addressed to 城管 · 网格员" in other.output and len(other.output.splitlines()) == 1
    assert store.receipts(result["directive_id"]) == []  # the refusal changed nothing

    ok = cqgov("directive", "receipt", "--server", url, "--token", token(root, "department", department="cgj", **street),
               ref, "acknowledged", "--code", "500108001")
    assert ok.exit_code == 0 and ok.output.strip() == "500108001 acknowledged", ok.output

    status = cqgov("directive", "status", "--server", url, "--token", duty, ref, "--json")
    data = json.loads(status.output)
    assert data["audience"] == {"departments": ["cgj"], "roles": ["grid_worker"]}
    assert data["counts"]["acknowledged"] == 1 and data["complete"]


@pytest.mark.parametrize("extra, says", [
    (["--role", "grid_worker", "--department", "cgj"], "--department is for department users"),
    (["--role", "department", "--department", "交警大队"], "unknown target '交警大队'"),
])
def test_bad_department_on_a_token_is_one_line(district, extra, says):
    root, _, _ = district
    res = cqgov("token", "create", "--secret-file", root / "district.secret", "--user", "x", "--tier", "street",
                "--scope", "500108001", *extra)
    assert res.exit_code != 0 and says in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_an_unknown_target_is_refused_by_the_server_and_nothing_is_sent(district):
    root, url, store = district
    before = len(store.directives())
    res = cqgov("directive", "send", "--server", url, "--token", token(root, "duty_officer"), "--to", "500108001,交警大队",
                "--deadline", "1h", "--text", "x")
    assert res.exit_code != 0 and "unknown target" in res.output and len(res.output.strip().splitlines()) == 1
    assert len(store.directives()) == before
