"""The store's core: the connection, transactions (a unit of work per transaction), metadata, the change log's head.

Each entity's rows are read and written by a module of their own (``events``,
``audit_log``, ``directives``, ``commands``, ``indicators``, ``figures``,
``sensors``), mixed into ``Store`` on top of this core. Every write happens
inside ``tx()``: rows are staged in a ``WriteBatch`` (``unit.py``) and written
with one statement per table at commit, the change-log row in the same
transaction as its effect (SYNC.md), so a reader of ``changes`` never sees an
effect without its log row or a log row without its effect.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import threading
from typing import Any, Callable

import duckdb

from ..clock import Clock, SystemClock, local
from ..domain.entities import AuditEntry, Tier
from ..domain.schema import column_names
from ..errors import StoreCorrupt, StoreError
from ..ownership import Node
from . import audit as audit_chain
from .connection import closed
from .walmark import WalMark
from .migrations import applied
from .open_events import OpenEvents
from .unit import Mark, WriteBatch

RECENT_AUDIT = 20_000  # committed audit entries remembered (a few seconds of a busy district)

# Change-log entities whose commit makes the remembered duty roster (``PeopleRows.duty_roster``) stale.
ROSTER_ENTITIES = frozenset({"person", "duty_override"})


class StoreCore:
    """What every entity module builds on: the connection, ``tx()`` and its write batch, the
    committed caches (change-log head, audit tail, metadata, open events, keyed rows)."""

    def __init__(self, path: str, conn: duckdb.DuckDBPyConnection, clock: Clock | None = None, *,
                 read_only: bool = False):
        self.path = path
        self._conn = conn
        self.read_only = read_only
        # The write-ahead log's size after each commit, for the next open to check (walmark.py).
        self._walmark = None if read_only or path == ":memory:" else WalMark(path)
        self.clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._depth = 0
        self._batch: WriteBatch | None = None
        self._tx_thread: int | None = None
        self._db_tx = False  # a DuckDB transaction is open under the running store transaction
        # This process owns the file, so committed heads, the audit tail, metadata and the open
        # events can be remembered between writes instead of re-read (see invalidate_caches).
        self._head: int | None = None
        self._audit_tail: tuple[int, str] | None = None
        # The newest committed audit entries, in order and without gaps up to the tail: the notifier
        # follows the log from here instead of reading back what this process just wrote.
        self._recent_audit: collections.deque[AuditEntry] = collections.deque(maxlen=RECENT_AUDIT)
        self._meta: dict[str, str | None] = {}
        self._open: OpenEvents | None = None
        # Committed directives and receipts read by key (a fan-out reads each street's receipt once).
        self._keyed_cache: dict[str, dict[tuple[str, ...], Any]] = {"receipts": {}, "directives": {}}
        self._directives_version = 0  # moves whenever the directives table may have changed
        self._roster_version = 0  # moves whenever people or duty overrides may have changed
        self._receipts_complete: set[str] = set()  # directives whose every receipt is in the keyed cache
        self._open_loaded_in_tx = False
        # Called with the change-log head after every commit (outside the lock): long-polls wake on
        # this instead of re-reading the head on a timer. A listener must be quick and never raise.
        self.commit_listeners: list[Callable[[int], None]] = []
        meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        for needed in ("epoch", "tier", "code", "node"):
            if needed not in meta:
                raise StoreCorrupt(f"{path}: store metadata lacks {needed!r}; not a cqgov store")
        self.epoch: str = meta["epoch"]
        self.tier = Tier(meta["tier"])
        self.code: str = meta["code"]
        self.node: str = meta["node"]

    def close(self) -> None:
        """Close; a store opened for writing is checkpointed first, so the main file holds everything
        and no write-ahead log is left for the next open to replay."""
        with self.lock:
            if self._walmark is not None:
                self._walmark.clear()  # before the checkpoint shortens the log the mark measured
                with contextlib.suppress(duckdb.Error):  # closing checkpoints anyway when it can
                    self._conn.execute("CHECKPOINT")
            self._conn.close()
            if self._walmark is not None:
                self._walmark.close()
            closed(self.path)

    @property
    def is_replica(self) -> bool:
        """A replica (a console's, ``cqgov sync``'s) rather than a tier's own store: tier stores are the
        node ``<tier>-<code>``; replicas carry other names. A replica never numbers events itself."""
        return self.node != Node(self.tier, self.code).name

    def __enter__(self) -> "StoreCore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        """The connection, for SQL inside ``store/``. Inside a transaction, staged rows are
        written first (and a DuckDB transaction opened), so the SQL sees this transaction's work."""
        if self._batch is not None and self._tx_thread == threading.get_ident():
            self._flush()
        return self._conn

    def _flush(self) -> None:
        batch = self._batch
        assert batch is not None
        if not self._db_tx:
            self._conn.execute("BEGIN TRANSACTION")
            self._db_tx = True
        if batch.dirty:
            batch.flush(self._conn)

    def _mine(self) -> WriteBatch | None:
        """The running transaction's batch when the caller is the thread running it."""
        batch = self._batch
        return batch if batch is not None and self._tx_thread == threading.get_ident() else None

    def tx(self) -> "_Tx":
        """A (re-entrant) transaction: nested calls join the outer one; all of it commits or none."""
        return _Tx(self)

    def _begin(self) -> None:
        self._batch = WriteBatch(head=self.head(), audit_tail=self._committed_tail())
        self._tx_thread = threading.get_ident()
        self._depth = 1

    def _end(self, ok: bool) -> None:
        """Commit (``ok``) or undo the outer transaction; either way the store is left without one."""
        try:
            if ok:
                try:
                    self._commit()
                except BaseException:
                    self._abort()
                    raise
            else:
                self._abort()
        finally:
            self._depth = 0
            self._batch = None
            self._tx_thread = None
            self._db_tx = False
            self._open_loaded_in_tx = False

    def _commit(self) -> None:
        batch = self._batch
        assert batch is not None
        if batch.dirty:
            self._flush()
        if self._db_tx:
            self._conn.execute("COMMIT")
            self._db_tx = False
            if self._walmark is not None:
                self._walmark.record()
        self._head = batch.head
        self._audit_tail = batch.audit_tail
        self._remember_audit(batch.audit_seen)
        self._meta.update(batch.meta_seen)
        for table, rows in batch.keyed_seen.items():
            cache = self._keyed_cache.get(table)  # only directives and receipts are remembered
            if cache is not None:
                cache.update(rows)
        if batch.keyed_seen["directives"]:
            self._directives_version += 1
        if batch.entities_seen & ROSTER_ENTITIES:
            self._roster_version += 1
        if batch.commands_seen:
            self._committed_commands([r[0] for r in batch.commands_seen])
        if self._open is not None:
            # Loaded before this transaction, or during it from its own flushed rows: either way the
            # staged images are the newest.
            for event in batch.touched.values():
                self._open.put(event)

    def _committed_commands(self, ids: list[str]) -> None:
        """Told the command ids each commit wrote (``commands`` remembers them)."""

    def _abort(self) -> None:
        if self._db_tx:
            self._db_tx = False
            with contextlib.suppress(duckdb.Error):
                self._conn.execute("ROLLBACK")
            # SQL ran inside the transaction: what a cache read from it there, the rollback undid.
            self._meta.clear()
            for cache in self._keyed_cache.values():
                cache.clear()
            self._receipts_complete.clear()
            self._directives_version += 1
            self._roster_version += 1
            if self._open_loaded_in_tx:
                self._open = None

    def mark(self) -> Mark:
        """Where the running transaction's writes stand; ``rollback_to`` undoes everything after it."""
        batch = self._require_tx()
        return batch.mark()

    def rollback_to(self, mark: Mark) -> None:
        """Undo what was staged since ``mark`` (raises ``FlushedPastMark`` if it already reached DuckDB)."""
        batch = self._require_tx()
        batch.rollback_to(mark)

    def _notify_commit(self) -> None:
        head = self.head()
        for listener in list(self.commit_listeners):
            listener(head)

    def _register(self, name: str, table: Any) -> None:
        """Register an Arrow table for a bulk statement. DuckDB refuses ``register`` while an earlier
        ``fetchone()`` left a result open, so a trivial statement closes that result first."""
        conn = self.conn
        conn.execute("SELECT 1").fetchall()
        conn.register(name, table)

    def invalidate_caches(self) -> None:
        """Forget what is remembered; call after writing ``changes``, ``audit_log``, ``events`` or
        ``store_meta`` other than through this class."""
        with self.lock:
            batch = self._mine()
            if batch is not None:
                self._flush()
                batch.head = self._read_head()
                batch.audit_tail = self._read_tail()
                batch.meta_seen.clear()
                for seen in batch.keyed_seen.values():
                    seen.clear()  # flushed above; raw SQL may since have changed them
                batch.touched.clear()
                batch.numbers.clear()
                batch.overlay = OpenEvents()
            self._head = None
            self._audit_tail = None
            self._recent_audit.clear()
            self._meta.clear()
            self._open = None
            for cache in self._keyed_cache.values():
                cache.clear()
            self._receipts_complete.clear()
            self._directives_version += 1
            self._roster_version += 1

    def _require_tx(self) -> WriteBatch:
        batch = self._mine()
        if batch is None:
            raise StoreError("internal: write outside a store transaction")
        return batch

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            batch = self._mine()
            if batch is not None and key in batch.meta_seen:
                return batch.meta_seen[key]
            if key not in self._meta:
                if len(self._meta) > 100_000:  # one key per federated event: keep the cache bounded
                    self._meta.clear()
                row = self._conn.execute("SELECT value FROM store_meta WHERE key = ?", [key]).fetchall()
                self._meta[key] = row[0][0] if row else None
            value = self._meta[key]
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self._require_tx().put_meta(key, value)

    def next_serial(self, kind: str, now: float) -> tuple[str, int]:
        """The next daily serial of ``kind`` (events, directives…): (local date YYYYMMDD, n from 1)."""
        day = local(now).strftime("%Y%m%d")
        with self.tx():
            key = f"{kind}:{day}"
            n = int(self.meta(key, "0") or "0") + 1
            self.set_meta(key, str(n))
        return day, n

    def next_number(self, now: float) -> str:
        """Human event number: <jurisdiction code>-<local date>-<daily serial>, e.g. 500108001-20261124-00001.

        The full code of the issuing tier makes numbers unique across the city (each tier store numbers
        only its own events, and no two tiers share a code). A replica never numbers: its server does."""
        if self.is_replica:
            raise StoreError(f"{self.path} is a replica of {self.tier.value} {self.code} (node {self.node}): "
                             "only its server numbers events; send the report through the replica's outbox")
        day, n = self.next_serial("serial", now)
        return f"{self.code}-{day}-{n:05d}"

    def set_query_threads(self, n: int) -> None:
        """How many threads DuckDB may run one statement on (its default: every core)."""
        with self.lock:
            self._conn.execute(f"SET threads = {max(1, int(n))}")

    def schema_version(self) -> int:
        with self.lock:
            return applied(self._conn)

    def log_change(self, entity: str, key: str, op: str, data: Any, origin: str | None = None,
                   scope: str = "") -> int:
        """Append to the change log. ``data``: the row's dict, or the entity itself (its row is made when the
        log is written). ``scope`` is the jurisdiction code(s) the row belongs to (comma-separated for a
        directive's targets) so servers can filter deltas per caller."""
        batch = self._require_tx()
        return batch.log(self.clock.now(), entity, key, op, data, origin or self.node, scope)

    def head(self) -> int:
        """The change log's head: this transaction's own to the thread running it, the committed one to others."""
        batch = self._mine()
        if batch is not None:
            return batch.head
        head = self._head
        if head is None:
            with self.lock:
                if self._head is None:
                    self._head = self._read_head()
                head = self._head
        return head

    def _read_head(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchall()[0][0])

    def changes_after(self, seq: int, limit: int = 1000, *, with_data: bool = True) -> list[dict[str, Any]]:
        """Change-log rows after ``seq``, in order; ``with_data=False`` leaves each row's JSON unread and
        ``data`` None, for readers that need only which rows changed (the federation pump)."""
        with self.lock:
            rows = self.conn.execute(
                f"SELECT seq, changed_at, entity, key, op, {'data' if with_data else 'NULL'}, origin, scope "
                "FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                [seq, limit],
            ).fetchall()
        return [
            {"seq": r[0], "changed_at": r[1], "entity": r[2], "key": r[3], "op": r[4],
             "data": json.loads(r[5]) if with_data else None, "origin": r[6], "scope": r[7]}
            for r in rows
        ]

    def _remember_audit(self, entries: list[AuditEntry]) -> None:
        """Told a commit's audit entries: kept only while what is remembered stays one run without gaps."""
        if not entries:
            return
        recent = self._recent_audit
        whole = entries[-1].seq - entries[0].seq == len(entries) - 1
        if not whole or (recent and recent[-1].seq + 1 != entries[0].seq):
            recent.clear()  # (a gap: entries written some other way in between) start again after it
        if whole:
            recent.extend(entries)

    def _recent_audit_since(self, seq: int, limit: int) -> list[AuditEntry] | None:
        """Committed entries after ``seq`` from memory, or None when they reach back before what is remembered."""
        recent = self._recent_audit
        if not recent or recent[0].seq > seq + 1:
            return None
        start = seq + 1 - recent[0].seq  # one run without gaps, so the offset is arithmetic
        return list(itertools.islice(recent, start, start + limit))

    def _committed_tail(self) -> tuple[int, str]:
        if self._audit_tail is None:
            self._audit_tail = self._read_tail()
        return self._audit_tail

    def _read_tail(self) -> tuple[int, str]:
        last = self._conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchall()
        return (int(last[0][0]), str(last[0][1])) if last else (0, audit_chain.GENESIS)

    def _select(self, entity: Any, rest: str, params: list[Any], *, flush: bool = True) -> list[Any]:
        """``SELECT <entity's columns> <rest>`` as entities (``rest``: FROM … WHERE … ORDER BY …).
        ``flush=False`` for keyed reads whose staged rows the caller has already looked at."""
        cols = column_names(entity)
        with self.lock:
            conn = self.conn if flush else self._conn
            rows = conn.execute(f"SELECT {', '.join(cols)} {rest}", params).fetchall()
        return [entity(**dict(zip(cols, r))) for r in rows]


class _Tx:
    """``StoreCore.tx()``: a class rather than a generator, as the write path enters one several times per
    command (nested calls join the outer transaction) and a generator's context manager costs ~3 µs each."""

    __slots__ = ("store", "outer")

    def __init__(self, store: StoreCore):
        self.store = store
        self.outer = False

    def __enter__(self) -> StoreCore:
        store = self.store
        store.lock.acquire()
        if store._depth:
            store._depth += 1
            return store
        try:
            store._begin()
        except BaseException:
            store.lock.release()
            raise
        self.outer = True
        return store

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        store = self.store
        try:
            if not self.outer:
                store._depth -= 1
                return
            store._end(exc_type is None)
        finally:
            store.lock.release()
        if exc_type is None:
            store._notify_commit()  # outside the lock (the listeners wake long-polls)
