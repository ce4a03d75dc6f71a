"""The sync endpoints a tier server mounts: /v1/changes, /v1/snapshot, /v1/commands, /v1/sync/info."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..errors import CqgovError
from ..store.migrations import LATEST
from . import changelog, wire
from .host import SyncHost

log = logging.getLogger(__name__)

MAX_LIMIT = 5000
DEFAULT_LIMIT = 500
MAX_WAIT = 25.0  # seconds a long-poll may hold a request
MAX_BODY = 1 << 20  # bytes per command batch
MAX_BATCH = 500  # commands per batch
POLL_INTERVAL = 0.05


def body_hash(command_type: str, body: Any) -> str:
    canonical = json.dumps({"type": command_type, "body": body}, sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Encoded:
    payload: bytes
    rows: int
    cursor: str
    has_more: bool
    head: int


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

    def get_or_build(self, key: tuple, build) -> Encoded:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                self.hits += 1
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


def _gone(reason: str, store) -> JSONResponse:
    return JSONResponse(status_code=410, content={"detail": reason, "epoch": store.epoch, "head": store.head()})


def _bad(reason: str, status: int = 400) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": reason})


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
    cache = cache if cache is not None else DeltaCache()
    router.delta_cache = cache  # type: ignore[attr-defined]  # the server and benchmarks read its counters

    def server_meta(scope: str) -> dict[str, str]:
        return {"cqgov.schema": str(LATEST), "cqgov.node": store.node, "cqgov.tier": store.tier.value,
                "cqgov.code": store.code, "cqgov.scope": scope}

    def build_delta(seq: int, limit: int, scope: str, node: str | None, as_json: bool, head: int) -> Encoded:
        delta = changelog.read_changes(store, seq, limit, scope, node, head=head)
        cursor = wire.format_cursor(store.epoch, delta.next_seq)
        meta = {**server_meta(scope), "cqgov.kind": "changes", "cqgov.epoch": store.epoch, "cqgov.cursor": cursor,
                "cqgov.has_more": "1" if delta.has_more else "0", "cqgov.head": str(delta.head)}
        encode = wire.encode_json if as_json else wire.encode
        rows = wire.coalesce(delta.changes)
        return Encoded(encode(rows, meta), len(rows), cursor, delta.has_more, delta.head)

    def delta_now(epoch: str, seq: int, limit: int, scope: str, node: str | None, as_json: bool) -> Encoded:
        changelog.check_cursor(store, epoch, seq)
        head = store.head()
        key = (store.epoch, seq, limit, scope, node, as_json, head)
        return cache.get_or_build(key, lambda: build_delta(seq, limit, scope, node, as_json, head))

    @router.get("/v1/sync/info")
    def info(request: Request):
        user = host.authenticate(request)
        return {"epoch": store.epoch, "head": store.head(), "floor": changelog.floor(store), "tier": store.tier.value,
                "code": store.code, "node": store.node, "scope": user.scope_code, "wire": wire.WIRE_VERSION,
                "schema": LATEST}

    @router.get("/v1/changes")
    async def changes(request: Request):
        user = await to_thread.run_sync(host.authenticate, request)
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        stopping = getattr(host, "stopping", None)  # set when the server begins to shut down
        while True:
            try:
                enc = await to_thread.run_sync(delta_now, epoch, seq, limit, user.scope_code, node, as_json)
            except changelog.Gone as exc:
                return _gone(str(exc), store)
            if enc.rows or enc.has_more or loop.time() >= deadline:
                break
            # Nothing visible yet: hold the request until the log grows, the wait runs out, the caller
            # goes away or the server stops (then the empty delta goes back now: the caller pulls again later).
            _, seq = wire.parse_cursor(enc.cursor)
            ended = False
            while loop.time() < deadline and await to_thread.run_sync(store.head) <= enc.head:
                if (stopping is not None and stopping.is_set()) or await request.is_disconnected():
                    ended = True
                    break
                await asyncio.sleep(POLL_INTERVAL)
            if ended:
                break
        media = "application/json" if as_json else wire.MEDIA_TYPE
        return Response(enc.payload, media_type=media,
                        headers={"X-Cqgov-Cursor": enc.cursor, "X-Cqgov-Has-More": "1" if enc.has_more else "0"})

    @router.get("/v1/snapshot")
    def snapshot(request: Request):
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

    @router.post("/v1/commands")
    async def commands(request: Request):
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
        reply = await to_thread.run_sync(_run_batch, host, user, batch)
        status = 503 if reply.get("deferred") and not (reply["accepted"] or reply["duplicate"] or reply["rejected"]) else 200
        return JSONResponse(status_code=status, content=reply)

    return router


def _parse_batch(raw: bytes, known_types) -> list[dict]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise wire.WireError(f"command batch is not valid JSON: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("commands"), list):
        raise wire.WireError('command batch must be an object {"commands": [...]}')
    commands = doc["commands"]
    if len(commands) > MAX_BATCH:
        raise wire.WireError(f"command batch has {len(commands)} commands; at most {MAX_BATCH}")
    seen = set()
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or set(cmd) != {"id", "type", "body"}:
            raise wire.WireError(f"command {i} must have exactly id, type and body")
        cid, ctype, body = cmd["id"], cmd["type"], cmd["body"]
        if not isinstance(cid, str) or not 8 <= len(cid) <= 64 or not all(c.isalnum() or c in "-_" for c in cid):
            raise wire.WireError(f"command {i}: id must be 8-64 characters of letters, digits, - or _")
        if cid in seen:
            raise wire.WireError(f"command {i}: id {cid} appears twice in one batch")
        seen.add(cid)
        if not isinstance(ctype, str) or not ctype:
            raise wire.WireError(f"command {i}: type must be a non-empty string")
        if known_types is not None and ctype not in known_types:
            raise wire.WireError(f"command {i}: unknown command type {ctype!r}")
        if not isinstance(body, dict):
            raise wire.WireError(f"command {i}: body must be an object")
    return commands


def _run_batch(host: SyncHost, user, commands: list[dict]) -> dict:
    """Apply a batch: all of it in one store transaction, else one transaction per command.

    One transaction (one commit) per batch is what makes ingest fast. It is
    safe because a refused command has written nothing: the engine validates
    before it writes, and a refusal that did move the change-log head or the
    audit tail anyway, or any unexpected error, rolls the whole batch back
    and replays it one command per transaction (the old path, which defers
    the rest of the batch on an unexpected error). Either way each command id
    is recorded in the same transaction as its effects: exactly once.
    """
    store = host.store
    with store.lock:  # lookups and applies as one step against other requests
        try:
            with store.tx():
                return _apply_batch(host, user, commands)
        except _Fallback:
            pass
        except Exception:  # noqa: BLE001 - rolled back; the per-command path finds and reports the culprit
            log.warning("command batch failed as a whole; retrying one command per transaction", exc_info=True)
        return _run_one_by_one(host, user, commands)


class _Fallback(Exception):
    """A refused command left writes behind: undo the batch transaction and go one by one."""


def _prior_reply(prior, digest: str, cid: str, reply: dict) -> None:
    if prior[0] != digest:
        reply["rejected"].append({"id": cid, "reason": "id reused with a different body"})
    elif prior[1] == "accepted":
        reply["duplicate"].append({"id": cid, "result": json.loads(prior[2])})
    else:
        reply["rejected"].append({"id": cid, "reason": json.loads(prior[2])["reason"]})


def _apply_batch(host: SyncHost, user, commands: list[dict]) -> dict:
    store = host.store
    reply: dict[str, Any] = {"accepted": [], "duplicate": [], "rejected": [], "epoch": store.epoch}
    priors = store.applied_commands([c["id"] for c in commands])
    records = []
    for cmd in commands:
        cid, ctype, body = cmd["id"], cmd["type"], cmd["body"]
        digest = body_hash(ctype, body)
        if cid in priors:
            _prior_reply(priors[cid], digest, cid, reply)
            continue
        mark = store.write_mark()
        try:
            result = host.execute(user, ctype, body)
        except CqgovError as exc:
            if store.write_mark() != mark:
                raise _Fallback from None
            reason = str(exc) or type(exc).__name__
            records.append((cid, digest, ctype, "rejected", json.dumps({"reason": reason}, ensure_ascii=False)))
            reply["rejected"].append({"id": cid, "reason": reason})
            continue
        text = json.dumps(result, ensure_ascii=False, default=str)
        records.append((cid, digest, ctype, "accepted", text))
        reply["accepted"].append({"id": cid, "result": json.loads(text)})
    store.record_commands(records, user.user)
    return reply


def _run_one_by_one(host: SyncHost, user, commands: list[dict]) -> dict:
    store = host.store
    reply: dict[str, Any] = {"accepted": [], "duplicate": [], "rejected": [], "epoch": store.epoch}
    for n, cmd in enumerate(commands):
        cid, ctype, body = cmd["id"], cmd["type"], cmd["body"]
        digest = body_hash(ctype, body)
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
            except CqgovError as exc:
                reason = str(exc) or type(exc).__name__
                with store.tx():
                    store.record_commands([(cid, digest, ctype, "rejected",
                                            json.dumps({"reason": reason}, ensure_ascii=False))], user.user)
                reply["rejected"].append({"id": cid, "reason": reason})
            except Exception as exc:  # a transient fault (disk, bug): nothing recorded, the client retries
                log.exception("command %s failed", cid)
                reply["deferred"] = [c["id"] for c in commands[n:]]
                reply["error"] = f"server could not apply commands now: {type(exc).__name__}"
                break
    return reply
