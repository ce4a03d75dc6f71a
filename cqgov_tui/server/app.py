"""The tier server: one ASGI app owning one DuckDB store.

``create_app`` composes health, the sync router (``/v1/changes``,
``/v1/snapshot``, ``/v1/commands`` from ``cqgov_tui.sync``), directive status
and scoped event queries, the OpenAPI docs, a body-size limit, and a
background scheduler that runs the engine on its own schedule: the SLA sweep
over owned events, the directive re-notify/escalation sweep, directive
delivery at streets, the federation pump and refusal auditing.

``TierServer`` is the ``SyncHost`` the sync router is built on:
``store``, ``authenticate(request)`` and ``execute(user, type, body)``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from dataclasses import asdict
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..clock import Clock
from ..domain.entities import Tier, User
from ..engine import Engine, directives, sensors
from ..errors import BadInput, CqgovError, IllegalTransition, PermissionDenied, UnknownCode
from ..scope import CITY_CODE, covers
from .auth import AuthError, Principal, TokenAuthority, bearer, check_server_scope, visible
from .commands import CommandHandler, safe_message
from .denials import DEFAULT_LIMIT as DENIAL_LIMIT
from .federation import FederationPump
from .upkeep import DegradedGuard, StoreHealth, make_store_router, stop_checking

log = logging.getLogger("cqgov.server")

MAX_BODY = 8 * 1024 * 1024  # a command batch or snapshot request larger than this is refused (413)
SWEEP_EVERY_S = 5.0
PUMP_EVERY_S = 0.2
# Engine-clock seconds between sensor upkeep passes (fold sensor state, roll up old readings).
SENSOR_UPKEEP_EVERY_S = 300.0
# Long-poll of a tier server pulling from the tier above. Short for now: with 55 s waits the demo's
# first directive sometimes missed its receipts within a 12 s run under load (not yet understood).
PEER_WAIT = 2.0
PEER_STOP_S = 5.0  # how long stopping waits for the upstream client's threads


def status_for(exc: BaseException) -> int:
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, UnknownCode) and str(exc).startswith("no "):
        return 404
    if isinstance(exc, IllegalTransition):
        return 409
    if isinstance(exc, (BadInput, CqgovError)):
        return 400
    return 500


class Scheduler(threading.Thread):
    """Runs the engine's periodic work; wakes early when a command or a pull asks it to."""

    def __init__(self, server: "TierServer", sweep_every: float = SWEEP_EVERY_S, pump_every: float = PUMP_EVERY_S):
        super().__init__(name=f"scheduler-{server.store.node}", daemon=True)
        self.server = server
        self.sweep_every = sweep_every
        self.pump_every = pump_every
        self._halt = threading.Event()
        self._wake = threading.Event()
        self.ticks = 0
        self.errors = 0
        self.last_error = ""
        self._last_sweep = 0.0
        self._last_sensor_upkeep: float | None = None

    def wake(self) -> None:
        if not self._wake.is_set():  # called per applied command: setting an event takes its lock and notifies
            self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._halt.is_set():
            self._wake.wait(self.pump_every)
            self._wake.clear()
            if self._halt.is_set():
                break
            try:
                self.tick()
            except Exception as exc:  # the schedule must survive a bad row; the error is reported in health
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.server.integrity.noticed(exc)
                log.exception("scheduler tick failed")

    def tick(self, force_sweep: bool = False) -> None:
        """One round; the engine's clock decides 'now', the wall clock only paces the loop."""
        s = self.server
        if s.degraded:
            return  # a store that failed a read is not written to (upkeep.py)
        s.handler.flush_denials()
        while s.pump.run_once():
            if self._halt.is_set():
                return
        if s.store.tier is Tier.STREET:
            directives.deliver_arrived(s.store)
        mono = time.monotonic()
        if force_sweep or mono - self._last_sweep >= self.sweep_every:
            self._last_sweep = mono
            now = s.clock.now()
            s.engine.sweep(now, owned_only=True)
            directives.sweep(s.store, s.engine.registry, now)
            while s.pump.run_once():
                pass
        now = s.clock.now()
        if s.grid_tasks and s.store.tier is not Tier.CITY:
            from ..people.tasks import generate_today

            generate_today(s.store, s.engine, now)  # a dictionary lookup once today's tasks exist
        if self._last_sensor_upkeep is None or now - self._last_sensor_upkeep >= SENSOR_UPKEEP_EVERY_S:
            self._last_sensor_upkeep = now
            sensors.maintain(s.store, now)
        self.ticks += 1


