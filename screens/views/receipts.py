"""Follow one directive's receipts as they arrive (delivered → read → acknowledged → executed)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from cqgov_tui.clock import fmt_local
from cqgov_tui.console.directives import directive_row, receipt_rows

from .. import theme


class ReceiptsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,backspace", "close", "back", id="back")]

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
        head.update(Text(f"{self.t('receipts.title', n=row.number)}  {row.title}\n"
                         f"{self.t('directives.progress')}: {d}/{r}/{a}/{e} · {row.total}", style="bold"))
        cursor = table.cursor_row
        table.clear()
        for rc in receipt_rows(b.store, directive.id, now, b.names):
            state = Text(self.t(f"receipt.{rc.state}"), style=theme.OVERDUE if rc.overdue else "")
            table.add_row(Text(rc.place), state, Text(fmt_local(rc.at) if rc.at else "-"), key=rc.jurisdiction_code)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
