"""The sync endpoints a tier server mounts: /v1/changes, /v1/snapshot, /v1/commands, /v1/sync/info.

``/v1/changes`` long-polls: a request with nothing new is parked on the
store's next commit (``longpoll.CommitWaiters``), not on a timer, so a
thousand idle street clients cost the server nothing between events. A client
that says it understands one (``empty=204``) gets a caught-up reply as small
as HTTP allows: ``204 No Content`` with only the cursor in a header, so an
idle laptop's polling stays well under a megabyte a day.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..domain.entities import User
from ..errors import CqgovError, StoreError, refusal_code
from ..store import Store, jsontext
from ..store.migrations import LATEST
from ..store.unit import FlushedPastMark
from . import changelog, faults, wire
from .envelope import envelope_problem
from .host import SyncHost
from .longpoll import COMMIT, CommitWaiters, watch_disconnect

log = logging.getLogger(__name__)

MAX_LIMIT = 5000
DEFAULT_LIMIT = 500
# Seconds a long-poll may hold a request. Long enough that an idle client's requests (each carrying its
# token) cost well under 1 MB a day; short enough for the 60 s idle timeout of common proxies and balancers.
MAX_WAIT = 60.0
MAX_BODY = 1 << 20  # bytes per command batch
MAX_BATCH = 500  # commands per batch
MAX_DEPTH = 16  # JSON nesting of a batch (a federated event row needs 5); deeper is refused before any work
JSON_TYPES = ("application/json",)  # a command batch is JSON and says so (415 otherwise)
EMPTY_204 = "204"  # ``empty=204``: the caller takes a caught-up reply as 204 + X-Cqgov-Cursor


def body_hash(command_type: str, body: Any) -> str:
    canonical = json.dumps({"type": command_type, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    # surrogatepass: a lone surrogate ("\ud800", legal in JSON text) still hashes, so such a command is
    # answered (rejected by its host) instead of failing here; every other string hashes as before.
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


class SafeJSONResponse(JSONResponse):
    """JSON as UTF-8, or ASCII-escaped when a string in it is not valid Unicode (a lone surrogate echoed
    from a request): an answer is always sent, never a 500 from encoding it."""

    def render(self, content: Any) -> bytes:
        try:
            return jsontext.encode(content)  # orjson: every command batch's reply is encoded here
        except TypeError:
            pass  # a lone surrogate, a number orjson refuses: the standard library below
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _one_line(text: str) -> str:
    """A reason as one line of valid Unicode (it goes into the store and back to the client)."""
    line = text.splitlines()[0] if text else ""
    return line.encode("utf-8", "replace").decode("utf-8")


@dataclass
class Encoded:
    payload: bytes
    rows: int
    cursor: str
    has_more: bool
    head: int
    # Origins of the rows sent. A delta built for no caller in particular serves every caller whose node
    # is not among them (nothing of theirs would have been left out), so 1,000 streets share one build.
    origins: frozenset[str] = frozenset()


class DeltaCache:
    """Encoded delta responses by (epoch, cursor, limit, scope, caller node, format, head).

    The change log below the head never changes, so an entry stays valid until
    compaction (checked before lookup) or an epoch change (part of the key).
    Concurrent misses on one key compute it once.
    """

    def __init__(self, max_entries: int = 512, max_bytes: int = 64 << 20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._data: OrderedDict[tuple, Encoded] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[tuple, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def _hit(self, key: tuple) -> Encoded | None:
        """The entry for ``key``, counted and kept fresh; caller holds the lock."""
        hit = self._data.get(key)
        if hit is not None:
            self._data.move_to_end(key)
            self.hits += 1
        return hit

    def peek(self, key: tuple) -> Encoded | None:
        """The cached entry for ``key`` if there is one (counted as a hit); never builds."""
        with self._lock:
            return self._hit(key)

    def get_or_build(self, key: tuple, build: Callable[[], Encoded]) -> Encoded:
        with self._lock:
            hit = self._hit(key)
            if hit is not None:
                return hit
            gate = self._inflight.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                hit = self._data.get(key)
                if hit is not None:
                    self.hits += 1
                    return hit
            value = build()
            with self._lock:
                self.misses += 1
                self._data[key] = value
                self._bytes += len(value.payload)
                while self._data and (len(self._data) > self.max_entries or self._bytes > self.max_bytes):
                    _, old = self._data.popitem(last=False)
                    self._bytes -= len(old.payload)
                self._inflight.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


def _retrieved(fut: asyncio.Future) -> None:
    """Mark a shared build's failure as seen: its first caller reports it; nobody else need await it."""
    if not fut.cancelled():
        fut.exception()