class TierServer:
    """Everything one tier server owns; the sync router's host."""

    def __init__(self, store, authority: TokenAuthority, *, engine: Engine | None = None, clock: Clock | None = None,
                 upstream: str | None = None, upstream_token: str | None = None, sync_client_factory=None,
                 sweep_every: float = SWEEP_EVERY_S, pump_every: float = PUMP_EVERY_S,
                 denial_limit: int = DENIAL_LIMIT, notify_config=None, public_url: str | None = None,
                 grid_tasks: bool = False):
        self.store = store
        # One core is left to the interpreter: the server's Python (one writer under the GIL) is what every
        # command waits for, and DuckDB statements spread over all cores fought it for CPU (8-client ingest on
        # 2 cores: ~15 % more commands a second with DuckDB on one thread).
        store.set_query_threads((os.cpu_count() or 2) - 1)
        self.clock = clock or store.clock
        self.engine = engine or Engine(store, clock=self.clock)
        self.authority = authority
        self.started_at = self.clock.now()
        self.integrity = StoreHealth(store)  # checked in full at start; ``degraded`` names a fault
        self.scheduler = Scheduler(self, sweep_every, pump_every)
        self.group_commit: Any = None  # the sync router's GroupCommit, once create_app has made it
        self.handler = CommandHandler(self.engine, on_applied=lambda _t: self.scheduler.wake(),
                                      denial_limit=denial_limit)
        self.upstream = upstream
        self.client = None
        if upstream:
            if not upstream_token:
                raise BadInput("--upstream needs a token for the upper tier (--upstream-token)")
            factory = sync_client_factory or _default_sync_client
            self.client = factory(store, upstream, upstream_token, self.clock)
        self.pump = FederationPump(store, self.client)
        # People (issue 14): notifications on a thread of their own, the people command types, grid tasks.
        from ..notify.service import Notifier
        from .people_api import handlers as people_handlers

        self.notifier = Notifier(store, notify_config, self.clock, self.engine.registry, public_url)
        self.handler.handlers.update(people_handlers(self))
        self.grid_tasks = grid_tasks
        # Set when shutdown begins (before uvicorn waits for open requests): long-polls answer at once.
        self.stopping = threading.Event()
        self._client_stopper: threading.Thread | None = None

    # ---- SyncHost

    def authenticate(self, request: Request) -> Principal:
        token = bearer(request.headers.get("authorization"))
        try:
            principal = self.authority.verify(token, self.clock.now())
            check_server_scope(principal, self.store.tier, self.store.code)
        except PermissionDenied as exc:
            raise HTTPException(status_code=status_for(exc), detail=str(exc)) from None
        wait = self.handler.denials.retry_after(principal.user, self.clock.now())
        if wait is not None:  # past the denial rate: not heard until its minute ends
            raise HTTPException(429, f"too many refused requests from {principal.user}; retry in {wait:.0f} s",
                                headers={"Retry-After": str(int(math.ceil(wait)))})
        return principal

    @property
    def degraded(self) -> str | None:
        """Why the store cannot be trusted (a failed read, or the start-up check's first fault), else None."""
        return self.integrity.fault

    def execute(self, user: User, command_type: str, body: Any) -> dict:
        try:
            return self.handler.execute(user, command_type, body)
        except Exception as exc:
            self.integrity.noticed(exc)
            raise

    def prepare(self, commands: list[dict]) -> None:
        self.handler.prepare(commands)

    @property
    def command_types(self) -> set[str]:
        return set(self.handler.types)

    def visible(self, user: User, entity: str, scope: str) -> bool:
        return visible(user.scope_code, scope, entity)

    # ---- lifecycle

    def prime(self, max_requests: int = 200) -> bool:
        """Take the first snapshot from the tier above before serving the tier below.

        A snapshot keeps what the lower tier sent up (``replica.clear_replicated``
        drops only the upper tier's rows), so this is not needed for safety;
        it makes a fresh server hold the upper tier's directives before its
        streets first pull. Run from the lifespan start-up, i.e. before
        uvicorn accepts connections. Returns False if the upper tier could not
        be reached (the background client retries).
        """
        if self.client is None:
            return True
        state = self.client.cursor()
        if state is not None and state.phase == "live":
            return True
        try:
            return self.client.pull_until_caught_up(max_requests).caught_up
        except CqgovError as exc:
            log.warning("first snapshot from %s failed: %s", self.upstream, exc)
            return False

    def start(self) -> None:
        self.integrity.start()
        self.prime()
        self.scheduler.start()
        self.notifier.start()
        if self.client is not None:
            self.client.start()

    def begin_stop(self) -> None:
        """First step of shutdown, as soon as it is asked for: end long-polls, stop pulling from above.

        Idempotent. The upstream client's threads are told to stop on a helper
        thread, so this returns at once; ``stop`` waits for them.
        """
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.client is not None:
            self._client_stopper = threading.Thread(target=self._stop_client, name="stop-upstream", daemon=True)
            self._client_stopper.start()

    def _stop_client(self) -> None:
        with contextlib.suppress(Exception):
            # stop() cuts the pull in flight, so its threads end well inside this bound.
            self.client.stop(timeout=PEER_STOP_S)

    def stop(self) -> None:
        self.begin_stop()
        if self._client_stopper is not None:
            self._client_stopper.join(PEER_STOP_S + 0.5)
        self.scheduler.stop()
        self.notifier.stop()
        with contextlib.suppress(Exception):
            self.handler.flush_denials(final=True)
        with contextlib.suppress(Exception):  # a clean stop leaves no readings for the next start to replay
            self.store.fold_sensor_state()
        stop_checking(self.integrity)

    def health(self) -> dict:
        store = self.store
        out = {
            "status": "degraded" if self.degraded else "ok", "store": self.integrity.as_dict(),
            "version": __version__, "tier": store.tier.value, "code": store.code, "node": store.node,
            "epoch": store.epoch, "head": store.head(), "schema_version": store.schema_version(),
            "now": self.clock.now(), "uptime_s": round(self.clock.now() - self.started_at, 3),
            "scheduler": {"ticks": self.scheduler.ticks, "errors": self.scheduler.errors,
                          "last_error": self.scheduler.last_error, "alive": self.scheduler.is_alive()},
            "federation": {"upstream": self.upstream, "pump_backlog": self.pump.backlog(),
                           "enqueued": dict(self.pump.enqueued)},
            "notify": self.notifier.status(),
        }
        if self.group_commit is not None:
            # How well command batches share commits: batches / commits is the mean group.
            out["commits"] = {"commits": self.group_commit.groups, "batches": self.group_commit.batches}
        if self.client is not None:
            try:
                out["federation"]["sync"] = _plain(self.client.status())
            except Exception as exc:  # status is informative only
                out["federation"]["sync"] = {"error": safe_message(exc)}
        return out

    def stats(self) -> dict:
        store = self.store
        return {
            "tier": store.tier.value, "code": store.code, "node": store.node,
            "events": store.count_rows("events"), "open_events": store.count_rows("event_queue"),
            "events_by_origin_tier": store.event_counts_by("origin_tier"),
            "events_by_district": store.event_counts_by("district_code"),
            "duplicate_event_ids": store.duplicate_event_ids(),
            "directives": store.count_rows("directives"), "receipts": store.count_rows("receipts"),
            "audit_entries": store.count_rows("audit_log"), "change_log_head": store.head(),
            "audit_intact": store.verify_audit().ok,
        }


