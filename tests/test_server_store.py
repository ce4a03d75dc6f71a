"""A tier server and its store's health (issue 11 item 7, issue 12 item 8), on real servers on 127.0.0.1:
a server on a store with a damaged block says `degraded` and answers 503 with the reason instead of 500, and
refuses writes; `cqgov store backup` copies a store a running `cqgov serve` holds, through that server; a clean
shutdown leaves the store checkpointed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from cqgov_tui.cli import main
from cqgov_tui.server.auth import TokenAuthority, load_secret
from cqgov_tui.store import open_store

from synchost import _listen, stop_process, until
from test_store_integrity import _blocks_of, _corrupt_block_of, _store_with_events

SECRET = b"server-store-test-secret-0123456789abcdef"
DEADLINE_S = 60.0


class Serving:
    """A TierServer on an existing store, under TierUvicorn (as `cqgov serve` runs it), always stopped."""

    def __init__(self, path: str):
        from cqgov_tui.server.app import TierServer, TierUvicorn, create_app

        self.store = open_store(path)
        self.server = TierServer(self.store, TokenAuthority(SECRET), sweep_every=3600)
        self.sock = _listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.server), log_level="critical", lifespan="on",
                                timeout_graceful_shutdown=1, access_log=False)
        self.uv = TierUvicorn(config, self.server)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.token = self.server.authority.issue(user="li", role="admin", tier=self.store.tier.value,
                                                 scope=self.store.code, now=self.server.clock.now(), ttl=600)

    def __enter__(self) -> "Serving":
        self.thread.start()
        try:
            until(lambda: self.uv.started or not self.thread.is_alive(), "the server listens")
        except AssertionError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.uv.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.store.close()


def test_a_server_on_a_damaged_store_says_degraded_and_refuses_writes(tmp_path):
    path = str(tmp_path / "district-500108.duckdb")
    _store_with_events(path, n=120)
    _corrupt_block_of(path, "changes", "data", _blocks_of(path, ["event_queue", "audit_log", "store_meta",
                                                                  "schema_migrations", "sync_cursor"]))
    with Serving(path) as s:
        auth = {"Authorization": f"Bearer {s.token}"}
        until(lambda: httpx.get(s.url + "/v1/health", timeout=10).text.strip() == "degraded",
               "the start-up check reports the damage")
        health = httpx.get(s.url + "/v1/health", headers=auth, timeout=10).json()
        assert health["status"] == "degraded" and "changes" in health["store"]["fault"]
        head = s.store.head()
        r = httpx.get(s.url + "/v1/changes", params={"cursor": f"{s.store.epoch}:0"}, headers=auth, timeout=10)
        assert r.status_code == 503 and "checksum" in r.json()["detail"]
        r = httpx.get(s.url + "/v1/snapshot", headers=auth, timeout=10)
        assert r.status_code == 503
        r = httpx.post(s.url + "/v1/commands", headers=auth, timeout=10, json={"commands": [
            {"id": "cmd-0000000001", "type": "report", "body": {"category": "noise", "code": "500108001"}}]})
        assert r.status_code == 503 and "degraded" in r.json()["detail"]
        assert s.store.head() == head and s.store.count_rows("applied_commands") == 0


def test_a_sound_store_serves_ok_after_its_check(tmp_path):
    path = str(tmp_path / "district-500108.duckdb")
    _store_with_events(path, n=5)
    with Serving(path) as s:
        assert s.server.integrity.wait(DEADLINE_S)
        report = s.server.integrity.report
        assert report is not None and report.ok and s.server.degraded is None
        assert httpx.get(s.url + "/v1/health", timeout=10).text.strip() == "ok"


# ---------------------------------------------------------------- backup through `cqgov serve`


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    """`cqgov serve` in a process of its own (it holds the store's lock), stopped with SIGINT."""
    path = str(tmp_path / "district-500108.duckdb")
    secret = str(tmp_path / "district.secret")
    authority = TokenAuthority(load_secret(secret))
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cqgov_tui", "serve", "--tier", "district", "--code", "500108",
                             "--db", path, "--secret-file", secret, "--port", str(port), "--sweep-every", "3600"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(url + "/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        until(up, "cqgov serve answers")
        yield proc, url, path, authority
    finally:
        stop_process(proc)
        log.close()


def test_backup_of_a_store_a_server_holds_goes_through_the_server(served, tmp_path):
    proc, url, path, authority = served
    admin = authority.issue(user="li", role="admin", tier="district", scope="500108", now=time.time(), ttl=600)
    r = httpx.post(url + "/v1/commands", headers={"Authorization": f"Bearer {admin}"}, timeout=30, json={"commands": [
        {"id": f"cmd-{i:010d}", "type": "report", "body": {"category": "noise", "code": "500108001", "title": f"噪声{i}"}}
        for i in range(3)]})
    assert r.status_code == 200 and len(r.json()["accepted"]) == 3, r.text
    runner = CliRunner()
    copy = str(tmp_path / "backup.duckdb")

    res = runner.invoke(main, ["store", "backup", "--db", path, "--to", copy])
    assert res.exit_code == 5 and "--server URL" in res.output and not os.path.exists(copy), res.output

    clerk = authority.issue(user="wu", role="dispatcher", tier="district", scope="500108", now=time.time(), ttl=600)
    res = runner.invoke(main, ["store", "backup", "--db", path, "--to", copy, "--server", url, "--token", clerk])
    assert res.exit_code == 6 and "HTTP 403" in res.output and not os.path.exists(copy), res.output

    res = runner.invoke(main, ["store", "backup", "--db", str(tmp_path / "other.duckdb"), "--to", copy,
                               "--server", url, "--token", admin])
    assert res.exit_code == 2 and "not other.duckdb" in res.output and not os.path.exists(copy), res.output

    res = runner.invoke(main, ["store", "backup", "--db", path, "--to", copy, "--server", url, "--token", admin,
                               "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["check"]["ok"] and doc["backup"]["head"] > 0
    with open_store(copy, read_only=True) as store:
        assert store.count_rows("events") == 3
        assert store.head() == doc["backup"]["head"]
    assert runner.invoke(main, ["store", "check", "--db", copy]).exit_code == 0
    assert not any(name.startswith(".cqgov-backup-") for name in os.listdir(tmp_path))  # the server's copy is gone

    # A clean shutdown checkpoints: everything is in the main file, no log is left behind.
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) in (0, 130)  # Ctrl-C: a clean stop (130 is "interrupted")
    assert not os.path.exists(path + ".wal") and not os.path.exists(path + ".walmark")
    with open_store(path, read_only=True) as store:
        assert store.count_rows("events") == 3
