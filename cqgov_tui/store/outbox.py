"""The client's durable sync state: the outbox of commands and the pull cursor, in the replica's own store.

Every write here runs inside the caller's ``store.tx()`` together with the
effect it records (a local change, an applied delta), so a kill -9 leaves
either both or neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .connection import scalar
from .store import Store

PENDING, ACKED, REJECTED = "pending", "acked", "rejected"


@dataclass
class OutboxRow:
    n: int
    id: str
    created_at: float
    type: str
    body: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    pre_image: dict[str, Any] | None
    post_image: dict[str, Any] | None
    result: Any
    epoch: str | None


_COLS = "n, id, created_at, type, body, state, attempts, next_attempt_at, last_error, pre_image, post_image, result, epoch"


def _json(value: Any) -> str:
    """JSON text for a column: readable UTF-8, or escaped when a string is not valid Unicode (a lone
    surrogate), so a malformed body is kept and sent for the server to refuse, never failing the insert."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(value)
    return text


def _row(r: tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8],
                     json.loads(r[9]) if r[9] else None, json.loads(r[10]) if r[10] else None,
                     json.loads(r[11]) if r[11] else None, r[12])


class Outbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, cid: str, ctype: str, body: dict[str, Any], now: float, pre: dict[str, Any] | None,
            post: dict[str, Any] | None) -> int:
        s = self.store
        s._require_tx()
        n: int = scalar(s.conn, "SELECT coalesce(max(n), 0) + 1 FROM outbox")
        s.conn.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL, ?, ?, NULL, NULL, NULL)",
            [n, cid, now, ctype, _json(body), PENDING, now,
             json.dumps(pre, ensure_ascii=False) if pre is not None else None,
             json.dumps(post, ensure_ascii=False) if post is not None else None],
        )
        return n

    def get(self, cid: str) -> OutboxRow | None:
        with self.store.lock:
            r = self.store.conn.execute(f"SELECT {_COLS} FROM outbox WHERE id = ?", [cid]).fetchone()
        return _row(r) if r else None

    def due(self, now: float, limit: int) -> list[OutboxRow]:
        """The oldest pending commands, once the earliest retry time has come: they always go in
        the order they were made, so the server folds them in that order."""
        with self.store.lock:
            first = scalar(self.store.conn, "SELECT min(next_attempt_at) FROM outbox WHERE state = ?", [PENDING])
            if first is None or first > now:
                return []
            rows = self.store.conn.execute(
                f"SELECT {_COLS} FROM outbox WHERE state = ? ORDER BY n LIMIT ?", [PENDING, limit]
            ).fetchall()
        return [_row(r) for r in rows]

    def next_due(self) -> float | None:
        with self.store.lock:
            first: float | None = scalar(self.store.conn, "SELECT min(next_attempt_at) FROM outbox WHERE state = ?",
                                         [PENDING])
            return first

    def pending(self) -> list[OutboxRow]:
        with self.store.lock:
            rows = self.store.conn.execute(
                f"SELECT {_COLS} FROM outbox WHERE state = ? ORDER BY n", [PENDING]).fetchall()
        return [_row(r) for r in rows]

    def count(self, state: str = PENDING) -> int:
        with self.store.lock:
            n: int = scalar(self.store.conn, "SELECT count(*) FROM outbox WHERE state = ?", [state])
            return n

    def answered(self, cid: str, state: str, result: Any, epoch: str, now: float) -> None:
        self.store._require_tx()
        self.store.conn.execute(
            "UPDATE outbox SET state = ?, result = ?, epoch = ?, answered_at = ?, last_error = NULL WHERE id = ?",
            [state, json.dumps(result, ensure_ascii=False), epoch, now, cid],
        )

    def retry_later(self, ids: list[str], next_at: float, error: str) -> None:
        if not ids:
            return
        with self.store.tx():
            self.store.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE list_contains(?, id)",
                [next_at, error[:500], ids],
            )

    def set_images(self, cid: str, pre: dict[str, Any] | None, post: dict[str, Any] | None) -> None:
        self.store._require_tx()
        self.store.conn.execute(
            "UPDATE outbox SET pre_image = ?, post_image = ? WHERE id = ?",
            [json.dumps(pre, ensure_ascii=False) if pre is not None else None,
             json.dumps(post, ensure_ascii=False) if post is not None else None, cid],
        )

    def rejections(self, limit: int = 20) -> list[OutboxRow]:
        with self.store.lock:
            rows = self.store.conn.execute(
                f"SELECT {_COLS} FROM outbox WHERE state = ? ORDER BY n DESC LIMIT ?", [REJECTED, limit]
            ).fetchall()
        return [_row(r) for r in rows]

    def dismiss(self, cid: str) -> bool:
        """The user has seen a rejection: remove it."""
        with self.store.tx():
            n = scalar(self.store.conn, "SELECT count(*) FROM outbox WHERE id = ? AND state = ?", [cid, REJECTED])
            self.store.conn.execute("DELETE FROM outbox WHERE id = ? AND state = ?", [cid, REJECTED])
        return bool(n)

    def requeue_acked(self, current_epoch: str, now: float) -> int:
        """After the server was restored (new epoch), send again every command acknowledged under an
        older epoch: the restored server answers "duplicate" for those it kept and applies the rest."""
        self.store._require_tx()
        n: int = scalar(self.store.conn, "SELECT count(*) FROM outbox WHERE state = ? AND epoch IS DISTINCT FROM ?",
                        [ACKED, current_epoch])
        self.store.conn.execute(
            "UPDATE outbox SET state = ?, attempts = 0, next_attempt_at = ?, result = NULL "
            "WHERE state = ? AND epoch IS DISTINCT FROM ?",
            [PENDING, now, ACKED, current_epoch],
        )
        return n

    def prune_acked(self, before: float) -> None:
        with self.store.tx():
            self.store.conn.execute("DELETE FROM outbox WHERE state = ? AND answered_at < ?", [ACKED, before])


@dataclass
class CursorState:
    upstream: str
    epoch: str
    seq: int
    phase: str  # "live" or "snapshot" (a resync is under way; snap_token says where to resume)
    snap_token: str | None
    snap_seq: int | None
    server_node: str | None
    server_tier: str | None
    server_code: str | None
    scope: str | None


def get_cursor(store: Store, upstream: str) -> CursorState | None:
    with store.lock:
        r = store.conn.execute(
            "SELECT upstream, epoch, seq, phase, snap_token, snap_seq, server_node, server_tier, server_code, scope "
            "FROM sync_cursor WHERE upstream = ?", [upstream]).fetchone()
    return CursorState(*r) if r else None


def put_cursor(store: Store, state: CursorState, now: float) -> None:
    store._require_tx()
    store.conn.execute("DELETE FROM sync_cursor WHERE upstream = ?", [state.upstream])
    store.conn.execute(
        "INSERT INTO sync_cursor VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [state.upstream, state.epoch, state.seq, state.phase, state.snap_token, state.snap_seq, state.server_node,
         state.server_tier, state.server_code, state.scope, now],
    )