def _gone(reason: str, store: Store) -> JSONResponse:
    return JSONResponse(status_code=410, content={"detail": reason, "epoch": store.epoch, "head": store.head()})


def _bad(reason: str, status: int = 400) -> JSONResponse:
    return SafeJSONResponse(status_code=status, content={"detail": reason})


def is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (charset); anything else is not a command batch."""
    return (content_type or "").split(";")[0].strip().lower() in JSON_TYPES


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise wire.WireError(f"{name} must be an integer, got {raw[:20]!r}") from None
    if not low <= value <= high:
        raise wire.WireError(f"{name} must be between {low} and {high}")
    return value


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and wire.MEDIA_TYPE not in accept


def make_sync_router(host: SyncHost, *, cache: DeltaCache | None = None, max_body: int = MAX_BODY) -> APIRouter:
    router = APIRouter()
    store = host.store
    committer = GroupCommit(host)
    cache = cache if cache is not None else DeltaCache()
    router.delta_cache = cache  # type: ignore[attr-defined]  # the server and benchmarks read its counters
    router.group_commit = committer  # type: ignore[attr-defined]

    def server_meta(scope: str) -> dict[str, str]:
        return {"cqgov.schema": str(LATEST), "cqgov.node": store.node, "cqgov.tier": store.tier.value,
                "cqgov.code": store.code, "cqgov.scope": scope}

    waiters = CommitWaiters(store, getattr(host, "stopping", None))  # set when the server begins to shut down
    router.commit_waiters = waiters  # type: ignore[attr-defined]  # tests and benchmarks look at it
    floor_seen: list[int] = [-1, 0]  # [commit generation when read, compaction floor]; -1: never read

    def log_floor() -> int:
        """The compaction floor, read from the store once per commit generation (a compaction commits)."""
        gen = waiters.generation
        if floor_seen[0] != gen:
            floor_seen[1], floor_seen[0] = changelog.floor(store), gen
        return floor_seen[1]

    def check_cursor(epoch: str, seq: int, head: int) -> None:
        if epoch != store.epoch:
            raise changelog.Gone(f"unknown epoch {epoch} (this store's epoch is {store.epoch}; "
                                 "it was restored or replaced)")
        if seq > head:
            raise changelog.Gone(f"cursor {seq} is past the head {head} of epoch {epoch}")
        low = log_floor()
        if seq < low:
            raise changelog.Gone(f"cursor {seq} is older than the oldest kept change ({low + 1}); "
                                 "the log was compacted")

    def build_delta(seq: int, limit: int, scope: str, node: str | None, as_json: bool, head: int) -> Encoded:
        delta = changelog.read_changes(store, seq, limit, scope, node, head=head)
        cursor = wire.format_cursor(store.epoch, delta.next_seq)
        meta = {**server_meta(scope), "cqgov.kind": "changes", "cqgov.epoch": store.epoch, "cqgov.cursor": cursor,
                "cqgov.has_more": "1" if delta.has_more else "0", "cqgov.head": str(delta.head)}
        encode = wire.encode_json if as_json else wire.encode
        rows = wire.coalesce(delta.changes)
        return Encoded(encode(rows, meta), len(rows), cursor, delta.has_more, delta.head,
                       frozenset(c.origin for c in delta.changes))

    def cached(seq: int, limit: int, scope: str, node: str | None, as_json: bool, head: int) -> Encoded | None:
        shared = cache.peek((store.epoch, seq, limit, scope, None, as_json, head))
        if shared is None or node is None or node not in shared.origins:
            return shared
        return cache.peek((store.epoch, seq, limit, scope, node, as_json, head))

    def delta_now(epoch: str, seq: int, limit: int, scope: str, node: str | None, as_json: bool) -> Encoded:
        """On a worker thread: the delta for this cursor up to the current head, from the cache or built."""
        head = store.head()
        waiters.observe(head)
        check_cursor(epoch, seq, head)
        shared = cache.get_or_build((store.epoch, seq, limit, scope, None, as_json, head),
                                    lambda: build_delta(seq, limit, scope, None, as_json, head))
        if node is None or node not in shared.origins:
            return shared
        return cache.get_or_build((store.epoch, seq, limit, scope, node, as_json, head),
                                  lambda: build_delta(seq, limit, scope, node, as_json, head))

    def delta_cached(epoch: str, seq: int, limit: int, scope: str, node: str | None, as_json: bool) -> Encoded | None:
        """On the event loop, without touching the store: the cached delta up to the newest committed
        head this process knows of, or None (then ``delta_now`` on a thread).

        The floor checked here may be a commit old; that is safe because only cached deltas are served
        from here, and a delta cached before a compaction is still the true history of those rows."""
        head = waiters.head
        if not head or epoch != store.epoch or seq > head or floor_seen[0] < 0 or seq < floor_seen[1]:
            return None  # the thread path decides (and answers 410 where it must)
        return cached(seq, limit, scope, node, as_json, head)

    inflight: dict[tuple, asyncio.Future] = {}  # shared builds in progress, per event loop

    async def delta(epoch: str, seq: int, limit: int, scope: str, node: str | None, as_json: bool) -> Encoded:
        """The delta for this caller, built at most once however many callers ask at the same moment.

        After a commit wakes a thousand waiters on one cursor, one of them takes the delta to a worker
        thread; the rest await that build on the loop (no thread each) and are answered from its result."""
        enc = delta_cached(epoch, seq, limit, scope, node, as_json)
        if enc is not None:
            return enc
        loop = asyncio.get_running_loop()
        key = (id(loop), epoch, seq, limit, scope, as_json, waiters.head)
        pending = inflight.get(key)
        if pending is not None:
            shared = await asyncio.shield(pending)
        else:
            pending = inflight[key] = loop.create_future()
            pending.add_done_callback(_retrieved)
            try:
                shared = await to_thread.run_sync(delta_now, epoch, seq, limit, scope, None, as_json)
            except BaseException as exc:
                pending.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                raise
            else:
                pending.set_result(shared)
            finally:
                inflight.pop(key, None)
        if node is None or node not in shared.origins:
            return shared
        return await to_thread.run_sync(delta_now, epoch, seq, limit, scope, node, as_json)

    @router.get("/v1/sync/info")
    def info(request: Request) -> dict[str, Any]:
        user = host.authenticate(request)
        return {"epoch": store.epoch, "head": store.head(), "floor": changelog.floor(store), "tier": store.tier.value,
                "code": store.code, "node": store.node, "scope": user.scope_code, "wire": wire.WIRE_VERSION,
                "schema": LATEST}

    async def changes(request: Request) -> Response:
        # Token checks are HMAC and a dict lookup: quick enough for the event loop, which saves every
        # pull a round trip through the thread pool.
        user = host.authenticate(request)
        try:
            epoch, seq = wire.parse_cursor(request.query_params.get("cursor", ""))
            limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            raw_wait = request.query_params.get("wait", "0")
            try:
                wait = min(MAX_WAIT, max(0.0, float(raw_wait)))
            except ValueError:
                raise wire.WireError(f"wait must be a number of seconds, got {raw_wait[:20]!r}") from None
        except wire.WireError as exc:
            return _bad(str(exc))
        node = request.query_params.get("node") or None
        as_json = _wants_json(request)
        scope = user.scope_code
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        hung_up = None
        try:
            while True:
                try:
                    enc = await delta(epoch, seq, limit, scope, node, as_json)
                except changelog.Gone as exc:
                    return _gone(str(exc), store)
                remaining = deadline - loop.time()
                if enc.rows or enc.has_more or remaining <= 0 or waiters.is_stopping():
                    break
                # Nothing visible yet: park until a commit moves the head past this delta's, the wait runs
                # out, the server begins to stop or the caller hangs up (then the empty delta goes back now).
                _, seq = wire.parse_cursor(enc.cursor)
                if hung_up is None:
                    hung_up = watch_disconnect(request.receive)
                if await waiters.wait_past(enc.head, remaining, hung_up) != COMMIT:
                    break
        finally:
            if hung_up is not None:
                hung_up.cancel()
        headers = {"X-Cqgov-Cursor": enc.cursor}
        if not enc.rows and not enc.has_more and request.query_params.get("empty") == EMPTY_204:
            return Response(status_code=204, headers=headers)  # caught up: the cursor is all the caller needs
        headers["X-Cqgov-Has-More"] = "1" if enc.has_more else "0"
        return Response(enc.payload, media_type="application/json" if as_json else wire.MEDIA_TYPE, headers=headers)

    # The hottest endpoint is a plain Starlette route: FastAPI's per-request dependency solving cost more
    # than the rest of serving a cached delta (the "8 pullers vs a bare server" benchmark row).
    router.add_route("/v1/changes", changes, methods=["GET"], include_in_schema=False)

    @router.get("/v1/changes", summary="Changes after a cursor (long-poll)")
    async def changes_doc(cursor: str, limit: int = DEFAULT_LIMIT, wait: float = 0.0, node: str | None = None,
                          empty: str | None = None) -> Response:
        """Documentation only (OpenAPI at /docs): the route above answers every request.

        The next changes in the caller's scope after ``cursor`` (``EPOCH:SEQ``), as one Arrow IPC stream
        (or JSON with ``Accept: application/json``), the next cursor in ``X-Cqgov-Cursor`` and
        ``X-Cqgov-Has-More``. ``wait`` (at most 60 s) holds the request until a change commits;
        ``node`` leaves out the caller's own rows; ``empty=204`` answers "caught up" as a bare
        ``204 No Content`` with only the cursor header."""
        raise AssertionError("unreachable: /v1/changes is served by the plain route registered first")

    @router.get("/v1/snapshot")
    def snapshot(request: Request) -> Response:
        user = host.authenticate(request)
        try:
            limit = _int_param(request, "limit", 2000, 1, 20_000)
            token = request.query_params.get("token") or None
            page = changelog.read_snapshot(store, user.scope_code, limit, token)
        except wire.WireError as exc:
            return _bad(str(exc))
        except changelog.Gone as exc:
            return _gone(str(exc), store)
        cursor = wire.format_cursor(store.epoch, page.cursor_seq)
        meta = {**server_meta(user.scope_code), "cqgov.kind": "snapshot", "cqgov.epoch": store.epoch,
                "cqgov.cursor": cursor, "cqgov.has_more": "1" if page.next_token else "0",
                "cqgov.page": page.next_token or "", "cqgov.head": str(store.head())}
        if _wants_json(request):
            return Response(wire.encode_json(page.changes, meta), media_type="application/json")
        return Response(wire.encode(page.changes, meta), media_type=wire.MEDIA_TYPE,
                        headers={"X-Cqgov-Cursor": cursor})

    @router.post("/v1/commands", response_model=None)
    async def commands(request: Request) -> Response:
        """An idempotent batch of commands: each is accepted, duplicate or rejected with its reason.

        The body is ``application/json`` (415 otherwise), at most 1 MiB, 500 commands and 16 levels deep;
        a malformed batch is answered 400 and nothing is applied. ``deferred`` (503 when nothing else was
        answered) means the store is unavailable: retry later."""
        if not is_json(request.headers.get("content-type")):
            return _bad("a command batch must be sent as Content-Type: application/json", 415)
        user = await to_thread.run_sync(host.authenticate, request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return _bad(f"command batch of {declared} bytes exceeds the limit of {max_body}", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                return _bad(f"command batch exceeds the limit of {max_body} bytes", 413)
            chunks.append(chunk)
        try:
            batch = _parse_batch(b"".join(chunks), getattr(host, "command_types", None))
        except wire.WireError as exc:
            return _bad(str(exc), 422 if "unknown command type" in str(exc) else 400)
        reply = await to_thread.run_sync(committer.submit, user, batch)
        status = 503 if reply.get("deferred") and not (reply["accepted"] or reply["duplicate"] or reply["rejected"]) else 200
        return SafeJSONResponse(status_code=status, content=reply)

    return router


def too_deep(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """Is ``doc`` nested more than ``limit`` levels? Level by level, not recursive (a deep document cannot
    exhaust the stack), and only containers are kept: ~2 ms for a batch of 500 reports."""
    level: list[Any] = [doc]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
        depth += 1
    return False


def _parse_batch(raw: bytes, known_types: set[str] | None) -> list[dict[str, Any]]:
    try:
        doc = jsontext.parse(raw)
    except RecursionError:
        raise wire.WireError(f"command batch is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise wire.WireError(f"command batch is not valid JSON: {_one_line(str(exc))[:120]}") from None
    if isinstance(doc, (dict, list)) and too_deep(doc):
        raise wire.WireError(f"command batch is nested too deeply (at most {MAX_DEPTH} levels)")
    if not isinstance(doc, dict) or not isinstance(doc.get("commands"), list):
        raise wire.WireError('command batch must be an object {"commands": [...]}')
    commands = doc["commands"]
    if len(commands) > MAX_BATCH:
        raise wire.WireError(f"command batch has {len(commands)} commands; at most {MAX_BATCH}")
    seen = set()
    for i, cmd in enumerate(commands):
        problem = envelope_problem(cmd)  # the envelope's declaration (sync/envelope.py)
        if problem is not None:
            raise wire.WireError(f"command {i}: {problem}")
        cid, ctype = cmd["id"], cmd["type"]
        if cid in seen:
            raise wire.WireError(f"command {i}: id {cid} appears twice in one batch")
        seen.add(cid)
        if known_types is not None and ctype not in known_types:
            raise wire.WireError(f"command {i}: unknown command type {ctype[:40]!r}")
    return commands


MAX_GROUP = 2000  # commands one group commit may take; later arrivals wait for the next


@dataclass
class _Job:
    user: User
    commands: list[dict[str, Any]]
    digests: list[str]  # each command's body digest, made before the writer takes the job
    reply: dict[str, Any] | None = None


class GroupCommit:
    """Command batches that arrive together share one store transaction (one commit).

    Each request queues its batch and waits for the writer; whoever holds the
    writer takes every queued batch and applies them in one transaction, each
    command behind its own mark, so a refused command still fails alone. When
    the group cannot commit as a whole (an unexpected error, or a refusal whose
    writes had already reached DuckDB), every batch of the group is applied again
    on its own by ``_run_batch`` — nothing of the failed group was written.
    """

    def __init__(self, host: SyncHost):
        self.host = host
        self._queue: list[_Job] = []
        self._mutex = threading.Lock()
        self._writer = threading.Lock()
        self.groups = 0  # commits made, and batches they carried (benchmarks read both)
        self.batches = 0

    def submit(self, user: User, commands: list[dict[str, Any]]) -> dict[str, Any]:
        # Work that needs no store is done here, by the request's own thread, while the writer applies
        # the batches ahead (the writer is what every command waits for): the places of the reports and
        # each command's digest.
        prepare = getattr(self.host, "prepare", None)
        if prepare is not None:
            try:
                prepare(commands)
            except Exception:  # noqa: BLE001 - only a head start: each command still places itself
                log.warning("preparing a command batch failed; its commands run unprepared", exc_info=True)
        job = _Job(user, commands, digests=[body_hash(c["type"], c["body"]) for c in commands])
        with self._mutex:
            self._queue.append(job)
        with self._writer:
            if job.reply is None:
                with self._mutex:
                    group: list[_Job] = []
                    size = 0
                    while self._queue and (not group or size + len(self._queue[0].commands) <= MAX_GROUP):
                        group.append(self._queue.pop(0))
                        size += len(group[-1].commands)
                self._apply(group)
        assert job.reply is not None
        return job.reply

    def _apply(self, group: list[_Job]) -> None:
        store = self.host.store
        with store.lock:
            if len(group) > 1:
                try:
                    replies: list[dict[str, Any]] = []
                    with store.tx():
                        for job in group:
                            replies.append(_apply_batch(self.host, job.user, job.commands, job.digests))
                    for job, reply in zip(group, replies):
                        job.reply = reply
                    self.groups += 1
                    self.batches += len(group)
                    return
                except _Fallback:
                    pass
                except Exception:  # noqa: BLE001 - rolled back; each batch is retried on its own below
                    log.warning("group of %d command batches failed as a whole; applying them one by one",
                                len(group), exc_info=True)
            for job in group:
                job.reply = _run_batch(self.host, job.user, job.commands, job.digests)
                self.groups += 1
                self.batches += 1


def _run_batch(host: SyncHost, user: User, commands: list[dict[str, Any]], digests: list[str]) -> dict[str, Any]:
    """Apply a batch: all of it in one store transaction, else one transaction per command.

    One transaction (one commit) per batch is what makes ingest fast. It is
    safe because a refused command is undone to the mark taken before it
    (the store stages writes in memory until commit). A refusal whose writes
    already reached DuckDB (some read flushed them), or any unexpected error,
    rolls the whole batch back and replays it one command per transaction
    (which defers the rest of the batch on an unexpected error). Either way each command id
    is recorded in the same transaction as its effects: exactly once.
    """
    store = host.store
    with store.lock:  # lookups and applies as one step against other requests
        try:
            with store.tx():
                return _apply_batch(host, user, commands, digests)
        except _Fallback:
            pass
        except Exception:  # noqa: BLE001 - rolled back; the per-command path finds and reports the culprit
            log.warning("command batch failed as a whole; retrying one command per transaction", exc_info=True)
        return _run_one_by_one(host, user, commands, digests)


class _Fallback(Exception):
    """A refused command left writes behind: undo the batch transaction and go one by one."""


def _prior_reply(prior: tuple[str, str, str], digest: str, cid: str, reply: dict[str, Any]) -> None:
    if prior[0] != digest:
        reply["rejected"].append({"id": cid, "reason": "id reused with a different body", "code": "bad_input"})
    elif prior[1] == "accepted":
        reply["duplicate"].append({"id": cid, "result": json.loads(prior[2])})
    else:
        prior_doc = json.loads(prior[2])
        reply["rejected"].append({"id": cid, "reason": prior_doc["reason"], "code": prior_doc.get("code", "refused")})


def _apply_batch(host: SyncHost, user: User, commands: list[dict[str, Any]], digests: list[str]) -> dict[str, Any]:
    """One batch inside the caller's transaction (``GroupCommit.submit`` has prepared it and made ``digests``)."""
    store = host.store
    reply: dict[str, Any] = {"accepted": [], "duplicate": [], "rejected": [], "epoch": store.epoch}
    priors = store.applied_commands([c["id"] for c in commands])
    records = []
    for cmd, digest in zip(commands, digests):
        cid, ctype, body = cmd["id"], cmd["type"], cmd["body"]
        if cid in priors:
            _prior_reply(priors[cid], digest, cid, reply)
            continue
        mark = store.mark()
        try:
            result = host.execute(user, ctype, body)
        except CqgovError as exc:
            if isinstance(exc, StoreError):
                raise  # the store, not the command: the one-by-one path decides (defer)
            try:
                store.rollback_to(mark)  # a refused command leaves nothing staged
            except FlushedPastMark:
                raise _Fallback from None
            reason, code = _one_line(str(exc)) or type(exc).__name__, refusal_code(exc)
            records.append((cid, digest, ctype, "rejected", json.dumps({"reason": reason, "code": code},
                                                                        ensure_ascii=False)))
            reply["rejected"].append({"id": cid, "reason": reason, "code": code})
            continue
        text = jsontext.text(result, default=str)
        records.append((cid, digest, ctype, "accepted", text))
        reply["accepted"].append({"id": cid, "result": jsontext.parse(text)})
    store.record_commands(records, user.user)
    return reply


