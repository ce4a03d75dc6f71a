"""My work and my inbox, for the logged-in user: tasks (s accept, o arrive, x done) and notifications (k acknowledge).

Both lists come from ``cqgov_tui.console.people`` and refresh whenever the
store's change log moves (a new task or message arrives by sync at once).
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cqgov_tui.clock import fmt_local
from cqgov_tui.console.people import inbox_rows, on_duty_rows, work_rows

from .. import theme
from ..widgets.status_bar import StatusBar


class MyWorkScreen(Screen):
    BINDINGS = [Binding("escape,backspace", "back", "back", id="back"),
                Binding("s", "task('accept')", "accept", id="task_accept"),
                Binding("o", "task('arrive')", "arrive", id="task_arrive"),
                Binding("x", "task('done')", "done", id="task_done"),
                Binding("k", "ack", "acknowledge", id="notify_ack")]

    def __init__(self, backend, strings, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.t = strings
        self._head = -1

    def compose(self) -> ComposeResult:
        with Vertical(id="work-box"):
            yield Static(id="work-head")
            yield Static(self.t("work.tasks"), classes="work-caption")
            yield DataTable(id="work-tasks", cursor_type="row")
            yield Static(self.t("work.inbox"), classes="work-caption")
            yield DataTable(id="work-inbox", cursor_type="row")
            yield Static(id="work-people-caption", classes="work-caption")
            yield DataTable(id="work-people", cursor_type="row")
        yield StatusBar(self.t, self.backend.tier, self.backend.code, self.backend.user, id="work-status")

    def on_mount(self) -> None:
        tasks = self.query_one("#work-tasks", DataTable)
        for key in ("kind", "title", "place", "status", "due"):
            tasks.add_column(self.t(f"col.{key}"), key=key)
        inbox = self.query_one("#work-inbox", DataTable)
        for key in ("at", "ack", "subject"):
            inbox.add_column(self.t(f"col.{key}"), key=key)
        people = self.query_one("#work-people", DataTable)
        for key in ("user", "name", "role", "place", "state", "seen"):
            people.add_column(self.t(f"col.{key}"), key=key)
        self.reload()
        tasks.focus()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.backend.store.head() != self._head:
            self.reload()
        self.query_one(StatusBar).set_state(link=self.backend.status(), now=self.backend.clock.now())

    def reload(self) -> None:
        b = self.backend
        self._head = b.store.head()
        now = b.clock.now()
        rows = work_rows(b.store, b.user.user, now, b.names)
        messages = inbox_rows(b.store, b.user.user)
        waiting = sum(1 for m in messages if m.needs_ack and not m.acked)
        self.query_one("#work-head", Static).update(Text(
            f"{self.t('work.title', user=b.user.user)}   {self.t('work.unread', n=waiting)}", style="bold"))
        self._fill(self.query_one("#work-tasks", DataTable), [
            (r.task_id, (Text(self.t(f"kind.{r.kind}")), Text(r.title), Text(r.place),
                         Text(self.t(f"task.{r.status}")),
                         Text(fmt_local(r.due_at, True) if r.due_at else "-", style=theme.OVERDUE if r.overdue else "")))
            for r in rows], self.t("work.empty"))
        self._fill(self.query_one("#work-inbox", DataTable), [
            (m.notification_id, (Text(fmt_local(m.at, True)),
                                 Text(self.t("ack.yes") if m.acked else (self.t("ack.wait") if m.needs_ack else "")),
                                 Text(m.subject, style="bold" if m.needs_ack and not m.acked else "")))
            for m in messages], self.t("work.inbox_empty"))
        on = on_duty_rows(b.store, b.user.scope_code, now, b.names)
        total = len(b.store.people(b.user.scope_code))
        self.query_one("#work-people-caption", Static).update(self.t("work.people", n=len(on), total=total))
        self._fill(self.query_one("#work-people", DataTable), [
            (p.user, (Text(p.user), Text(p.name), Text(p.role_zh), Text(p.jurisdiction),
                      Text(self.t(f"person.{p.status}"), style="bold" if p.status == "busy" else ""),
                      Text(fmt_local(p.seen_at) if p.seen_at else "-")))
            for p in on], self.t("work.nobody"))

    @staticmethod
    def _fill(table: DataTable, rows, empty: str) -> None:
        cursor = table.cursor_row
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if table.row_count:
            table.move_cursor(row=min(max(cursor, 0), table.row_count - 1), animate=False)

    def _selected(self, table_id: str) -> str | None:
        table = self.query_one(table_id, DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_task(self, action: str) -> None:
        task_id = self._selected("#work-tasks")
        if task_id is not None:
            self._run(lambda: self.backend.people.task(task_id, action))

    def action_ack(self) -> None:
        notification_id = self._selected("#work-inbox")
        if notification_id is not None:
            self._run(lambda: self.backend.people.ack(notification_id))

    @work(thread=True, exclusive=True, group="work-action")
    def _run(self, call) -> None:
        outcome = call()
        self.app.call_from_thread(self._done, outcome)

    def _done(self, outcome) -> None:
        status = self.query_one(StatusBar)
        if outcome.ok:
            status.say(self.t("work.done", what=outcome.message))
        else:
            status.say(self.t.refused(outcome.code, outcome.message), error=True)
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()
