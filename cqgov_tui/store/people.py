"""People, duty overrides, grid tasks and notifications: staged by key in the unit of work, logged for sync.

Roster rows, tasks and notifications replicate like directives: whole rows,
upserted by key with a version, scoped by jurisdiction (a person's
jurisdiction, a task's grid, a notification's recipient's jurisdiction).
Duty overrides replicate the same way, scoped by their jurisdiction.
"""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

from ..domain.entities import AuditEntry
from ..domain.people import DutyOverride, Notification, Person, Task
from ..domain.schema import to_row
from .base import ROSTER_ENTITIES, StoreCore
from .unit import Rows, register_keyed

for _name, _entity in (("people", Person), ("duty_overrides", DutyOverride), ("tasks", Task),
                       ("notifications", Notification)):
    register_keyed(_name, _entity)

T = TypeVar("T")


def task_scope(task: Task) -> str:
    return task.grid_code or task.street_code or task.district_code


def _within(where: list[str], params: list[Any], column: str, scope_code: str | None) -> None:
    """Restrict a query to a jurisdiction subtree: rows whose ``column`` code starts with ``scope_code``
    (none for the city, 500000, or no scope)."""
    if scope_code and scope_code != "500000":
        where.append(f"starts_with({column}, ?)")
        params.append(scope_code)