def _plain(value):
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value


def _default_sync_client(store, base_url: str, token: str, clock: Clock):
    from ..sync.client import SyncClient

    return SyncClient(store, base_url, token, clock, wait=PEER_WAIT)


# ------------------------------------------------------------ ASGI


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before any handler reads them."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                return await _reply(send, 400, "malformed Content-Length")
            if too_big:
                return await _reply(send, 413, f"request body over {self.limit} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _reply(send, 413, f"request body over {self.limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _reply(send, status: int, detail: str) -> None:
    import json

    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def create_app(server: TierServer, *, start_background: bool = True, sync_router_factory=None) -> FastAPI:
    """The ASGI app for one tier server; background work starts and stops with the app's lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if start_background:
            server.start()
        try:
            yield
        finally:
            if start_background:
                server.stop()

    store = server.store
    # Swagger UI and ReDoc from the server itself (fastapi-offline ships their files): /docs works offline.
    app = FastAPIOffline(
        title=f"cqgov {store.tier.value} server {store.code}",
        version=__version__,
        description="Tier server of the Chongqing city operations centres: sync deltas (Arrow IPC, zstd), "
                    "snapshots, idempotent command batches, directives and receipts.",
        lifespan=lifespan,
    )
    app.state.server = server

    @app.exception_handler(CqgovError)
    async def _cqgov_error(_request, exc: CqgovError):
        return JSONResponse({"detail": safe_message(exc)}, status_code=status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request, exc: RequestValidationError):
        # FastAPI answers a list of every error; a caller gets the first, as one line (422 as before).
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header"))
        msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        line = f"{where}: {msg}" if where else msg
        return JSONResponse({"detail": line.encode("utf-8", "replace").decode("utf-8").splitlines()[0][:300]},
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_request, exc: Exception):
        log.exception("unhandled error")
        return JSONResponse({"detail": "internal error"}, status_code=500)

    factory = sync_router_factory or _default_sync_router
    router = factory(server)
    if router is not None:
        app.include_router(router)
        server.group_commit = getattr(router, "group_commit", None)
    # Open standards (issue 15): Open311, CAP and GeoJSON; before /v1/directives/{ref}, which would take ".cap".
    from .cap_routes import make_standards_router
    from .open311 import make_open311_router

    app.include_router(make_open311_router(server))
    app.include_router(make_standards_router(server))

    @app.get("/v1/health", tags=["server"], response_model=None,
             summary="One line, ok or degraded; with a valid token the details (head, epoch, node, upstream, "
                     "scheduler, store)",
             responses={200: {"content": {"text/plain": {"example": "ok"}}},
                        503: {"content": {"text/plain": {"example": "degraded"}}}})
    def health(request: Request) -> Response:
        status_code = 503 if server.degraded else 200
        if request.headers.get("authorization"):
            with contextlib.suppress(HTTPException):  # a bad token gets the line, like no token
                server.authenticate(request)
                return JSONResponse(server.health(), status_code=status_code)
        return PlainTextResponse("degraded\n" if server.degraded else "ok\n", status_code=status_code)

    @app.get("/v1/stats", tags=["server"], summary="This store's totals, for callers whose scope covers the whole server")
    def stats(request: Request) -> dict:
        user = server.authenticate(request)
        if not covers(user.scope_code, store.code):
            raise HTTPException(403, f"{user.user} may not read the totals of {store.code}")
        return server.stats()

    @app.get("/v1/events", tags=["events"], summary="Open events in the caller's scope, by colour then deadline")
    def events(request: Request, limit: int = Query(100, ge=1, le=5000), include_closed: bool = False) -> list[dict]:
        user = server.authenticate(request)
        rows = store.queue(include_closed=include_closed, limit=limit * 4 if user.scope_code != CITY_CODE else limit)
        out = [asdict(e) for e in rows if visible(user.scope_code, e.grid_code or e.street_code or e.district_code)]
        return out[:limit]

    @app.get("/v1/directives", tags=["directives"], summary="Directives addressed within the caller's scope")
    def directive_list(request: Request, limit: int = Query(100, ge=1, le=1000)) -> list[dict]:
        user = server.authenticate(request)
        return [asdict(d) for d in store.directives(limit=limit)
                if visible(user.scope_code, ",".join(d.targets), "directive")]

    @app.get("/v1/directives/{ref}", tags=["directives"], summary="A directive with receipt counts and who is missing")
    def directive_status(ref: str, request: Request) -> dict:
        user = server.authenticate(request)
        d = store.get_directive(ref)
        if d is None or not visible(user.scope_code, ",".join(d.targets), "directive"):
            # Counted like a refused command (the same answer whether it exists elsewhere or not at all).
            server.handler.deny(user, "directive.status", f"no directive {ref[:64]!r} in your jurisdiction")
            raise HTTPException(404, f"no directive {ref[:64]!r} in your jurisdiction")
        return directives.status(store, server.engine.registry, d.id, viewer_scope=user.scope_code)

    from .people_api import mount as mount_people

    mount_people(app, server)
    from .attachments_api import mount as mount_attachments

    mount_attachments(app, server)
    app.include_router(make_store_router(server))
    app.add_middleware(DegradedGuard, health=server.integrity)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    install_openapi(app)
    return app


def install_openapi(app: FastAPI) -> None:
    """The generated schema plus what routes cannot declare: every command's body (the union on ``type``
    from ``bodies``) on ``POST /v1/commands``, and the bearer token every endpoint but health needs."""
    from pydantic import TypeAdapter

    from . import bodies
    from .people_api import BODIES as PEOPLE_BODIES

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        ref = "#/components/schemas/{model}"
        batch = TypeAdapter(bodies.command_batch(PEOPLE_BODIES)).json_schema(ref_template=ref)
        reply = TypeAdapter(bodies.BatchReply).json_schema(ref_template=ref)
        components = schema.setdefault("components", {})
        models = components.setdefault("schemas", {})
        for doc in (batch, reply):
            models.update(doc.pop("$defs", {}))
        models["CommandBatch"], models["BatchReply"] = batch, reply
        post = schema.get("paths", {}).get("/v1/commands", {}).get("post")
        if post is not None:
            post["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CommandBatch"}}}}
            answer = {"application/json": {"schema": {"$ref": "#/components/schemas/BatchReply"}}}
            post["responses"] = {
                "200": {"description": "each command accepted, duplicate or rejected (with its reason)",
                        "content": answer},
                "400": {"description": "malformed batch (not JSON, too deep, bad envelope); nothing applied"},
                "401": {"description": "missing, malformed, forged or expired token"},
                "413": {"description": "batch over 1 MiB"},
                "415": {"description": "Content-Type is not application/json"},
                "503": {"description": "the store is unavailable: every command deferred, retry later",
                        "content": answer}}
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer",
            "description": "HMAC-signed token from `cqgov token create` (user, role, tier, scope, expiry)"}
        for path, ops in schema.get("paths", {}).items():
            for op in ops.values():
                if isinstance(op, dict) and path != "/v1/health" and not path.startswith("/v1/notify/ack"):
                    op.setdefault("security", [{"bearer": []}])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class TierUvicorn(uvicorn.Server):
    """uvicorn that tells the tier server shutdown has begun before it waits for open requests,
    so long-polls answer at once instead of holding the shutdown for their whole wait."""

    def __init__(self, config: uvicorn.Config, tier_server: TierServer):
        super().__init__(config)
        self.tier_server = tier_server

    async def shutdown(self, sockets=None) -> None:
        self.tier_server.begin_stop()
        await super().shutdown(sockets)


def _default_sync_router(server: TierServer):
    from ..sync.router import make_sync_router

    return make_sync_router(server)
