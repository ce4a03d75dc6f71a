"""A tier server's care of its own store: integrity (``degraded``) and backups through the server.

``StoreHealth`` runs ``store.check`` in full when the server starts (on a
thread of its own: a large store takes a while, and the server answers
meanwhile) and is told of every read of the store that fails. Either fault
makes the server ``degraded``: ``StoreHealth.fault`` holds the one-line reason
(the health endpoint reports it), writes are refused with it (503, so clients
keep their commands and retry later) and the scheduler stops writing. A
degraded server stays so until it is restarted on a repaired or restored store.

``GET /v1/store/backup`` (an admin token of this server's jurisdiction)
answers a consistent copy of the store, made while the server keeps serving
(``store.backup``); ``cqgov store backup --server`` saves it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from typing import Any

import duckdb
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from ..domain.entities import Role
from ..scope import covers
from ..store import Store
from ..store.backup import backup_to
from ..store.check import CheckReport, check_store

log = logging.getLogger("cqgov.server")

STORE_FILE_HEADER = "X-Cqgov-Store-File"  # the backed-up store's file name: the CLI checks it is the one meant


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_damage(exc: BaseException) -> bool:
    """A DuckDB error that says the store itself failed (I/O, a bad checksum, DuckDB's own invariants),
    as opposed to a statement DuckDB refused (a constraint, a bug in a query)."""
    if not isinstance(exc, duckdb.Error):
        return False
    if isinstance(exc, (duckdb.IOException, duckdb.InternalException, duckdb.FatalException)):
        return True
    text = str(exc).lower()
    return "corrupt" in text or "checksum" in text


class StoreHealth:
    """Whether this server's store can be trusted: ``fault`` is None, or the first reason it cannot."""

    def __init__(self, store: Store):
        self.store = store
        self.fault: str | None = None
        self.report: CheckReport | None = None  # the start-up check's, once it has finished
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def fail(self, reason: str) -> None:
        with self._lock:
            if self.fault is None:
                self.fault = reason
                log.error("store %s degraded: %s", self.store.path, reason)

    def noticed(self, exc: BaseException) -> None:
        """Told of an error from a store operation: one that says the store failed degrades the server."""
        if is_damage(exc):
            self.fail(f"a store operation failed: {_first_line(exc)}")

    def start(self) -> None:
        """Check the whole store in the background (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._check, name="store-check", daemon=True)
            self._thread.start()

    def _check(self) -> None:
        try:
            report = check_store(self.store, audit_from_mark=True)
        except Exception as exc:  # the check itself must not take the server down
            self.fail(f"store check failed: {_first_line(exc)}")
            return
        self.report = report
        if not report.ok:
            self.fail(f"store check: {report.fault}")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the start-up check; True once it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.report is not None or self.fault is not None

    def as_dict(self) -> dict[str, Any]:
        report = self.report
        return {"fault": self.fault, "checked": report is not None,
                "check_seconds": report.seconds if report is not None else None}


class DegradedGuard:
    """ASGI middleware: a failed store read marks the server degraded and answers 503 with the reason
    (not a bare 500); while degraded, writes (POST) are refused the same way before any handler runs."""

    def __init__(self, app: Any, health: StoreHealth):
        self.app = app
        self.health = health

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.health.fault
        if fault is not None and scope["method"] == "POST":
            await _reply(send, 503, f"store degraded ({fault}); writes are refused until it is repaired")
            return
        started = False

        async def watch(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except duckdb.Error as exc:
            if not is_damage(exc):
                raise
            self.health.noticed(exc)
            if started:
                raise
            await _reply(send, 503, f"store unavailable: {_first_line(exc)}")


async def _reply(send: Any, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def make_store_router(server: Any) -> APIRouter:
    """``/v1/store/backup`` for the tier server ``server`` (its ``store``, ``authenticate`` and ``integrity``)."""
    router = APIRouter()
    store: Store = server.store

    @router.get("/v1/store/backup", tags=["server"],
                summary="A consistent copy of this server's store (DuckDB file), for an admin of its jurisdiction",
                response_class=FileResponse)
    def backup(request: Request) -> FileResponse:
        user = server.authenticate(request)
        if Role(user.role) is not Role.ADMIN or not covers(user.scope_code, store.code):
            raise HTTPException(403, f"{user.user} may not back up the store of {store.code} (an admin of "
                                     f"{store.code} may)")
        where = tempfile.mkdtemp(prefix=".cqgov-backup-", dir=os.path.dirname(os.path.abspath(store.path)))
        try:
            result = backup_to(store, os.path.join(where, "backup.duckdb"))
        except BaseException:
            shutil.rmtree(where, ignore_errors=True)
            raise
        return FileResponse(result.path, media_type="application/octet-stream",
                            headers={STORE_FILE_HEADER: os.path.basename(store.path), "X-Cqgov-Epoch": store.epoch,
                                     "X-Cqgov-Head": str(result.head)},
                            background=BackgroundTask(shutil.rmtree, where, True))

    return router


def stop_checking(health: StoreHealth) -> None:
    """On shutdown: give a running start-up check a moment (it reads on its own connection)."""
    with contextlib.suppress(Exception):
        health.wait(1.0)
