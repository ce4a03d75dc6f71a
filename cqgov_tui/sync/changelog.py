"""Server-side reads of the change log for sync: scoped deltas, snapshot pages, compaction, epochs.

Every row a caller receives passes ``scope.change_visible``; rows that came
from the caller's own node are not sent back to it (no echo between tiers).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from ..ids import uuid7
from ..scope import change_visible
from ..store import Store
from ..store.changes import change_rows, delete_changes_through, snapshot_rows
from .wire import Change, WireError

MAX_SCAN = 20_000  # rows looked at per request, so a narrow scope cannot make one pull unbounded
FLOOR_KEY = "log_floor"  # changes at or below this seq were compacted away


class Gone(Exception):
    """The cursor can no longer be served; the client must resync from a snapshot (HTTP 410)."""


@dataclass
class Delta:
    changes: list[Change]
    next_seq: int
    head: int
    has_more: bool


def floor(store: Store) -> int:
    value = store.meta(FLOOR_KEY, "0")  # never None: a default is given
    return int(value) if value is not None else 0


def check_cursor(store: Store, epoch: str, seq: int) -> None:
    if epoch != store.epoch:
        raise Gone(f"unknown epoch {epoch} (this store's epoch is {store.epoch}; it was restored or replaced)")
    head = store.head()
    if seq > head:
        raise Gone(f"cursor {seq} is past the head {head} of epoch {epoch}")
    low = floor(store)
    if seq < low:
        raise Gone(f"cursor {seq} is older than the oldest kept change ({low + 1}); the log was compacted")


def read_changes(store: Store, after: int, limit: int, scope_code: str, exclude_origin: str | None = None,
                 head: int | None = None) -> Delta:
    """Up to ``limit`` visible changes after ``after`` (up to ``head``); ``next_seq`` covers every row looked at."""
    head = store.head() if head is None else head
    out: list[Change] = []
    pos = after
    scanned = 0
    chunk = max(limit, 256)
    while len(out) < limit and pos < head and scanned < MAX_SCAN:
        rows = change_rows(store, pos, head, chunk)
        if not rows:
            break
        for seq, at, entity, key, op, data, origin, scope in rows:
            scanned += 1
            pos = seq
            if origin != exclude_origin and change_visible(scope_code, entity, scope):
                out.append(Change(seq, entity, key, op, origin, scope, at, json.loads(data)))
                if len(out) >= limit:
                    break
    return Delta(out, pos, head, pos < head)


def compact(store: Store, keep_after_seq: int) -> int:
    """Drop changes at or below ``keep_after_seq`` (never the newest, so seq stays gapless). Returns rows dropped."""
    with store.tx():
        head = store.head()
        cut = min(int(keep_after_seq), head - 1)
        if cut <= floor(store):
            return 0
        dropped = delete_changes_through(store, cut)
        store.set_meta(FLOOR_KEY, str(cut))
    return dropped


def new_epoch(store: Store) -> str:
    """Give a restored store a new epoch so every client's old cursor is refused (410) and resyncs."""
    epoch = uuid7(int(store.clock.now() * 1000))
    store.set_meta("epoch", epoch)
    store.epoch = epoch
    return epoch


# ---------------------------------------------------------------- snapshots

# Entities in snapshot order, each with its table reads. Audit comes last: it is the bulk.
_SNAPSHOT_ORDER = ("event", "directive", "receipt", "person", "duty_override", "task", "notification", "attachment",
                   "audit")


def snapshot_token(epoch: str, seq: int, entity_index: int = 0, after: str = "") -> str:
    raw = json.dumps([epoch, seq, entity_index, after], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_snapshot_token(token: str) -> tuple[str, int, int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        epoch, seq, idx, after = json.loads(raw)
        if not (isinstance(epoch, str) and isinstance(seq, int) and isinstance(idx, int) and isinstance(after, str)):
            raise ValueError
        if not 0 <= idx <= len(_SNAPSHOT_ORDER):
            raise ValueError
    except (ValueError, TypeError):
        raise WireError(f"malformed snapshot page token {token[:40]!r}") from None
    return epoch, seq, idx, after


@dataclass
class SnapshotPage:
    changes: list[Change]
    cursor_seq: int  # pull on from here once every page is applied
    next_token: str | None


def read_snapshot(store: Store, scope_code: str, limit: int, token: str | None = None) -> SnapshotPage:
    """One page of the current rows in scope, in (entity, key) order.

    The first page fixes the cursor (the head at that moment). Later pages are
    read at their own time; pulling on from that cursor re-delivers every
    change made meanwhile, and versions make that replay idempotent.
    """
    if token:
        epoch, cursor_seq, idx, after = parse_snapshot_token(token)
        if epoch != store.epoch:
            raise Gone(f"snapshot token is for epoch {epoch}; this store's epoch is {store.epoch}")
        if cursor_seq < floor(store) or cursor_seq > store.head():
            raise Gone(f"snapshot cursor {cursor_seq} can no longer be served; start the snapshot again")
    else:
        cursor_seq, idx, after = store.head(), 0, ""
    out: list[Change] = []
    with store.lock:
        while idx < len(_SNAPSHOT_ORDER) and len(out) < limit:
            entity = _SNAPSHOT_ORDER[idx]
            rows, last_key, exhausted = _page(store, entity, after, scope_code, limit - len(out))
            out.extend(rows)
            if exhausted:
                idx, after = idx + 1, ""
            else:
                after = last_key
    next_token = snapshot_token(store.epoch, cursor_seq, idx, after) if idx < len(_SNAPSHOT_ORDER) else None
    return SnapshotPage(out, cursor_seq, next_token)


def _page(store: Store, entity: str, after: str, scope_code: str, want: int) -> tuple[list[Change], str, bool]:
    """Read rows of one entity after key ``after`` until ``want`` visible ones (or the end)."""
    out: list[Change] = []
    chunk = max(want, 256)
    while True:
        rows = snapshot_rows(store, entity, after, chunk)
        if not rows:
            return out, after, True
        for key, scope, origin, data in rows:
            after = key
            if change_visible(scope_code, entity, scope):
                out.append(Change(0, entity, key, "upsert", origin, scope, store.clock.now(), data))
                if len(out) >= want:
                    return out, after, False
        if len(rows) < chunk:
            return out, after, True
