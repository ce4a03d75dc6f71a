"""A small tier server for sync tests: the real router and engine on a real uvicorn on 127.0.0.1.

Reusable by other tests (``SyncTestHost``, ``serve_in_thread``) and runnable as
a subprocess that tests may kill -9:

    python tests/synchost.py --db PATH [--port N] [--slow-ms MS] [--tier city --code 500000]

prints ``READY <port>`` once it listens.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import uvicorn  # noqa: E402
from fastapi import FastAPI, HTTPException, Request  # noqa: E402

from cqgov_tui.domain.entities import Role, Tier, User  # noqa: E402
from cqgov_tui.engine import Engine  # noqa: E402
from cqgov_tui.errors import BadInput  # noqa: E402
from cqgov_tui.scope import CITY_CODE  # noqa: E402
from cqgov_tui.store import Store, init_store, open_store  # noqa: E402
from cqgov_tui.sync.router import make_sync_router  # noqa: E402

ADMIN = User("admin", "管理员", Role.ADMIN, Tier.CITY, CITY_CODE)
_REPORT_FIELDS = ("category", "title", "text", "lon", "lat", "code", "colour", "source", "reporter", "address",
                  "event_id")


class SyncTestHost:
    """authenticate: ``Bearer <token>`` from ``tokens`` (no header → ``default_user``);
    execute: ``report`` and ``act`` through the engine."""

    command_types = frozenset({"report", "act"})

    def __init__(self, store: Store, tokens: dict[str, User] | None = None, default_user: User | None = ADMIN,
                 slow_ms: float = 0.0):
        self.store = store
        self.engine = Engine(store)
        self.tokens = tokens or {}
        self.default_user = default_user
        self.slow_ms = slow_ms
        self.fail_commands = False  # a test switch: every command fails as an unavailable store would
        self.executed = 0

    def authenticate(self, request: Request) -> User:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            user = self.tokens.get(auth[7:])
            if user is None:
                raise HTTPException(401, "unknown token")
            return user
        if self.default_user is None:
            raise HTTPException(401, "a token is required")
        return self.default_user

    def execute(self, user: User, command_type: str, body: dict) -> dict:
        if self.fail_commands:  # the store unavailable (a disk error): commands are deferred, not rejected
            raise OSError(5, "commands are switched off by the test")
        if self.slow_ms:
            time.sleep(self.slow_ms / 1000.0)  # widens the window in which a kill lands mid-command
        if command_type == "report":
            event = self.engine.report(actor=user, **{k: body[k] for k in _REPORT_FIELDS if k in body})
        elif command_type == "act":
            event = self.engine.act(str(body.get("event") or body.get("ref") or ""), str(body.get("action", "")), user,
                                    note=str(body.get("note") or ""), departments=body.get("departments"),
                                    target=body.get("target"))
        else:
            raise BadInput(f"unknown command type {command_type!r}")
        self.executed += 1
        return {"event_id": event.id, "number": event.number, "status": event.status, "version": event.version}


_CATEGORIES = ("road_collapse", "manhole_cover", "garbage", "streetlight", "street_vending", "dispute")


def report_body(rng, i: int, district: str = "500108") -> dict:
    """A report command body at a random point of a district (random points rarely fall within dedup range)."""
    from cqgov_tui.geo.registry import get_registry

    lon, lat = get_registry().random_point(district, rng)
    return {"category": _CATEGORIES[i % len(_CATEGORIES)], "title": f"测试事件{i}",
            "text": f"第{i}号测试事件：市民反映此处需要处理，请网格员尽快核实。", "lon": lon, "lat": lat}


def events_hash(store: Store, scope_prefix: str = "") -> tuple[int, str]:
    """(count, sha256) over every column of every event whose district starts with ``scope_prefix``."""
    import hashlib
    import json

    from cqgov_tui.store.replica import event_rows

    with store.lock:
        ids = [r[0] for r in store.conn.execute(
            "SELECT id FROM events WHERE starts_with(district_code, ?) ORDER BY id", [scope_prefix]).fetchall()]
    rows = event_rows(store, ids)
    digest = hashlib.sha256(json.dumps([rows[i] for i in ids], sort_keys=True, ensure_ascii=False).encode())
    return len(ids), digest.hexdigest()


def make_app(host: SyncTestHost) -> FastAPI:
    app = FastAPI()
    host.router = make_sync_router(host)  # tests read host.router.delta_cache
    app.include_router(host.router)
    return app


def until(cond, what: str, deadline_s: float = 60.0):
    """Poll ``cond`` until it returns something true (returned), or fail after ``deadline_s``."""
    give_up = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a ``cqgov serve`` child as Ctrl-C does (SIGINT), killing it if it has not exited in 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _listen(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ServerThread:
    """uvicorn in a daemon thread on an ephemeral loopback port; ``stop()`` always ends it."""

    def __init__(self, app, port: int = 0):
        self.sock = _listen(port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class TierServing:
    """A real tier server (``TierServer``, lifespan on) under ``TierUvicorn`` on a loopback port, set up as
    ``cqgov serve`` sets it up (1 s graceful shutdown), with an admin token for its jurisdiction.
    A context manager: entering waits (bounded) until it listens, leaving stops it and closes the store."""

    def __init__(self, tmp_path, tier: str, code: str, secret: bytes, clock=None, token_ttl: float = 600.0):
        from cqgov_tui.server.app import TierServer, TierUvicorn, create_app
        from cqgov_tui.server.auth import TokenAuthority

        self.store = init_store(str(tmp_path / f"{tier}-{code}.duckdb"), tier, code, clock=clock)
        self.server = TierServer(self.store, TokenAuthority(secret), clock=clock, sweep_every=3600)
        self.clock = self.server.clock
        self.sock = _listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.server), log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=1, access_log=False)
        self.uv = TierUvicorn(config, self.server)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.token = self.server.authority.issue(user="li", role="admin", tier=tier, scope=code,
                                                 now=self.clock.now(), ttl=token_ttl)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.uv.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        if not self.uv.started:
            self.__exit__()
            raise AssertionError("the tier server did not start")
        return self

    def __exit__(self, *exc):
        self.uv.should_exit = True
        self.thread.join(15)
        self.sock.close()
        self.store.close()


@contextlib.contextmanager
def serve_in_thread(host: SyncTestHost, port: int = 0):
    server = ServerThread(make_app(host), port).start()
    try:
        yield server
    finally:
        server.stop()


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--slow-ms", type=float, default=0.0)
    ap.add_argument("--tier", default="city")
    ap.add_argument("--code", default=CITY_CODE)
    args = ap.parse_args()
    store = open_store(args.db) if os.path.exists(args.db) else init_store(args.db, args.tier, args.code)
    host = SyncTestHost(store, slow_ms=args.slow_ms)
    sock = _listen(args.port)
    server = uvicorn.Server(uvicorn.Config(make_app(host), log_level="error", lifespan="off", access_log=False))
    print(f"READY {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    _main()