class PeopleRows(StoreCore):
    """Roster, tasks and notifications (mixed into ``Store``)."""

    _roster: tuple[int, tuple[Person, ...], tuple[DutyOverride, ...]] | None = None

    # ------------------------------------------------------------ generic keyed reads

    def _staged(self, table: str) -> dict[tuple[Any, ...], Any]:
        batch = self._mine()
        return batch.keyed_seen.get(table, {}) if batch is not None else {}

    def _by_key(self, table: str, entity: type[T], key_col: str, key: str) -> T | None:
        with self.lock:
            hit = self._staged(table).get((key,))
            if hit is not None:
                return hit
            found = self._select(entity, f"FROM {table} WHERE {key_col} = ?", [key], flush=False)
            return found[0] if found else None

    # ------------------------------------------------------------ people

    def put_person(self, person: Person, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("people", (person.user,), person)
            self.log_change("person", person.user, "upsert", to_row(person), origin, person.jurisdiction)

    def put_people(self, people: Iterable[Person], origin: str | None = None) -> int:
        n = 0
        with self.tx():
            for p in people:
                self.put_person(p, origin)
                n += 1
        return n

    def row_origin(self, entity: str, key: str) -> str | None:
        """The node the latest logged change of a row came from (None once compaction dropped its log)."""
        with self.lock:
            row = self.conn.execute("SELECT arg_max(origin, seq) FROM changes WHERE entity = ? AND key = ?",
                                    [entity, key]).fetchall()
        return str(row[0][0]) if row and row[0][0] is not None else None

    def get_person(self, user: str) -> Person | None:
        return self._by_key("people", Person, "user", user)

    def people(self, scope_code: str | None = None, role: str | None = None) -> list[Person]:
        """Roster rows, optionally inside a jurisdiction subtree and of one role, by jurisdiction then rotation."""
        where, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        _within(where, params, "jurisdiction", scope_code)
        if role:
            where.append("role = ?")
            params.append(role)
        return self._select(Person, f"FROM people WHERE {' AND '.join(where)} ORDER BY jurisdiction, role, rotation, "
                                    "user", params)

    def duty_roster(self) -> tuple[tuple[Person, ...], tuple[DutyOverride, ...]]:
        """Every roster row and every duty override, remembered until a commit changes either: the
        notifier asks who is on call for each message it makes, and one read per message held the
        store's lock against the writers (a third of a busy district server's time)."""
        with self.lock:
            batch = self._mine()
            if batch is not None and (batch.entities_seen & ROSTER_ENTITIES):
                return tuple(self.people()), tuple(self.overrides())  # this transaction's own edits
            cached = self._roster
            if cached is None or cached[0] != self._roster_version:
                cached = self._roster = (self._roster_version, tuple(self.people()), tuple(self.overrides()))
            return cached[1], cached[2]

    # ------------------------------------------------------------ duty overrides

    def put_override(self, override: DutyOverride, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("duty_overrides", (override.id,), override)
            self.log_change("duty_override", override.id, "upsert", to_row(override), origin, override.jurisdiction)

    def get_override(self, override_id: str) -> DutyOverride | None:
        return self._by_key("duty_overrides", DutyOverride, "id", override_id)

    def overrides(self, scope_code: str | None = None, until: float | None = None) -> list[DutyOverride]:
        """Overrides inside a jurisdiction subtree (all, or those not ended by ``until``), by start."""
        where, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        _within(where, params, "jurisdiction", scope_code)
        if until is not None:
            where.append("ends_at > ?")
            params.append(until)
        return self._select(DutyOverride, f"FROM duty_overrides WHERE {' AND '.join(where)} ORDER BY starts_at, id",
                            params)

    # ------------------------------------------------------------ tasks

    def put_task(self, task: Task, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("tasks", (task.id,), task)
            self.log_change("task", task.id, "upsert", to_row(task), origin, task_scope(task))

    def put_tasks(self, tasks: Iterable[Task], origin: str | None = None, changed: frozenset[str] | None = None) -> int:
        """Many tasks (a day's generation, a batch of completions) staged as one block: one Arrow table built
        once for the table and the change log, whose rows' JSON DuckDB makes at flush (``unit.Rows``).
        ``changed``: the tasks are stored rows read in this transaction and only these columns changed."""
        block = Rows(Task, list(tasks), changed)
        if not block.entities:
            return 0
        ids = [t.id for t in block.entities]
        with self.tx():
            batch = self._require_tx()
            batch.put_keyed_rows("tasks", [(i,) for i in ids], block)
            batch.log_rows(self.clock.now(), "task", "upsert", block, ids, origin or self.node,
                           [task_scope(t) for t in block.entities])
        return len(ids)

    def get_task(self, task_id: str) -> Task | None:
        return self._by_key("tasks", Task, "id", task_id)

    def get_tasks(self, ids: list[str]) -> dict[str, Task]:
        """Tasks by id in one query (staged ones first)."""
        with self.lock:
            staged = self._staged("tasks")
            out = {i: staged[(i,)] for i in ids if (i,) in staged}
            rest = [i for i in ids if i not in out]
            if rest:
                # A semi-join on the key (list_contains would test every row of the table against the list).
                for t in self._select(Task, "FROM tasks WHERE id IN (SELECT unnest(?::VARCHAR[]))", [rest],
                                      flush=False):
                    out[t.id] = t
        return out

    def tasks(self, *, assignee: str | None = None, scope_code: str | None = None, day: str | None = None,
              open_only: bool = False, event_id: str | None = None, limit: int = 1000) -> list[Task]:
        where, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        if assignee is not None:
            where.append("assignee = ?")
            params.append(assignee)
        _within(where, params, "coalesce(grid_code, street_code, district_code)", scope_code)
        if day is not None:
            where.append("day = ?")
            params.append(day)
        if event_id is not None:
            where.append("event_id = ?")
            params.append(event_id)
        if open_only:
            where.append("status NOT IN ('done', 'cancelled')")
        params.append(limit)
        return self._select(Task, f"FROM tasks WHERE {' AND '.join(where)} "
                                  "ORDER BY coalesce(due_at, created_at), id LIMIT ?", params)

    def task_figures(self, scope_code: str, since: float, until: float) -> dict[str, Any]:
        """Counts and on-time rate of tasks inside a scope, what the runways read (``tasks_*`` metrics).

        ``total``/``done``/``on_time``/``periodic``/``adhoc``/``completion_rate``/``on_time_rate`` are over
        tasks due in [since, until) (cancelled ones aside); ``done_in`` and ``on_time_in`` over tasks
        completed in (since, until] (on time: by their due time, or with none); ``overdue`` counts tasks
        still open at ``until`` whose due time has passed."""
        scope = "" if scope_code == "500000" else scope_code
        with self.lock:
            row = self.conn.execute(
                "SELECT count(*) FILTER (WHERE due), count(*) FILTER (WHERE due AND status = 'done'), "
                "count(*) FILTER (WHERE due AND status = 'done' AND done_at <= due_at), "
                "count(*) FILTER (WHERE due AND kind = 'periodic'), count(*) FILTER (WHERE due AND kind = 'adhoc'), "
                "count(*) FILTER (WHERE fin), count(*) FILTER (WHERE fin AND (due_at IS NULL OR done_at <= due_at)), "
                "count(*) FILTER (WHERE status NOT IN ('done', 'cancelled') AND due_at < ?) "
                "FROM (SELECT *, due_at >= ? AND due_at < ? AND status <> 'cancelled' AS due, "
                "status = 'done' AND done_at > ? AND done_at <= ? AS fin FROM tasks "
                "WHERE starts_with(coalesce(grid_code, street_code, district_code), ?))",
                [until, since, until, since, until, scope]).fetchall()[0]
        total, done, on_time, periodic, adhoc, done_in, on_time_in, overdue = (int(x) for x in row)
        return {"total": total, "done": done, "on_time": on_time, "periodic": periodic, "adhoc": adhoc,
                "completion_rate": round(done / total, 4) if total else None,
                "on_time_rate": round(on_time / done, 4) if done else None,
                "done_in": done_in, "on_time_in": on_time_in, "overdue": overdue}

    def flood_alarms(self) -> list[str]:
        """Ids of the river-level alarm events this node sent a flood warning for (``notify.flood``)."""
        with self.lock:
            rows = self.conn.execute("SELECT substr(key, 14) FROM store_meta WHERE starts_with(key, 'flood_warned:') "
                                     "ORDER BY key").fetchall()
        return [str(r[0]) for r in rows]

    def audit_head(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM audit_log").fetchall()[0][0])

    def audit_since(self, seq: int, limit: int = 500) -> list[AuditEntry]:
        """This node's audit entries after ``seq`` (the notifier follows them)."""
        with self.lock:
            if self._mine() is None:  # outside a transaction only: inside, its own entries are not committed
                recent = self._recent_audit_since(seq, limit)
                if recent is not None:
                    return recent
            return self._select(AuditEntry, "FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", [seq, limit])

    # ------------------------------------------------------------ notifications

    def put_notification(self, n: Notification, origin: str | None = None) -> None:
        with self.tx():
            self._require_tx().put_keyed("notifications", (n.id,), n)
            self.log_change("notification", n.id, "upsert", to_row(n), origin, n.scope)

    def get_notification(self, notification_id: str) -> Notification | None:
        return self._by_key("notifications", Notification, "id", notification_id)

    def notifications(self, *, recipient: str | None = None, message_key: str | None = None,
                      states: Iterable[str] | None = None, due_by: float | None = None, ref: str | None = None,
                      channel: str | None = None, limit: int = 500) -> list[Notification]:
        where, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        for col, value in (("recipient", recipient), ("message_key", message_key), ("ref", ref),
                           ("channel", channel)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if states is not None:
            where.append("list_contains(?, state)")
            params.append(list(states))
        if due_by is not None:
            where.append("next_attempt_at <= ?")
            params.append(due_by)
        params.append(limit)
        return self._select(Notification, f"FROM notifications WHERE {' AND '.join(where)} "
                                          "ORDER BY created_at DESC, id LIMIT ?", params)

    def unacked_messages(self, older_than: float) -> list[Notification]:
        """Notifications that need an answer, created before ``older_than``, whose message nobody answered and
        that were not escalated yet: the escalation sweep's work."""
        return self._select(
            Notification,
            "FROM notifications n WHERE needs_ack AND state IN ('pending', 'sent', 'failed') AND created_at <= ? "
            "AND origin_node = ? AND NOT EXISTS (SELECT 1 FROM notifications m WHERE m.message_key = n.message_key "
            "AND (m.acked_at IS NOT NULL OR m.step > n.step)) ORDER BY created_at, id", [older_than, self.node])
