"""The live event queue pane (事件): colour-sorted rows, ticking SLA countdowns, brief highlights."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input

from cqgov_tui.console.queue import QueueDiff, QueueRow, diff_queue

from ..messages import EventSelected, OpenEvent, PaneFilled
from .event_table import PADDING as _CELL_PAD
from .event_table import EventTable

HOT_SECONDS = 3.0
_COLS = ("colour", "number", "status", "title", "category", "place", "left", "flags")
MIN_TITLE = 12
PADDING = 2 * _CELL_PAD  # blank cells around each column


def column_widths(width: int, lang: str) -> dict[str, int]:
    """Columns that fit ``width`` cells, in display order. The title keeps at least ``MIN_TITLE``
    cells: the category goes first (it is in the detail view), then the place; narrow tables show
    the colour as its glyph alone."""
    wide = width >= 90
    widths = {"colour": (5 if lang == "zh" else 7) if wide else 2, "number": 24, "status": 6 if lang == "zh" else 10,
              "title": 0, "category": 10, "place": 8 if wide else 6, "left": 8 if wide else 7, "flags": 9 if wide else 4}

    def room() -> int:
        return width - sum(widths.values()) - PADDING * len(widths)

    if room() < 24:
        del widths["category"]
    if room() < MIN_TITLE:
        del widths["place"]
    widths["title"] = max(MIN_TITLE, room())
    return widths


class EventQueue(Vertical):
    """The filter box over the event table; turns each new queue into highlights and one table update."""

    BINDINGS = [Binding("escape", "close_filter", "back", show=False, id="back"),
                Binding("space", "toggle_group", "group", show=False, id="group")]

    def action_toggle_group(self) -> None:
        """Space on a group's row lists its members under it (or folds them away again)."""
        row = self.current_row()
        if row is not None and (row.group_count > 1 or row.group_leader):
            self.app.toggle_group(row.group_leader or row.id)

    def action_close_filter(self) -> None:
        if self.query_one("#event-filter", Input).display:
            self.hide_filter()

    def __init__(self, strings, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.t = strings
        self.high_contrast = high_contrast
        self.rows: list[QueueRow] = []
        self.now = 0.0
        self.highlight = True
        self.cols: tuple[str, ...] = _COLS
        self._widths: dict[str, int] = {}
        self.filled = False  # rows from a query made with names loaded are on screen

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.t("events.filter_hint"), id="event-filter")
        yield EventTable(self.t, self.high_contrast, id="event-table")

    def on_mount(self) -> None:
        self.query_one("#event-filter").display = False
        self.build_columns()

    def on_resize(self, event) -> None:
        self.build_columns()

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    def build_columns(self) -> None:
        """Lay the columns out for the pane's width (again after a resize that changes them)."""
        width = self.size.width - 1 if self.size.width else 120  # one cell for the scrollbar
        widths = column_widths(width, self.t.lang)
        if widths == self._widths:
            return
        self._widths = widths
        self.cols = tuple(widths)
        labels = {col: (self.t(f"col.{col}") if widths[col] > 2 else "") for col in self.cols}
        self.table.set_columns(widths, labels)
        if self.rows:
            self.table.set_rows(self.rows, self.now)

    # ------------------------------------------------------------ updates

    def apply(self, rows: tuple[QueueRow, ...] | list[QueueRow], changed: frozenset[str] = frozenset(),
              now: float | None = None, first: bool = False, named: bool = True) -> QueueDiff:
        """Bring the table to ``rows``; only visible lines whose row changed are redrawn. Returns the diff.

        ``named`` is False while rows carry codes (the catalogue and registry still loading)."""
        if now is not None:
            self.now = now
        rows = list(rows)
        diff = diff_queue(self.rows, rows)
        table = self.table
        table.now = self.now
        if self.highlight and not first:
            ids = {r.id for r in rows}
            table.set_hot([*diff.added, *(e for e in changed if e in ids)], self.now + HOT_SECONDS)
        table.set_rows(rows, self.now)
        self.rows = rows
        self._update_title()
        if named and not self.filled:
            self.filled = True
            self.post_message(PaneFilled("events"))
        return diff

    def _rebuild(self, rows: list[QueueRow]) -> None:
        """Redraw every row from scratch (the benchmark's baseline: no cached strip survives)."""
        table = self.table
        table.invalidate()
        table.set_rows(rows, self.now)

    def tick(self, now: float) -> None:
        """Once a second: the table redraws countdown cells whose text changed and ends highlights."""
        self.now = now
        self.table.tick(now)

    # ------------------------------------------------------------ cursor and title

    def current_id(self) -> str | None:
        return self.table.current_id()

    def current_row(self) -> QueueRow | None:
        eid = self.current_id()
        return next((r for r in self.rows if r.id == eid), None) if eid else None

    def _update_title(self) -> None:
        pane = self.parent
        if pane is not None and hasattr(pane, "set_count"):
            pane.set_count(len(self.rows))

    def open_current(self) -> None:
        eid = self.current_id()
        if eid:
            self.post_message(OpenEvent(eid))

    def on_event_table_highlighted(self, message: EventTable.Highlighted) -> None:
        row = message.row
        self.post_message(EventSelected(row.id, row.district_code, row.grid_code or row.street_code or row.district_code))

    def on_event_table_chosen(self, message: EventTable.Chosen) -> None:
        self.post_message(OpenEvent(message.event_id))

    # ------------------------------------------------------------ filter box

    def show_filter(self, text: str = "") -> None:
        box = self.query_one("#event-filter", Input)
        box.display = True
        box.value = text
        box.focus()

    def hide_filter(self) -> None:
        box = self.query_one("#event-filter", Input)
        box.display = False
        self.table.focus()
