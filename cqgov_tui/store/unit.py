"""The unit of work: what one store transaction writes, staged in memory and written in bulk at commit.

A tier server's command used to cost a dozen DuckDB statements (serial read
and write, dedup query, existence check, event and queue rows, change-log row,
audit row), each 0.3–3 ms in the Python client and slower inside a large
transaction. Here a transaction stages row images instead — events, change-log
rows, audit entries, receipts, directives, applied command ids, metadata — and
the commit writes each table with one statement from a registered Arrow table.

The rules each table keeps are kept here, once:

* ``event_queue`` holds exactly the open events: at flush, every staged event
  is upserted into the queue if open and deleted from it if not;
* the change log is gapless: ``seq`` is assigned when a row is staged, from the
  head the store remembers;
* the audit chain is whole: ``prev_hash``/``hash`` are computed when an entry
  is staged, from the remembered tail.

Every staging step records how to undo itself, so a command refused half way
(``rollback_to(mark)``) leaves nothing staged behind. Once staged rows have
been flushed to DuckDB (a reader needed SQL over them), an earlier mark can no
longer be honoured and ``rollback_to`` raises ``FlushedPastMark``: the caller
rolls the whole transaction back instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..domain.entities import AuditEntry, Directive, Event, Receipt, Status
from ..domain.schema import arrow_schema, column_names, to_arrow, to_row
from . import jsontext
from .open_events import OpenEvents

if TYPE_CHECKING:
    import duckdb

EVENT_COLUMNS = column_names(Event)
_TERMINAL = tuple(s.value for s in Status if not s.is_open)
_NEW, _ALL, _WITH_LISTS, _PLAIN_COLS = 0, 1, 2, 3  # how ``_write_events`` writes a staged event
_FEW_META = 4  # metadata keys a commit writes one by one; more go in one bulk upsert
_KEYED: dict[str, type] = {"receipts": Receipt, "directives": Directive}


def register_keyed(name: str, entity: type) -> None:
    """Let an entity module stage whole rows of its table by key (``put_keyed``), written with one
    ``INSERT OR REPLACE`` at flush like directives and receipts (the people module's tables)."""
    _KEYED[name] = entity


def _keyed_tables() -> dict[str, dict[tuple, Any]]:
    return {name: {} for name in _KEYED}
_ABSENT = object()


def _one_block(values: list[Any]) -> Rows | None:
    """The ``Rows`` block when a keyed table's staged values are exactly its rows, in order."""
    first = values[0]
    if first.__class__ is not _InRows:
        return None
    block: Rows = first.rows
    if len(values) == len(block.entities) and all(v.__class__ is _InRows and v.rows is block and v.i == i
                                                  for i, v in enumerate(values)):
        return block
    return None


def _keyed_arrow(entity: type, values: list[Any]) -> Any:
    """The Arrow table of a keyed table's staged values: entities (``put_keyed``) or rows of ``Rows``
    blocks (``put_keyed_rows``). When they are exactly one block's rows, that block's table is reused."""
    import pyarrow as pa

    block = _one_block(values)
    if block is not None:
        return block.arrow()
    return pa.Table.from_pylist([to_row(v.rows.entities[v.i]) if v.__class__ is _InRows else to_row(v)
                                 for v in values], schema=arrow_schema(entity))


class Rows:
    """Many entities of one class staged together (a day's grid tasks, a batch of completions): the flush
    writes their table and their change-log rows from one Arrow table, built once, column by column."""

    def __init__(self, cls: type, entities: list[Any], changed: frozenset[str] | None = None):
        self.cls = cls
        self.entities = entities
        # Set when every entity is a stored row read in this transaction and only these columns changed:
        # the flush then UPDATEs them (DuckDB's INSERT OR REPLACE costs twice an UPDATE of a few columns).
        self.changed = changed
        self._arrow: Any = None

    def arrow(self) -> Any:
        if self._arrow is None:
            self._arrow = to_arrow(self.cls, self.entities)
        return self._arrow


class _InRows:
    """A keyed value staged as row ``i`` of a ``Rows`` block."""

    __slots__ = ("rows", "i")

    def __init__(self, rows: Rows, i: int):
        self.rows, self.i = rows, i


@dataclass
class RowsLog:
    """Change-log rows for a ``Rows`` block (``WriteBatch.log_rows``): ``seq`` from ``first`` in row order,
    the JSON of each row made by DuckDB's ``to_json`` at flush instead of one ``json.dumps`` per row."""

    first: int
    at: float
    entity: str
    op: str
    rows: Rows
    keys: list[str]
    origin: str
    scopes: list[str]


class FlushedPastMark(Exception):
    """The rows to undo are already in DuckDB; only a whole-transaction rollback can undo them."""


@dataclass(frozen=True)
class Mark:
    undo: int
    flushes: int


@dataclass
class WriteBatch:
    """Rows staged by one transaction (see the module docstring)."""

    head: int  # change-log head, staged rows included
    audit_tail: tuple[int, str]  # (seq, hash) of the last audit entry, staged ones included
    events: dict[str, Event] = field(default_factory=dict)  # final image of each touched event
    created: set[str] = field(default_factory=set)  # staged events not yet in the table
    # Per staged update of a stored event, the columns it changed (None: all): only those are written.
    columns: dict[str, frozenset[str] | None] = field(default_factory=dict)
    changes: list[list[Any]] = field(default_factory=list)  # [seq, at, entity, key, op, data dict, origin, scope]
    rows_logs: list[RowsLog] = field(default_factory=list)  # blocks of change-log rows staged by ``log_rows``
    created_change: dict[str, int] = field(default_factory=dict)  # event id → index of its create row
    audit: list[AuditEntry] = field(default_factory=list)
    keyed: dict[str, dict[tuple, Any]] = field(default_factory=_keyed_tables)
    commands: list[tuple] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    undo: list[Callable[[], None]] = field(default_factory=list)
    flushes: int = 0
    # What this transaction wrote, kept across flushes: reads see it, and the store's caches
    # (open-event index, metadata) learn it at commit.
    touched: dict[str, Event] = field(default_factory=dict)
    overlay: OpenEvents = field(default_factory=OpenEvents)  # the open ones among ``touched``, indexed
    numbers: dict[str, str] = field(default_factory=dict)  # number → id of ``touched`` (checked on use)
    meta_seen: dict[str, str] = field(default_factory=dict)
    keyed_seen: dict[str, dict[tuple, Any]] = field(default_factory=_keyed_tables)
    commands_seen: list[tuple] = field(default_factory=list)
    audit_seen: list[AuditEntry] = field(default_factory=list)  # every entry this transaction appended
    entities_seen: set[str] = field(default_factory=set)  # change-log entities written (never undone: a cache
    # told of a change that was rolled back only re-reads)

    # ------------------------------------------------------------ marks

    def mark(self) -> Mark:
        return Mark(len(self.undo), self.flushes)

    def rollback_to(self, mark: Mark) -> None:
        if mark.flushes != self.flushes:
            raise FlushedPastMark()
        while len(self.undo) > mark.undo:
            self.undo.pop()()

    @property
    def dirty(self) -> bool:
        return bool(self.events or self.changes or self.rows_logs or self.audit or self.commands or self.meta
                    or any(self.keyed.values()))

    # ------------------------------------------------------------ staging

    def stage_event(self, event: Event, created: bool, changed: Iterable[str] | None = None) -> None:
        """Stage an event's final image; ``changed``: the columns an update changed (None: any of them)."""
        had, was_created, was_touched = self.events.get(event.id), event.id in self.created, self.touched.get(event.id)
        had_cols = self.columns.get(event.id, _ABSENT)
        if not created and event.id not in self.created:
            before = self.columns.get(event.id, frozenset())
            self.columns[event.id] = None if changed is None or before is None else before | frozenset(changed)
        self.events[event.id] = event
        self.touched[event.id] = event
        self.overlay.put(event)
        had_number = self.numbers.get(event.number)
        self.numbers[event.number] = event.id
        if created:
            self.created.add(event.id)

        def undo() -> None:
            if had is None:
                self.events.pop(event.id, None)
            else:
                self.events[event.id] = had
            self.overlay.drop(event.id)
            if had_number is None:
                self.numbers.pop(event.number, None)
            else:
                self.numbers[event.number] = had_number
            if was_touched is None:
                self.touched.pop(event.id, None)
            else:
                self.touched[event.id] = was_touched
                self.overlay.put(was_touched)
            if not was_created:
                self.created.discard(event.id)
            if had_cols is _ABSENT:
                self.columns.pop(event.id, None)
            else:
                self.columns[event.id] = had_cols  # type: ignore[assignment]

        self.undo.append(undo)

    def log(self, at: float, entity: str, key: str, op: str, data: Any, origin: str, scope: str) -> int:
        """Stage a change-log row; ``data`` is its dict, or an entity whose row is made at flush (an event
        created in this transaction is re-staged by each later change, and only the last image is written)."""
        self.head += 1
        self.changes.append([self.head, at, entity, key, op, data, origin, scope])
        self.entities_seen.add(entity)
        if entity == "event" and op == "create":
            self.created_change[key] = len(self.changes) - 1

        def undo() -> None:
            row = self.changes.pop()
            self.head -= 1
            if self.created_change.get(row[3]) == len(self.changes):
                del self.created_change[row[3]]

        self.undo.append(undo)
        return self.head

    def log_rows(self, at: float, entity: str, op: str, rows: Rows, keys: list[str], origin: str,
                 scopes: list[str]) -> None:
        """One change-log row per row of ``rows``: seqs follow the head as with ``log``; one undo step."""
        if not rows.entities:
            return
        block = RowsLog(self.head + 1, at, entity, op, rows, keys, origin, scopes)
        self.entities_seen.add(entity)
        self.head += len(keys)
        self.rows_logs.append(block)

        def undo() -> None:
            self.rows_logs.remove(block)
            self.head -= len(block.keys)

        self.undo.append(undo)

    def rewrite_create(self, event_id: str, data: Any) -> bool:
        """Fold a change into the still-staged create row of ``event_id`` (one row, final state)."""
        i = self.created_change.get(event_id)
        if i is None:
            return False
        row = self.changes[i]
        before = row[5]
        row[5] = data

        def undo() -> None:
            row[5] = before

        self.undo.append(undo)
        return True

    def append_audit(self, entry: AuditEntry) -> None:
        before = self.audit_tail
        self.audit.append(entry)
        self.audit_seen.append(entry)
        self.audit_tail = (entry.seq, entry.hash)

        def undo() -> None:
            self.audit.pop()
            self.audit_seen.pop()
            self.audit_tail = before

        self.undo.append(undo)

    def put_keyed(self, table: str, key: tuple, row: Any) -> None:
        self._put(self.keyed[table], key, row)
        self._put(self.keyed_seen[table], key, row)

    def put_keyed_rows(self, table: str, keys: list[tuple], rows: Rows) -> None:
        """Stage a block of whole rows of one table by key (reads in this transaction see its entities);
        one undo step for all of them."""
        staged, seen = self.keyed[table], self.keyed_seen[table]
        before = [(staged.get(k, _ABSENT), seen.get(k, _ABSENT)) for k in keys]
        if rows.changed is not None and any(was is not _ABSENT for was, _ in before):
            rows.changed = None  # some rows are not in the table yet (staged, unflushed): write them whole
        staged.update((k, _InRows(rows, i)) for i, k in enumerate(keys))
        seen.update(zip(keys, rows.entities))

        def undo() -> None:
            for k, (was, was_seen) in zip(keys, before):
                for rows_, had in ((staged, was), (seen, was_seen)):
                    if had is _ABSENT:
                        rows_.pop(k, None)
                    else:
                        rows_[k] = had

        self.undo.append(undo)

    def put_meta(self, key: str, value: str) -> None:
        self._put(self.meta, key, value)
        self._put(self.meta_seen, key, value)

    def _put(self, rows: dict, key: Any, value: Any) -> None:
        had = rows.get(key, _ABSENT)
        rows[key] = value

        def undo() -> None:
            if had is _ABSENT:
                rows.pop(key, None)
            else:
                rows[key] = had

        self.undo.append(undo)

    def record_commands(self, records: list[tuple]) -> None:
        n, m = len(self.commands), len(self.commands_seen)
        self.commands.extend(records)
        self.commands_seen.extend(records)

        def undo() -> None:
            del self.commands[n:]
            del self.commands_seen[m:]

        self.undo.append(undo)

    # ------------------------------------------------------------ flush

    def _write_events(self, conn: "duckdb.DuckDBPyConnection") -> None:
        """The staged events: new ones inserted, stored ones updated, and the queue rule (open events are in
        ``event_queue``, the rest are not) kept here, in one place. One Arrow table, built a column at a
        time, feeds every statement; its ``_grp`` column says which statement a row belongs to."""
        import pyarrow as pa

        events = list(self.events.values())
        created, columns = self.created, self.columns
        # DuckDB's cost of an UPDATE grows with the columns it writes (a list column such as ``departments``
        # most of all), so stored rows are updated in groups by what their changes touched: unknown (every
        # column), with ``departments``, without it. 0 is a new row.
        groups: list[int] = []
        touched: dict[int, set[str]] = {_WITH_LISTS: {"version", "updated_at"}, _PLAIN_COLS: {"version", "updated_at"}}
        for e in events:
            if e.id in created:
                groups.append(_NEW)
                continue
            cols = columns.get(e.id)
            if cols is None:
                groups.append(_ALL)
                continue
            g = _WITH_LISTS if "departments" in cols else _PLAIN_COLS
            groups.append(g)
            touched[g] |= cols
        # Found by the statements below by its Python name (a replacement scan: see ``flush``).
        _uow_events = to_arrow(Event, events).append_column("_grp", pa.array(groups, pa.int8()))  # noqa: F841
        present = set(groups)
        if _NEW in present:
            conn.execute("INSERT INTO events SELECT * EXCLUDE (_grp) FROM _uow_events WHERE _grp = 0").fetchall()
        for g in (_ALL, _WITH_LISTS, _PLAIN_COLS):
            if g not in present:
                continue
            names = [c for c in EVENT_COLUMNS if c != "id" and (g == _ALL or c in touched[g])]
            sets = ", ".join(f"{c} = u.{c}" for c in names)
            # DuckDB joins an UPDATE's rows against the whole table, not through its key. Rows whose update
            # left ``reported_at`` alone carry the stored value, and the table is in report order, so a
            # lower bound lets DuckDB skip every older row group (1M events: 16 → 3 ms a statement).
            since = None
            if g != _ALL and "reported_at" not in touched[g]:
                since = min((e.reported_at for e, grp in zip(events, groups) if grp == g), default=None)
            bound = "" if since is None else f" AND events.reported_at >= {float(since)!r}"
            conn.execute(f"UPDATE events SET {sets} FROM (SELECT id, {', '.join(names)} FROM _uow_events "
                         f"WHERE _grp = {g}) u WHERE events.id = u.id{bound}").fetchall()
        if present != {_NEW}:
            # (An event created in this batch cannot be in the queue yet: only the others are deleted.)
            conn.execute("DELETE FROM event_queue WHERE id IN (SELECT id FROM _uow_events WHERE _grp <> 0)").fetchall()
        if any(e.status not in _TERMINAL for e in events):
            conn.execute("INSERT INTO event_queue SELECT * EXCLUDE (_grp) FROM _uow_events "
                         f"WHERE status NOT IN {_TERMINAL}").fetchall()

    def _flush_changes(self, conn: "duckdb.DuckDBPyConnection") -> None:
        """The change log's rows in one statement: those staged one by one (their JSON made here) and the
        blocks of ``log_rows`` (each row's JSON made by DuckDB's ``to_json`` from its Arrow image)."""
        import pyarrow as pa

        parts: list[str] = []
        names: list[str] = []
        try:
            _uow_changes = None  # noqa: F841 - found by its Python name (see ``flush``)
            if self.changes:
                cols = list(zip(*self.changes))
                _uow_changes = pa.table({
                    "seq": pa.array(cols[0], pa.int64()), "changed_at": pa.array(cols[1], pa.float64()),
                    "entity": pa.array(cols[2], pa.string()), "key": pa.array(cols[3], pa.string()),
                    "op": pa.array(cols[4], pa.string()),
                    "data": pa.array([jsontext.text(d if isinstance(d, dict) else to_row(d)) for d in cols[5]],
                                     pa.string()),
                    "origin": pa.array(cols[6], pa.string()), "scope": pa.array(cols[7], pa.string()),
                })
                parts.append("SELECT * FROM _uow_changes")
            if self.rows_logs:
                conn.execute("SELECT 1").fetchall()  # DuckDB refuses ``register`` while a reader's result is open
            for i, block in enumerate(self.rows_logs):
                table = block.rows.arrow()
                n = table.num_rows
                table = (table.append_column("_seq", pa.array(range(block.first, block.first + n), pa.int64()))
                         .append_column("_key", pa.array(block.keys, pa.string()))
                         .append_column("_scope", pa.array(block.scopes, pa.string())))
                names.append(f"_uow_rows_log_{i}")
                conn.register(names[-1], table)
                data = "{" + ", ".join(f"'{c}': t.\"{c}\"" for c in column_names(block.rows.cls)) + "}"
                parts.append(f"SELECT _seq, ?::DOUBLE, ?, _key, ?, to_json({data})::VARCHAR, ?, _scope "
                             f"FROM {names[-1]} t")
            params: list[Any] = []
            for block in self.rows_logs:
                params += [block.at, block.entity, block.op, block.origin]
            conn.execute("INSERT INTO changes " + " UNION ALL ".join(parts), params or None).fetchall()
        finally:
            for name in names:
                conn.unregister(name)

    def flush(self, conn: "duckdb.DuckDBPyConnection") -> None:
        """Write every staged row with one statement per table (inside the caller's DuckDB transaction)."""
        import pyarrow as pa  # bulk paths only; kept off the console's start-up

        def bulk(table: pa.Table, sql: str, params: list[Any] | None = None) -> None:
            # DuckDB finds an Arrow table named in SQL among the caller's Python variables (a "replacement
            # scan"): about 1.3 ms a statement less than registering and dropping a view for it.
            _uow = table  # noqa: F841 - read by name
            conn.execute(sql.format(t="_uow"), params).fetchall()  # drained: DuckDB refuses new work on an open result

        if len(self.meta) <= _FEW_META:
            for meta_key, value in self.meta.items():
                # A few keys (daily serials, cursors): a keyed UPDATE is ~0.5 ms, a bulk upsert ~3 ms.
                if not conn.execute("UPDATE store_meta SET value = ? WHERE key = ?", [value, meta_key]).fetchall()[0][0]:
                    conn.execute("INSERT INTO store_meta VALUES (?, ?)", [meta_key, value]).fetchall()
        else:  # many (a federation pump's per-event markers): one statement
            bulk(pa.table({"key": list(self.meta), "value": list(self.meta.values())}),
                 "INSERT OR REPLACE INTO store_meta SELECT key, value FROM {t}")
        if self.events:
            self._write_events(conn)
        for name, entity in _KEYED.items():
            staged = self.keyed[name]
            if not staged:
                continue
            values = list(staged.values())
            block = _one_block(values)
            key: tuple[str, ...] = getattr(entity, "__key__", ())
            if block is not None and block.changed is not None and len(key) == 1:
                (k,) = key
                written = [k, *sorted(block.changed - {k})]
                sets = ", ".join(f'"{c}" = u."{c}"' for c in written[1:])
                bulk(block.arrow().select(written),
                     f'UPDATE {name} SET {sets} FROM {{t}} u WHERE {name}."{k}" = u."{k}"')
            else:
                bulk(_keyed_arrow(entity, values), f"INSERT OR REPLACE INTO {name} SELECT * FROM {{t}}")
        if self.audit:
            bulk(to_arrow(AuditEntry, self.audit),
                 "INSERT INTO audit_log SELECT * FROM {t}")
        if self.changes or self.rows_logs:
            self._flush_changes(conn)
        if self.commands:
            cols = list(zip(*self.commands))
            bulk(pa.table({
                "id": pa.array(cols[0], pa.string()), "body_hash": pa.array(cols[1], pa.string()),
                "type": pa.array(cols[2], pa.string()), "outcome": pa.array(cols[3], pa.string()),
                "reply": pa.array(cols[4], pa.string()), "actor": pa.array(cols[5], pa.string()),
                "applied_at": pa.array(cols[6], pa.float64()),
            }), "INSERT INTO applied_commands SELECT * FROM {t}")
        self.events.clear()
        self.created.clear()
        self.columns.clear()
        self.changes.clear()
        self.rows_logs.clear()
        self.created_change.clear()
        self.audit.clear()
        for staged in self.keyed.values():
            staged.clear()
        self.commands.clear()
        self.meta.clear()
        self.undo.clear()
        self.flushes += 1
