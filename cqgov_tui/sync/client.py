"""The sync client: pull deltas into a replica, push the outbox, resync from a snapshot on 410.

Used by the console and by a district server that is a client of the city.
All durable state (replica rows, cursor, outbox) lives in the replica store
and changes only inside transactions, so a kill -9 anywhere resumes cleanly.
Pulls and pushes run on separate threads with separate HTTP connections:
a failing push never stalls a pull.

An idle client costs almost nothing on the wire: a pull long-polls for
``DEFAULT_WAIT`` seconds (the server answers the moment a change commits, so
new events still arrive within a second), sends only the headers the server
needs, and asks for caught-up replies as ``204 No Content`` with just the
cursor (``empty=204``). ``stop()`` cuts a pull in flight instead of waiting out
its long-poll, so a long wait never delays quitting.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import httpx

from ..clock import Clock, SystemClock
from ..domain.entities import User
from ..errors import CqgovError
from ..store import Store
from ..store import replica
from . import identity, offline, optimistic, wire
from ..store.outbox import ACKED, PENDING, REJECTED, CursorState, Outbox, OutboxRow, get_cursor, put_cursor

if TYPE_CHECKING:
    from ..catalogue import Catalogue
    from ..geo.registry import Registry

UPSTREAM = identity.UPSTREAM  # the cursor row of the one server a replica syncs with
MAX_GONE_IN_A_ROW = 3
# Long-poll seconds of an idle pull: under the server's cap (60 s, the idle timeout of common balancers).
# Each idle round trip is ~0.5 KB (the token is most of it), so 55 s keeps a day's polling near 0.75 MB.
DEFAULT_WAIT = 55.0
# httpx's default headers that a pull does not need (the server sends Arrow unless asked for JSON and never
# compresses it; HTTP/1.1 keeps connections alive by default): dropped, as every idle request carries them.
_NEEDLESS_HEADERS = ("accept", "accept-encoding", "connection", "user-agent")


class SyncError(CqgovError):
    """The server could not be synced with (network, refusal, malformed reply)."""

    exit_code = 6


@dataclass
class PullResult:
    rows: int = 0
    applied: int = 0
    caught_up: bool = False
    resynced: bool = False
    cursor: str | None = None


@dataclass
class PushResult:
    sent: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    deferred: int = 0
    error: str | None = None


@dataclass
class SyncStatus:
    state: str  # live | lagging | offline | starting
    lag_s: float | None
    offline_since: float | None
    outbox: int
    rejected: int
    last_error: str | None
    bytes_in: int
    bytes_out: int
    recent_rejections: list[dict] = field(default_factory=list)
    cursor: str | None = None
    last_pull_at: float | None = None
    last_push_at: float | None = None
    pulls: int = 0
    pushes: int = 0
    resyncs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class SyncClient:
    def __init__(
        self,
        store: Store,
        base_url: str,
        token: str | None = None,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
        *,
        user: User | None = None,
        limit: int = 500,
        wait: float = DEFAULT_WAIT,
        push_batch: int = 100,
        snapshot_limit: int = 2000,
        backoff_base: float = 0.5,
        backoff_cap: float = 60.0,
        timeout: float = 30.0,
        live_within: float = 30.0,
        retain_acked_s: float = 7 * 86400.0,
        catalogue: "Catalogue | None" = None,
        registry: "Registry | None" = None,
        rng: random.Random | None = None,
    ):
        self.store = store
        self.base_url = base_url.rstrip("/")
        self.clock = clock or store.clock or SystemClock()
        self.user = user
        self.limit, self.wait, self.push_batch, self.snapshot_limit = limit, wait, push_batch, snapshot_limit
        self._max_batch = push_batch
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.live_within = live_within
        self.retain_acked_s = retain_acked_s
        self.catalogue, self.registry = catalogue, registry
        self.outbox = Outbox(store)
        self._rng = rng or random.Random()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._own_http = http is None
        # Separate connections for pulls and pushes: a long-poll never queues a push behind it.
        self._pull_http = http or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout + wait)
        self._push_http = http or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        if http is None:
            for name in _NEEDLESS_HEADERS:
                self._pull_http.headers.pop(name, None)
        self._headers = headers if http is not None else {}
        # The pull connection's socket (captured through httpcore's trace hook), so stop() can cut a long-poll.
        self._pull_socket: socket.socket | None = None
        self._pull_started: tuple[float, float] | None = None  # (monotonic start, wait) of the pull in flight
        self._stats_lock = threading.Lock()
        self.bytes_in = self.bytes_out = 0
        self.pulls = self.pushes = self.resyncs = 0
        self.gone_responses = 0
        self.last_error: str | None = None
        self.offline_since: float | None = None
        self.last_pull_at: float | None = None
        self.last_push_at: float | None = None
        self.caught_up_at: float | None = None
        self.caught_up = False
        self._gone_in_a_row = 0
        self._stop = threading.Event()
        self._wake_push = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ HTTP

    def _get(self, http: httpx.Client, path: str, params: dict) -> httpx.Response:
        trace = {"trace": self._trace} if http is self._pull_http else None  # see _cut_pull
        r = http.get(path, params=params, headers={"Accept": wire.MEDIA_TYPE, **self._headers}, extensions=trace)
        with self._stats_lock:
            self.bytes_in += len(r.content)
            self.bytes_out += len(path) + 64
        return r

    def _trace(self, event: str, info: dict) -> None:
        """httpcore trace hook on pulls: remember the socket of each new connection."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                self._pull_socket = sock

    def _long_poll(self, params: dict) -> httpx.Response:
        """GET /v1/changes with as few request bytes as the server needs; a 204 means caught up."""
        # An injected client (tests, proxies) is asked for Arrow explicitly, as before; our own sends no Accept.
        headers = None if self._own_http else {"Accept": wire.MEDIA_TYPE, **self._headers}
        self._pull_started = (time.monotonic(), float(params["wait"]))
        try:
            r = self._pull_http.get("/v1/changes", params=params, headers=headers,
                                    extensions={"trace": self._trace})
        finally:
            self._pull_started = None
        with self._stats_lock:
            self.bytes_in += len(r.content)
            self.bytes_out += len(str(r.request.url.raw_path)) + 64
        return r

    def _cut_pull(self) -> None:
        """Shut down the pull connection's socket: a long-poll in flight fails at once (stop() only)."""
        sock = self._pull_socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def _failed(self, error: str) -> None:
        with self._stats_lock:
            self.last_error = error
            if self.offline_since is None:
                self.offline_since = self.clock.now()

    def _reached(self) -> None:
        with self._stats_lock:
            self.offline_since = None

    # ------------------------------------------------------------ pull

    def cursor(self) -> CursorState | None:
        return get_cursor(self.store, UPSTREAM)

    def pull_once(self, wait: float | None = None) -> PullResult:
        """One request: the next delta (or the next snapshot page while resyncing), applied with its cursor."""
        state = self.cursor()
        if state is None or state.phase == "snapshot":
            return self._snapshot_step(state)
        if wait is None:
            # Long-poll only once a reply has said we are caught up: until then (after a snapshot, after
            # a full page) an answer now tells the user "live" instead of a minute's silence.
            wait = self.wait if self.caught_up else 0
        params = {"cursor": wire.format_cursor(state.epoch, state.seq), "limit": self.limit,
                  "wait": _seconds(wait), "node": self.store.node, "empty": "204"}
        try:
            r = self._long_poll(params)
        except httpx.HTTPError as exc:
            if self._stop.is_set():
                raise SyncError("stopped") from None  # stop() cut the long-poll: not a fault of the link
            self._failed(f"pull: {type(exc).__name__}: {exc}")
            raise SyncError(f"cannot reach {self.base_url}: {exc}") from None
        with self._stats_lock:
            self.pulls += 1
        if r.status_code == 410:
            return self._gone(state, _detail(r))
        if r.status_code == 204:
            return self._caught_up(state, r)
        if r.status_code != 200:
            self._failed(f"pull: HTTP {r.status_code}: {_detail(r)}")
            raise SyncError(f"pull refused by {self.base_url}: HTTP {r.status_code}: {_detail(r)}")
        self._reached()
        try:
            msg = wire.decode(r.content)
        except wire.WireError as exc:
            self._failed(f"pull: {exc}")
            raise
        if msg.epoch != state.epoch or msg.meta["cqgov.kind"] != "changes":
            return self._gone(state, "the server answered for another epoch")
        _, next_seq = wire.parse_cursor(msg.cursor)
        if next_seq < state.seq:
            return self._gone(state, f"the server moved the cursor back ({next_seq} < {state.seq})")
        now = self.clock.now()
        with self.store.tx():
            applied = replica.apply_changes(self.store, msg.changes)
            put_cursor(self.store, _replace_state(state, seq=next_seq), now)
        self._gone_in_a_row = 0
        with self._stats_lock:
            self.last_pull_at = now
            self.caught_up = not msg.has_more
            if self.caught_up:
                self.caught_up_at = now
        return PullResult(len(msg.changes), applied.applied, not msg.has_more, False, msg.cursor)

    def _caught_up(self, state: CursorState, r: httpx.Response) -> PullResult:
        """204: nothing new for us. The cursor may still have moved past rows outside our scope; the
        replica is written only if it did (an idle laptop's disk stays quiet too)."""
        self._reached()
        cursor = r.headers.get("x-cqgov-cursor", "")
        try:
            epoch, next_seq = wire.parse_cursor(cursor)
        except wire.WireError as exc:
            self._failed(f"pull: {exc}")
            raise SyncError(f"{self.base_url} sent a caught-up reply without a valid cursor: {exc}") from None
        if epoch != state.epoch:
            return self._gone(state, "the server answered for another epoch")
        if next_seq < state.seq:
            return self._gone(state, f"the server moved the cursor back ({next_seq} < {state.seq})")
        now = self.clock.now()
        if next_seq != state.seq:
            with self.store.tx():
                put_cursor(self.store, _replace_state(state, seq=next_seq), now)
        self._gone_in_a_row = 0
        with self._stats_lock:
            self.last_pull_at = now
            self.caught_up = True
            self.caught_up_at = now
        return PullResult(0, 0, True, False, cursor)

    def pull_until_caught_up(self, max_requests: int = 10_000,
                             progress: Callable[[PullResult], None] | None = None) -> PullResult:
        """Pull without waiting until a reply says caught up; ``progress`` hears the running total after
        each page that was not the last (a snapshot resync of a large store takes many)."""
        total = PullResult()
        for _ in range(max_requests):
            r = self.pull_once(wait=0)
            total.rows += r.rows
            total.applied += r.applied
            total.resynced |= r.resynced
            total.cursor = r.cursor or total.cursor
            if r.caught_up:
                total.caught_up = True
                return total
            if progress is not None:
                progress(total)
        return total

    def _gone(self, state: CursorState, reason: str) -> PullResult:
        """410: keep the outbox, rebuild the replica from a snapshot. A server that keeps refusing
        fresh snapshot cursors is an error, not a loop."""
        with self._stats_lock:
            self.gone_responses += 1
        self._gone_in_a_row += 1
        if self._gone_in_a_row > MAX_GONE_IN_A_ROW:
            self._failed(f"pull: 410 again after resync: {reason}")
            raise SyncError(f"{self.base_url} refuses every cursor ({reason}); giving up for now")
        with self.store.tx():
            put_cursor(self.store, _replace_state(state, phase="snapshot", snap_token=None, snap_seq=None),
                       self.clock.now())
        self.last_error = f"resync: {reason}"
        return self._snapshot_step(self.cursor())

    def _snapshot_step(self, state: CursorState | None) -> PullResult:
        """Fetch and apply one snapshot page; the last page switches the cursor to live."""
        token = state.snap_token if state is not None else None
        params: dict[str, Any] = {"limit": self.snapshot_limit}
        if token:
            params["token"] = token
        try:
            r = self._get(self._pull_http, "/v1/snapshot", params)
        except httpx.HTTPError as exc:
            self._failed(f"snapshot: {type(exc).__name__}: {exc}")
            raise SyncError(f"cannot reach {self.base_url}: {exc}") from None
        if r.status_code == 410 and token and state is not None:
            # The page token went stale (epoch changed or log compacted): start the snapshot over.
            with self.store.tx():
                put_cursor(self.store, _replace_state(state, snap_token=None, snap_seq=None), self.clock.now())
            return self._snapshot_step(self.cursor())
        if r.status_code != 200:
            self._failed(f"snapshot: HTTP {r.status_code}: {_detail(r)}")
            raise SyncError(f"snapshot refused by {self.base_url}: HTTP {r.status_code}: {_detail(r)}")
        self._reached()
        msg = wire.decode(r.content)
        if msg.meta["cqgov.kind"] != "snapshot":
            raise SyncError(f"{self.base_url} answered a snapshot request with {msg.meta['cqgov.kind']}")
        node, bound = msg.meta.get("cqgov.node"), identity.server_of(self.store)
        if node and bound and node != bound:
            # Another server behind this URL: its snapshot would replace this replica's rows with its own.
            self._failed(f"snapshot: {self.base_url} is {node}, not {bound}")
            raise SyncError(f"{self.base_url} is {node}, but {self.store.path} is a replica of {bound}; "
                            "sync another file with it")
        _, cursor_seq = wire.parse_cursor(msg.cursor)
        next_token = msg.meta.get("cqgov.page") or None
        now = self.clock.now()
        first_page = not token
        with self.store.tx():
            if first_page:
                replica.clear_replicated(self.store)
            applied = replica.apply_changes(self.store, msg.changes)
            meta = msg.meta
            if next_token:
                # Mid-snapshot the cursor row keeps the epoch the replica came from; the token carries the new one.
                new = CursorState(UPSTREAM, state.epoch if state else msg.epoch, state.seq if state else 0, "snapshot",
                                  next_token, cursor_seq, meta.get("cqgov.node"), meta.get("cqgov.tier"),
                                  meta.get("cqgov.code"), meta.get("cqgov.scope"))
            else:
                new = CursorState(UPSTREAM, msg.epoch, cursor_seq, "live", None, None, meta.get("cqgov.node"),
                                  meta.get("cqgov.tier"), meta.get("cqgov.code"), meta.get("cqgov.scope"))
            put_cursor(self.store, new, now)
            if not next_token:
                # A restored server (new epoch) may have lost commands it had acknowledged: send them again.
                self.outbox.requeue_acked(msg.epoch, now)
                self._replay_pending(new)
        with self._stats_lock:
            if first_page:
                self.resyncs += 1
            self.last_pull_at = now
            self.caught_up = False
        if not next_token:
            self._wake_push.set()
        return PullResult(len(msg.changes), applied.applied, False, True, msg.cursor)

    def _replay_pending(self, state: CursorState) -> None:
        """After a snapshot, put the local effects of still-unsent commands back on the fresh replica."""
        now = self.clock.now()
        for row in self.outbox.pending():
            try:
                keys = optimistic.touched_events(self.store, row.type, row.body)
                pre = replica.event_rows(self.store, keys)
                optimistic.apply(self.store, row.type, row.body, now=now, user=self.user,
                                 server_node=state.server_node, server_tier=state.server_tier,
                                 catalogue=self.catalogue, registry=self.registry)
                post = replica.event_rows(self.store, keys)
                self.outbox.set_images(row.id, {"event": pre}, {"event": post})
            except CqgovError:
                # No longer possible locally (e.g. the server moved the event on); the server decides.
                self.outbox.set_images(row.id, None, None)

    # ------------------------------------------------------------ push

    def enqueue(self, ctype: str, body: dict, local_effect: Callable[[Store], None] | None = None) -> str:
        """Record a command and its local effect in one transaction; returns the command id.

        Without ``local_effect`` the built-in effect of ``report``/``act`` is applied
        (the event appears or moves in the replica at once). A locally impossible
        command raises and nothing is recorded.
        """
        cid = offline.enqueue(self.store, ctype, body, now=self.clock.now(), user=self.user, local_effect=local_effect,
                              catalogue=self.catalogue, registry=self.registry)
        self._wake_push.set()
        return cid

    def _backoff(self, attempts: int) -> float:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** min(attempts, 30)))
        return delay * self._rng.uniform(0.5, 1.5)

    def push_once(self, force: bool = False) -> PushResult:
        """Send the oldest pending commands once (if their retry time has come, or ``force``)."""
        now = self.clock.now()
        rows = self.outbox.due(float("inf") if force else now, self.push_batch)
        if not rows:
            return PushResult()
        batch = {"commands": [{"id": r.id, "type": r.type, "body": r.body} for r in rows]}
        try:
            payload = json.dumps(batch, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate in a body: sent escaped, for the server to refuse by name
            payload = json.dumps(batch).encode()
        ids = [r.id for r in rows]
        attempts = max(r.attempts for r in rows)
        result = PushResult(sent=len(rows))
        try:
            resp = self._push_http.post("/v1/commands", content=payload,
                                        headers={"Content-Type": "application/json", **self._headers})
        except httpx.HTTPError as exc:
            result.error = f"push: {type(exc).__name__}: {exc}"
            self._push_failed(ids, attempts, result.error)
            return result
        with self._stats_lock:
            self.bytes_out += len(payload)
            self.bytes_in += len(resp.content)
            self.pushes += 1
        if resp.status_code == 413 and len(rows) > 1:
            self.push_batch = max(1, len(rows) // 2)
            result.error = "push: batch too large; halving"
            return result
        if resp.status_code in (400, 413, 422):
            if len(rows) > 1:
                # Find the culprit: send one at a time; the others are not at fault.
                self.push_batch = 1
                result.error = f"push: batch refused ({_detail(resp)}); isolating"
                return result
            reason = f"refused by server: {_detail(resp)}"
            with self.store.tx():
                self._reject(rows[0], reason, now, "bad_input")
            result.rejected = 1
            return result
        try:
            reply = resp.json()
            lists = {k: reply.get(k, []) for k in ("accepted", "duplicate", "rejected")}
            epoch = str(reply.get("epoch", ""))
        except (ValueError, AttributeError):
            reply, lists, epoch = None, None, ""
        if resp.status_code not in (200, 503) or lists is None:
            result.error = f"push: HTTP {resp.status_code}: {_detail(resp)}"
            self._push_failed(ids, attempts, result.error)
            return result
        by_id = {r.id: r for r in rows}
        answered = set()
        with self.store.tx():
            for kind in ("accepted", "duplicate"):
                for item in lists[kind]:
                    if item.get("id") in by_id and item["id"] not in answered:
                        self.outbox.answered(item["id"], ACKED, item.get("result"), epoch, now)
                        answered.add(item["id"])
                        setattr(result, kind, getattr(result, kind) + 1)
            for item in lists["rejected"]:
                row = by_id.get(item.get("id"))
                if row is not None and row.id not in answered:
                    code = item.get("code")
                    self._reject(row, str(item.get("reason", "refused")), now,
                                 code if isinstance(code, str) else "refused")
                    answered.add(row.id)
                    result.rejected += 1
        left = [i for i in ids if i not in answered]
        if left:
            result.deferred = len(left)
            result.error = f"push: server deferred {len(left)} command(s): {reply.get('error', 'no answer')}"
            self._push_failed(left, attempts, result.error)
        else:
            with self._stats_lock:
                self.last_push_at = now
            if self.push_batch < self._max_batch and result.rejected == 0:
                self.push_batch = min(self._max_batch, self.push_batch * 2)
        if self.pushes % 50 == 1:  # acknowledged rows are kept a while for re-push after a restore
            self.outbox.prune_acked(now - self.retain_acked_s)
        return result

    def _push_failed(self, ids: list[str], attempts: int, error: str) -> None:
        self._failed(error)
        self.outbox.retry_later(ids, self.clock.now() + self._backoff(attempts), error)

    def _reject(self, row: OutboxRow, reason: str, now: float, code: str = "refused") -> None:
        """A refused command leaves the queue as 'rejected' (shown, never dropped) and its local effect is undone.
        ``code`` is the server's stable refusal code (``errors.REFUSAL_CODES``), kept for the console to translate."""
        self.outbox.answered(row.id, REJECTED, {"reason": reason, "code": code[:40]}, "", now)
        if row.pre_image and row.post_image:
            replica.restore_events(self.store, row.pre_image.get("event", {}), row.post_image.get("event", {}))

    def push_until_drained(self, max_requests: int = 1000) -> PushResult:
        total = PushResult()
        for _ in range(max_requests):
            r = self.push_once(force=True)
            for k in ("sent", "accepted", "duplicate", "rejected", "deferred"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.error = r.error or total.error
            if r.sent == 0 or (r.error and not (r.accepted or r.duplicate or r.rejected)):
                if self.outbox.count(PENDING) == 0 or r.sent == 0:
                    break
                if r.error and "isolating" not in r.error and "halving" not in r.error:
                    break
        return total

    # ------------------------------------------------------------ status

    def status(self) -> SyncStatus:
        now = self.clock.now()
        state = self.cursor()
        with self._stats_lock:
            if self.offline_since is not None:
                mode = "offline"
            elif self.last_pull_at is None:
                mode = "starting"
            elif self.caught_up and self.caught_up_at is not None and (
                    now - self.caught_up_at <= self.live_within or self._polling_within()):
                mode = "live"
            else:
                mode = "lagging"
            lag = None if self.caught_up_at is None else (0.0 if mode == "live" else max(0.0, now - self.caught_up_at))
            last_error, bytes_in, bytes_out = self.last_error, self.bytes_in, self.bytes_out
            offline_since, last_pull_at, last_push_at = self.offline_since, self.last_pull_at, self.last_push_at
            pulls, pushes, resyncs = self.pulls, self.pushes, self.resyncs
        recent = [{"id": r.id, "type": r.type, "reason": (r.result or {}).get("reason", ""),
                   "code": (r.result or {}).get("code", "refused")} for r in self.outbox.rejections(10)]
        return SyncStatus(
            state=mode, lag_s=lag, outbox=self.outbox.count(PENDING), rejected=self.outbox.count(REJECTED),
            recent_rejections=recent,
            cursor=wire.format_cursor(state.epoch, state.seq) if state and state.phase == "live" else None,
            last_error=last_error, bytes_in=bytes_in, bytes_out=bytes_out, offline_since=offline_since,
            last_pull_at=last_pull_at, last_push_at=last_push_at, pulls=pulls, pushes=pushes, resyncs=resyncs,
        )

    # ------------------------------------------------------------ background

    def start(self) -> None:
        """Run pulls (long-poll) and pushes on two daemon threads until ``stop()``."""
        if self._threads:
            return
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._pull_loop, name="cqgov-sync-pull", daemon=True),
            threading.Thread(target=self._push_loop, name="cqgov-sync-push", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _polling_within(self) -> bool:
        """A long-poll is being held by the server and is not overdue: a caught-up client stays live
        through a wait longer than ``live_within``."""
        started = self._pull_started
        return started is not None and time.monotonic() - started[0] <= started[1] + self.live_within

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._wake_push.set()
        self._cut_pull()  # a long-poll in flight ends now, not when its wait runs out
        for t in self._threads:
            t.join(timeout if timeout is not None else self.wait + 10)
        self._threads = []

    def close(self) -> None:
        self.stop()
        if self._own_http:
            self._pull_http.close()
            self._push_http.close()

    def _pull_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                r = self.pull_once()
                failures = 0
                if not (r.rows or r.resynced) and not r.caught_up:
                    self._stop.wait(0.05)
            except (CqgovError, httpx.HTTPError, OSError) as exc:
                if self._stop.is_set():
                    break  # stop() cut the pull in flight
                failures += 1
                self._failed(f"pull: {exc}")
                self._stop.wait(self._backoff(failures))

    def _push_loop(self) -> None:
        while not self._stop.is_set():
            due = self.outbox.next_due()
            if due is None:
                self._wake_push.wait(1.0)
                self._wake_push.clear()
                continue
            delay = due - self.clock.now()
            if delay > 0:
                self._wake_push.wait(min(delay, 1.0))
                self._wake_push.clear()
                continue
            try:
                self.push_once()
            except (CqgovError, OSError) as exc:  # a store error must not kill the thread
                self._failed(f"push: {exc}")
                self._stop.wait(self._backoff(1))


def _seconds(wait: float) -> float | int:
    """``25`` rather than ``25.0`` in the query string: every idle request carries it."""
    return int(wait) if float(wait).is_integer() else wait


def _replace_state(state: CursorState, **changes: Any) -> CursorState:
    return CursorState(**{**asdict(state), **changes})


def _detail(r: httpx.Response) -> str:
    """The server's reason in one short line; a reply that is not JSON (a web page on a wrong port, a
    proxy's error page) is named, not dumped."""
    ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "text/plain"):
        return f"not a cqgov server's answer ({ctype or 'no content type'}, {len(r.content)} bytes)"
    try:
        doc = r.json()
        if isinstance(doc, dict) and "detail" in doc:
            return " ".join(str(doc["detail"]).split())[:300]
    except ValueError:
        pass
    return " ".join((r.text or r.reason_phrase or "").split())[:300]
