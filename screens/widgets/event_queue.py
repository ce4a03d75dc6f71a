"""The live event queue pane (事件): colour-sorted rows, ticking SLA countdowns, brief highlights."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input
from textual.widgets.data_table import ColumnKey, RowKey

from cqgov_tui.clock import fmt_duration
from cqgov_tui.console.queue import QueueDiff, QueueRow, diff_queue, sort_key

from .. import theme
from ..messages import EventSelected, OpenEvent

HOT_SECONDS = 3.0
_COLS = ("colour", "number", "status", "title", "category", "place", "left", "flags")
MIN_TITLE = 12
PADDING = 2  # DataTable's default cell padding, one cell each side


def column_widths(width: int, lang: str) -> dict[str, int]:
    """Columns that fit ``width`` cells, in display order. The title keeps at least ``MIN_TITLE``
    cells: the category goes first (it is in the detail view), then the place; narrow tables show
    the colour as its glyph alone."""
    wide = width >= 90
    widths = {"colour": (5 if lang == "zh" else 7) if wide else 2, "number": 19, "status": 6 if lang == "zh" else 10,
              "title": 0, "category": 10, "place": 8 if wide else 6, "left": 7, "flags": 9 if wide else 4}

    def room() -> int:
        return width - sum(widths.values()) - PADDING * len(widths)

    if room() < 24:
        del widths["category"]
    if room() < MIN_TITLE:
        del widths["place"]
    widths["title"] = max(MIN_TITLE, room())
    return widths


class EventTable(DataTable):
    BINDINGS = [Binding("enter", "open_event", "open", show=False, id="open")]

    def update_cells(self, updates: dict[str, dict[str, Text]]) -> None:
        """Many ``update_cell`` calls as one: the same writes, one render invalidation and one refresh
        instead of one per cell (500 changed rows would otherwise queue thousands of refreshes)."""
        if not updates:
            return
        for row_key, cells in updates.items():
            row = self._data[RowKey(row_key)]
            for col, value in cells.items():
                row[ColumnKey(col)] = value
        self._update_count += 1
        self.refresh()

    def action_open_event(self) -> None:
        pane = self.parent
        if isinstance(pane, EventQueue):
            pane.open_current()


class EventQueue(Vertical):
    """Rows are keyed by event id so an update touches only the cells that changed."""

    BINDINGS = [Binding("escape", "close_filter", "back", show=False, id="back")]

    def action_close_filter(self) -> None:
        if self.query_one("#event-filter", Input).display:
            self.hide_filter()

    def __init__(self, strings, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.t = strings
        self.high_contrast = high_contrast
        self.rows: list[QueueRow] = []
        self._by_id: dict[str, QueueRow] = {}
        self._hot: dict[str, float] = {}  # event id → highlighted until
        self._left_text: dict[str, str] = {}
        self.now = 0.0
        self.highlight = True
        self.cols: tuple[str, ...] = _COLS
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder=self.t("events.filter_hint"), id="event-filter")
        table = EventTable(id="event-table", cursor_type="row", zebra_stripes=False)
        yield table

    def on_mount(self) -> None:
        self.query_one("#event-filter").display = False
        self.build_columns()

    def on_resize(self, event) -> None:
        self.build_columns()

    @property
    def table(self) -> EventTable:
        return self.query_one(EventTable)

    def build_columns(self) -> None:
        """Lay the columns out for the table's width (again after a resize that changes them)."""
        width = self.size.width - 1 if self.size.width else 120  # one cell for the scrollbar
        widths = column_widths(width, self.t.lang)
        if widths == self._widths:
            return
        self._widths = widths
        self.cols = tuple(widths)
        table = self.table
        table.clear(columns=True)
        for col in self.cols:
            label = self.t(f"col.{col}") if widths[col] > 2 else ""
            table.add_column(label, key=col, width=widths[col])
        if self.rows:
            self._rebuild(self.rows)

    # ------------------------------------------------------------ cells

    def _cells(self, row: QueueRow) -> list[Text]:
        c = row.colour
        hot = self._hot.get(row.id, 0.0) > self.now
        label = self.t.colour(c.value) if self._widths.get("colour", 0) > 2 else ""
        cells = {
            "colour": Text(f"{theme.GLYPH[c]}{label}", style=theme.colour_style(c, self.high_contrast)),
            "number": Text(row.number, style=theme.HOT if hot else ""),
            "status": Text(self.t.status(row.status.value)), "title": Text(row.title), "category": Text(row.category),
            "place": Text(row.place), "left": self._left(row), "flags": self._flags(row),
        }
        return [cells[col] for col in self.cols]

    def _left(self, row: QueueRow) -> Text:
        left = row.time_left(self.now)
        if left is None:
            return Text("-", style=theme.DIM)
        return Text(fmt_duration(left), style=theme.OVERDUE if left < 0 else "")

    def _flags(self, row: QueueRow) -> Text:
        out = Text()
        if row.overdue(self.now):
            out.append(self.t("flag.overdue"), theme.OVERDUE)
        if row.supervised:
            out.append(("" if not out else " ") + self.t("flag.supervised"), theme.SUPERVISED)
        if row.duplicate_of and not out:
            out.append(self.t("flag.duplicate"), theme.DIM)
        return out

    # ------------------------------------------------------------ updates

    def apply(self, rows: tuple[QueueRow, ...] | list[QueueRow], changed: frozenset[str] = frozenset(),
              now: float | None = None, first: bool = False) -> QueueDiff:
        """Bring the table to ``rows`` touching only what differs; returns what changed."""
        if now is not None:
            self.now = now
        rows = list(rows)
        diff = diff_queue(self.rows, rows)
        if self.highlight and not first:
            for eid in list(diff.added) + [e for e in changed if e in {r.id for r in rows}]:
                self._hot[eid] = self.now + HOT_SECONDS
        if first or len(diff.added) + len(diff.removed) > max(50, len(rows) // 2):
            self._rebuild(rows)
        else:
            self._patch(rows, diff)
        self.rows = rows
        self._by_id = {r.id: r for r in rows}
        self._update_title()
        return diff

    def _rebuild(self, rows: list[QueueRow]) -> None:
        """The baseline path: clear and add every row (also used for large changes)."""
        table = self.table
        current = self.current_id()
        table.clear()
        for r in rows:
            table.add_row(*self._cells(r), key=r.id)
            self._left_text[r.id] = fmt_duration(r.time_left(self.now)) if r.due_at is not None else "-"
        self._restore_cursor(current)

    def _patch(self, rows: list[QueueRow], diff: QueueDiff) -> None:
        table = self.table
        current = self.current_id()
        for eid in diff.removed:
            table.remove_row(eid)
            self._left_text.pop(eid, None)
        new_by_id = {r.id: r for r in rows}
        updates: dict[str, dict[str, Text]] = {}
        for eid in diff.changed:
            cells = self._cells(new_by_id[eid])
            old_cells = table.get_row(eid)
            changed = {col: b for col, a, b in zip(self.cols, old_cells, cells) if a != b}
            if changed:
                updates[eid] = changed
        table.update_cells(updates)
        for eid in diff.added:
            table.add_row(*self._cells(new_by_id[eid]), key=eid)
        if diff.added or diff.reordered:
            rank = {r.number: i for i, r in enumerate(rows)}
            # Re-order through the public sort on the number column: no cell is re-rendered.
            table.sort("number", key=lambda cell: rank.get(getattr(cell, "plain", cell), 1 << 30))
        self._restore_cursor(current)

    def tick(self, now: float) -> None:
        """Once a second: rewrite countdown cells whose text changed and expire highlights."""
        self.now = now
        updates: dict[str, dict[str, Text]] = {}
        expired = [e for e, until in self._hot.items() if until <= now]
        for eid in expired:
            del self._hot[eid]
            row = self._by_id.get(eid)
            if row is not None:
                updates.setdefault(eid, {})["number"] = Text(row.number)
        for row in self.rows:
            if row.due_at is None:
                continue
            text = fmt_duration(row.due_at - now)
            if self._left_text.get(row.id) != text:
                was_late = self._left_text.get(row.id, "").startswith("-")
                self._left_text[row.id] = text
                updates.setdefault(row.id, {})["left"] = self._left(row)
                if was_late != (row.due_at < now):
                    updates[row.id]["flags"] = self._flags(row)
        self.table.update_cells(updates)

    # ------------------------------------------------------------ cursor and title

    def current_id(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # cursor outside the rows during a rebuild
            return None

    def _restore_cursor(self, event_id: str | None) -> None:
        table = self.table
        if event_id and event_id in self._index_map():
            table.move_cursor(row=table.get_row_index(event_id), animate=False, scroll=False)

    def _index_map(self) -> set[str]:
        return {k.value for k in self.table.rows}

    def _update_title(self) -> None:
        pane = self.parent
        if pane is not None and hasattr(pane, "set_count"):
            pane.set_count(len(self.rows))

    def open_current(self) -> None:
        eid = self.current_id()
        if eid:
            self.post_message(OpenEvent(eid))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = self._by_id.get(event.row_key.value) if event.row_key else None
        if row is not None:
            self.post_message(EventSelected(row.id, row.district_code, row.grid_code or row.street_code or row.district_code))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key is not None:
            self.post_message(OpenEvent(event.row_key.value))

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

    def resort_key(self):
        return sort_key