def _run_one_by_one(host: SyncHost, user: User, commands: list[dict[str, Any]],
                    digests: list[str]) -> dict[str, Any]:
    store = host.store
    reply: dict[str, Any] = {"accepted": [], "duplicate": [], "rejected": [], "epoch": store.epoch}
    for n, (cmd, digest) in enumerate(zip(commands, digests)):
        cid, ctype, body = cmd["id"], cmd["type"], cmd["body"]
        with store.lock:
            prior = store.applied_commands([cid]).get(cid)
            if prior is not None:
                _prior_reply(prior, digest, cid, reply)
                continue
            try:
                with store.tx():
                    result = host.execute(user, ctype, body)
                    text = json.dumps(result, ensure_ascii=False, default=str)
                    store.record_commands([(cid, digest, ctype, "accepted", text)], user.user)
                reply["accepted"].append({"id": cid, "result": json.loads(text)})
            except Exception as exc:  # noqa: BLE001 - sorted below: the command's fault or the store's
                code = refusal_code(exc)  # the stable code beside the reason (errors.REFUSAL_CODES)
                if isinstance(exc, CqgovError) and not isinstance(exc, StoreError):
                    reason = _one_line(str(exc)) or type(exc).__name__
                elif faults.store_unavailable(exc, store):
                    # Nothing recorded: this command and the rest of the batch are retried, in order, later.
                    log.warning("store unavailable; deferring %d command(s): %s", len(commands) - n, exc)
                    reply["deferred"] = [c["id"] for c in commands[n:]]
                    reply["error"] = f"server could not apply commands now: {type(exc).__name__}"
                    break
                else:
                    # The store answers: the command itself failed its handler. Rejected (and recorded) so
                    # that it leaves the client's outbox instead of being resent for ever.
                    log.exception("command %s (%s) failed in its handler; rejected", cid, ctype)
                    reason, code = faults.reason_for(exc), "internal_error"
                try:
                    with store.tx():
                        store.record_commands([(cid, digest, ctype, "rejected",
                                                json.dumps({"reason": reason, "code": code}, ensure_ascii=False))],
                                              user.user)
                except Exception as record_exc:  # noqa: BLE001 - the store failed now: defer instead
                    log.warning("cannot record rejection of %s: %s", cid, record_exc)
                    reply["deferred"] = [c["id"] for c in commands[n:]]
                    reply["error"] = f"server could not apply commands now: {type(record_exc).__name__}"
                    break
                reply["rejected"].append({"id": cid, "reason": reason, "code": code})
    return reply
