"""The directives pane (政令): recent directives with delivered/read/acknowledged/executed progress."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from cqgov_tui.clock import fmt_duration
from cqgov_tui.console.directives import PRIORITY_ZH, DirectiveRow

from .. import theme
from ..messages import OpenDirective, PaneFilled


def progress_bar(done: int, total: int, width: int = 8) -> str:
    if total <= 0:
        return "·" * width
    full = round(width * done / total)
    return "█" * full + "░" * (width - full)


class DirectiveList(DataTable):
    BINDINGS = [Binding("enter", "open_directive", "receipts", id="open")]

    def __init__(self, strings, **kw):
        super().__init__(cursor_type="row", **kw)
        self.t = strings
        self.items: tuple[DirectiveRow, ...] = ()
        self.now = 0.0
        self.filled = False  # the directives query's answer is on screen (none is an answer too)

    def on_mount(self) -> None:
        # Every width fixed: an auto-width title column took its width from whichever rows it had measured
        # when the pane first laid out, so under load the titles sometimes vanished (width 0).
        for key, label, width in (("pri", "", 4), ("number", "", 12), ("title", "", 16),
                                  ("bar", "", 8), ("progress", self.t("directives.progress"), 19),
                                  ("deadline", "", 9), ("overdue", "", 10)):
            self.add_column(label, key=key, width=width)

    def _cells(self, d: DirectiveRow) -> list[Text]:
        pri = PRIORITY_ZH.get(d.priority, d.priority) if self.t.lang == "zh" else d.priority[:3]
        pri_style = theme.OVERDUE if d.priority == "urgent" else (theme.SUPERVISED if d.priority == "high" else "")
        left = d.deadline_at - self.now
        dl, rd, ak, ex = d.reached
        return [
            Text(pri, style=pri_style), Text(d.number),
            Text(d.title) if d.for_viewer else Text(f"{d.title} {self.t('directives.not_mine')}", style=theme.DIM),
            Text(progress_bar(ak if d.require_ack else dl, d.total)),
            Text(f"{dl}/{rd}/{ak}/{ex}·{d.total}"),
            Text(fmt_duration(left), style=theme.OVERDUE if left < 0 else ""),
            Text(self.t("directives.overdue", n=d.overdue), style=theme.OVERDUE) if d.overdue else Text(""),
        ]

    def apply(self, rows: tuple[DirectiveRow, ...], now: float) -> None:
        self.now = now
        if not self.filled:
            self.filled = True
            self.post_message(PaneFilled("directives"))
        if rows == self.items:
            return
        old = {r.id: r for r in self.items}
        same_order = [r.id for r in rows] == [r.id for r in self.items]
        if same_order:
            for r in rows:
                if old[r.id] != r:
                    for col, cell in zip(("pri", "number", "title", "bar", "progress", "deadline", "overdue"),
                                         self._cells(r)):
                        self.update_cell(r.id, col, cell)
        else:
            cursor = self.cursor_row
            self.clear()
            for r in rows:
                self.add_row(*self._cells(r), key=r.id)
            if self.row_count:
                self.move_cursor(row=min(cursor, self.row_count - 1), animate=False)
        self.items = rows
        pane = self.parent
        if pane is not None and hasattr(pane, "set_count"):
            pane.set_count(len(rows))

    def tick(self, now: float) -> None:
        self.now = now
        for r in self.items:
            left = r.deadline_at - now
            self.update_cell(r.id, "deadline", Text(fmt_duration(left), style=theme.OVERDUE if left < 0 else ""))

    def action_open_directive(self) -> None:
        if self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            self.post_message(OpenDirective(key))
