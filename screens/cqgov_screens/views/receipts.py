"""Follow one directive's receipts as they arrive (delivered → read → acknowledged → executed), and
answer for the selected recipient: ``r`` read, ``a`` acknowledged, ``x`` executed (a street's staff
answer their own; the server refuses anyone outside the directive's audience, with its reason)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from cqgov_tui.clock import fmt_local
from cqgov_tui.console.directives import audience_text, directive_row, receipt_rows

from .. import theme


class ReceiptsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,backspace", "close", "back", id="back"),
                Binding("r", "answer('read')", "read", id="receipt_read"),
                Binding("a", "answer('acknowledged')", "acknowledge", id="receipt_ack"),
                Binding("x", "answer('executed')", "executed", id="receipt_exec")]

    def __init__(self, backend, directive_id: str, strings, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.directive_id = directive_id
        self.t = strings
        self._head = -1

    def compose(self) -> ComposeResult:
        with Vertical(id="receipts-box"):
            yield Static(id="receipts-head")
            yield DataTable(id="receipts-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key in ("place", "state", "at"):
            table.add_column(self.t(f"receipts.{key}"), key=key)
        self.reload()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.backend.store.head() != self._head:
            self.reload()

    def reload(self) -> None:
        b = self.backend
        self._head = b.store.head()
        now = b.clock.now()
        directive = b.store.get_directive(self.directive_id)
        head = self.query_one("#receipts-head", Static)
        table = self.query_one(DataTable)
        if directive is None:
            head.update(Text(self.t("directives.empty"), style=theme.DIM))
            return
        row = directive_row(directive, b.store.receipts(directive.id), now)
        d, r, a, e = row.reached
        who = audience_text(directive, b.catalogue.departments)
        head.update(Text(f"{self.t('receipts.title', n=row.number)}  {row.title}\n"
                         f"{self.t('directives.progress')}: {d}/{r}/{a}/{e} · {row.total}"
                         + (f"   {self.t('receipts.audience', who=who)}" if who else "")
                         + f"\n{self.t('receipts.keys')}", style="bold"))
        cursor = table.cursor_row
        table.clear()
        for rc in receipt_rows(b.store, directive.id, now, b.names):
            state = Text(self.t(f"receipt.{rc.state}"), style=theme.OVERDUE if rc.overdue else "")
            table.add_row(Text(rc.place), state, Text(fmt_local(rc.at) if rc.at else "-"), key=rc.jurisdiction_code)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def action_answer(self, state: str) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        code = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        self._answer(code, state)

    @work(thread=True, exclusive=True, group="receipt")
    def _answer(self, code: str, state: str) -> None:
        outcome = self.backend.receipt(self.directive_id, code, state)
        self.app.call_from_thread(self._answered, outcome, code, state)

    def _answered(self, outcome, code: str, state: str) -> None:
        if outcome.ok:
            self.app.notify(self.t("receipts.answered", code=code, state=self.t(f"receipt.{state}")))
            self.reload()
        else:
            self.app.notify(self.t.refused(outcome.code, outcome.message), severity="error")

    def action_close(self) -> None:
        self.dismiss(None)
