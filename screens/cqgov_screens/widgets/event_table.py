"""The event rows as a line-API widget: one cached strip per row, redrawn only when the row changes.

Textual's ``DataTable`` re-renders every visible cell when any cell changes;
with hundreds of rows changing per poll that dominated the update. Here each
row's fixed columns (colour … place) are rendered once into a ``Strip`` and
kept, keyed by the row itself (a frozen ``QueueRow``: a new version compares
unequal) and its highlight. The countdown and flag cells depend on the clock,
so they are rendered per line from ``now`` — a clock tick refreshes only those
cells and rebuilds no row. An update refreshes only the visible lines whose row
(or position) changed; scrolling composes cached strips.

Line 0 is the column header and stays put; row ``i`` is drawn on line
``i - scroll_y + 1``.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from cqgov_tui.clock import fmt_duration
from cqgov_tui.console.queue import QueueRow

from .. import theme

PADDING = 1  # one blank cell each side of every column
CLOCK_COLS = ("left", "flags")  # drawn from the clock on every render, never cached


class EventTable(ScrollView, can_focus=True):
    BINDINGS = [
        Binding("enter", "choose", "open", show=False, id="open"),
        Binding("up,k", "move(-1)", show=False),
        Binding("down,j", "move(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home,g", "jump(0)", show=False),
        Binding("end,G", "jump(-1)", show=False),
    ]
    COMPONENT_CLASSES = {"event-table--header", "event-table--cursor", "event-table--hot"}
    DEFAULT_CSS = """
    EventTable {
        overflow-x: hidden;
        background: $surface;
    }
    EventTable > .event-table--header {
        text-style: bold;
        background: $panel;
    }
    EventTable > .event-table--cursor {
        background: $block-cursor-blurred-background;
    }
    EventTable:focus > .event-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    EventTable > .event-table--hot {
        text-style: reverse;
    }
    """

    class Highlighted(Message):
        def __init__(self, row: QueueRow) -> None:
            super().__init__()
            self.row = row

    class Chosen(Message):
        def __init__(self, event_id: str) -> None:
            super().__init__()
            self.event_id = event_id

    def __init__(self, strings, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.t = strings
        self.high_contrast = high_contrast
        self.rows: list[QueueRow] = []
        self._index: dict[str, int] = {}
        self.cursor_row = 0
        self.now = 0.0
        self.hot: dict[str, float] = {}  # event id → highlighted until
        self.widths: dict[str, int] = {}
        self.labels: dict[str, str] = {}
        self._static_cols: tuple[str, ...] = ()
        self._clock_x = 0  # where the clock cells start on a line
        self._cache: dict[str, tuple[QueueRow, bool, Strip]] = {}
        self._header: Strip | None = None
        self._drawn_clock: dict[str, tuple[str, bool]] = {}  # event id → (countdown text, late) last drawn
        self._clock_segments: dict[tuple, list[Segment]] = {}  # (countdown, late, supervised, duplicate) → cells
        self._lines: dict[str, tuple[Strip, tuple, Strip]] = {}  # event id → (row strip, clock and cursor, line)
        self._base: Style | None = None
        self.renders = 0  # row strips rendered (not taken from the cache): tests and the benchmark read it

    # ------------------------------------------------------------ layout

    def set_columns(self, widths: dict[str, int], labels: dict[str, str]) -> None:
        self.widths = dict(widths)
        self.labels = dict(labels)
        self._static_cols = tuple(c for c in widths if c not in CLOCK_COLS)
        self._clock_x = sum(widths[c] + 2 * PADDING for c in self._static_cols)
        self.invalidate()

    def invalidate(self) -> None:
        """Forget every cached strip (columns, language or styles changed)."""
        self._cache.clear()
        self._header = None
        self._drawn_clock.clear()
        self._clock_segments.clear()
        self._lines.clear()
        self.refresh()

    @property
    def line_width(self) -> int:
        return sum(w + 2 * PADDING for w in self.widths.values())

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def _visible(self) -> int:
        return max(0, self.scrollable_content_region.height - 1)

    # ------------------------------------------------------------ data

    def set_rows(self, rows: list[QueueRow], now: float | None = None) -> None:
        """Show ``rows`` (already sorted); refresh only the visible lines that now show something else."""
        if now is not None:
            self.now = now
        current = self.current_id()
        old = self.rows
        self.rows = list(rows)
        self._index = {r.id: i for i, r in enumerate(self.rows)}
        if current in self._index:
            self.cursor_row = self._index[current]
        self.cursor_row = max(0, min(self.cursor_row, len(self.rows) - 1))
        live = self._index
        for eid in [e for e in self._cache if e not in live]:
            del self._cache[eid]
            self._drawn_clock.pop(eid, None)
            self._lines.pop(eid, None)
        if len(old) != len(self.rows) or self.virtual_size.height != len(self.rows) + 1:
            self.virtual_size = Size(self.line_width, len(self.rows) + 1)
        top = int(self.scroll_offset.y)
        for y in range(1, self._visible + 1):
            i = top + y - 1
            before = old[i] if i < len(old) else None
            after = self.rows[i] if i < len(self.rows) else None
            if before is not after and (before is None or after is None or before != after or
                                        self._hot_changed(before, after)):
                self._refresh_line(y)
        if self.current_id() != current and self.rows:
            self.post_message(self.Highlighted(self.rows[self.cursor_row]))

    def _hot_changed(self, before: QueueRow, after: QueueRow) -> bool:
        cached = self._cache.get(after.id)
        return before.id != after.id or (cached is not None and cached[1] != self._is_hot(after.id))

    def set_hot(self, event_ids, until: float) -> None:
        top, visible = int(self.scroll_offset.y), self._visible
        for eid in event_ids:
            self.hot[eid] = until
            i = self._index.get(eid)
            if i is not None and 1 <= i - top + 1 <= visible:
                self._refresh_line(i - top + 1)

    def _is_hot(self, event_id: str) -> bool:
        return self.hot.get(event_id, 0.0) > self.now

    def tick(self, now: float) -> None:
        """Once a second: redraw the countdown cells whose text changed and end expired highlights."""
        self.now = now
        for eid in [e for e, until in self.hot.items() if until <= now]:
            del self.hot[eid]
            self._refresh_id(eid)
        top = int(self.scroll_offset.y)
        width = self.line_width - self._clock_x
        for y in range(1, self._visible + 1):
            i = top + y - 1
            if i >= len(self.rows):
                break
            row = self.rows[i]
            if row.due_at is None:
                continue
            drawn = self._drawn_clock.get(row.id)
            if drawn is not None and drawn != (fmt_duration(row.due_at - now), row.due_at < now):
                self.refresh(Region(self._clock_x, y, width, 1))

    def _refresh_id(self, event_id: str) -> None:
        i = self._index.get(event_id)
        if i is not None:
            y = i - int(self.scroll_offset.y) + 1
            if 1 <= y <= self._visible:
                self._refresh_line(y)

    def _refresh_line(self, y: int) -> None:
        self.refresh(Region(0, y, max(self.size.width, self.line_width), 1))

    # ------------------------------------------------------------ cells

    def static_cells(self, row: QueueRow) -> dict[str, Text]:
        c = row.colour
        label = self.t.colour(c.value) if self.widths.get("colour", 0) > 2 else ""
        return {
            "colour": Text(f"{theme.GLYPH[c]}{label}", style=theme.colour_style(c, self.high_contrast)),
            "number": Text(row.number),
            "status": Text(self.t.status(row.status.value)),
            "title": _title(row),
            "category": Text(row.category),
            "place": Text(row.place),
        }

    def clock_cells(self, row: QueueRow) -> dict[str, Text]:
        left = row.time_left(self.now)
        if left is None:
            countdown = Text("-", style=theme.DIM)
        else:
            countdown = Text(fmt_duration(left), style=theme.OVERDUE if left < 0 else "")
        flags = Text()
        if row.overdue(self.now):
            flags.append(self.t("flag.overdue"), theme.OVERDUE)
        if row.supervised:
            flags.append(("" if not flags else " ") + self.t("flag.supervised"), theme.SUPERVISED)
        if row.duplicate_of and not flags:
            flags.append(self.t("flag.duplicate"), theme.DIM)
        return {"left": countdown, "flags": flags}

    def get_row(self, event_id: str) -> list[Text]:
        """Every cell of a row as shown, in column order."""
        row = self.rows[self._index[event_id]]
        cells = {**self.static_cells(row), **self.clock_cells(row)}
        return [cells[c] for c in self.widths]

    def _fit(self, cells: dict[str, Text], cols, hot_number: Style | None = None) -> list[Segment]:
        console = self.app.console
        out: list[Segment] = []
        pad = Segment(" " * PADDING)
        for col in cols:
            text = cells[col].copy()
            if col == "number" and hot_number is not None:
                text.stylize(hot_number)
            text.truncate(self.widths[col], overflow="ellipsis", pad=True)
            out.append(pad)
            # ``Text.render`` leaves the text's own style to the caller; spans keep theirs.
            base = console.get_style(text.style) if text.style else None
            out.extend(Segment.apply_style(text.render(console), base))
            out.append(pad)
        return out

    def _row_strip(self, row: QueueRow) -> Strip:
        hot = self._is_hot(row.id)
        cached = self._cache.get(row.id)
        if cached is not None and cached[1] == hot and (cached[0] is row or cached[0] == row):
            return cached[2]
        hot_style = self.get_component_rich_style("event-table--hot", partial=True) if hot else None
        segments = self._fit(self.static_cells(row), self._static_cols, hot_style)
        strip = Strip(segments, self._clock_x)
        self._cache[row.id] = (row, hot, strip)
        self.renders += 1
        return strip

    def _header_strip(self) -> Strip:
        if self._header is None:
            cells = {c: Text(self.labels.get(c, "")) for c in self.widths}
            self._header = Strip(self._fit(cells, tuple(self.widths)), self.line_width)
        return self._header

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None
        self.invalidate()

    def _fit_width(self, strip: Strip, width: int, base: Style) -> Strip:
        if strip.cell_length < width:
            return strip.extend_cell_length(width, base)
        return strip.crop(0, width) if strip.cell_length > width else strip

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self._base is None:  # the widget's CSS style, worked out once per style change, not per line
            self._base = self.rich_style
        base = self._base
        if y == 0:
            strip = self._header_strip().apply_style(self.get_component_rich_style("event-table--header"))
            return self._fit_width(strip.apply_style(base), width, base)
        i = int(self.scroll_offset.y) + y - 1
        if i >= len(self.rows) or not self.widths:
            return Strip.blank(width, base)
        row = self.rows[i]
        left = row.time_left(self.now)
        countdown = "" if left is None else fmt_duration(left)
        late = left is not None and left < 0
        self._drawn_clock[row.id] = (countdown, late)
        static = self._row_strip(row)
        key = (countdown, late, i == self.cursor_row, width, base)
        done = self._lines.get(row.id)
        if done is not None and done[0] is static and done[1] == key:
            return done[2]
        clock_key = (countdown, late, row.supervised, bool(row.duplicate_of))
        clock = self._clock_segments.get(clock_key)
        if clock is None:
            if len(self._clock_segments) > 4096:  # countdowns change every second: keep the cache small
                self._clock_segments.clear()
            clock = self._fit(self.clock_cells(row), [c for c in CLOCK_COLS if c in self.widths])
            self._clock_segments[clock_key] = clock
        strip = Strip([*static, *clock])
        if i == self.cursor_row:
            strip = strip.apply_style(self.get_component_rich_style("event-table--cursor"))
        strip = self._fit_width(strip.apply_style(base), width, base)
        self._lines[row.id] = (static, key, strip)
        return strip

    # ------------------------------------------------------------ cursor

    def current_id(self) -> str | None:
        if not self.rows or not (0 <= self.cursor_row < len(self.rows)):
            return None
        return self.rows[self.cursor_row].id

    def get_row_index(self, event_id: str) -> int:
        return self._index[event_id]

    def move_cursor(self, row: int, scroll: bool = True) -> None:
        if not self.rows:
            return
        row = max(0, min(row, len(self.rows) - 1))
        if row != self.cursor_row:
            top = int(self.scroll_offset.y)
            for old_or_new in (self.cursor_row, row):
                y = old_or_new - top + 1
                if 1 <= y <= self._visible:
                    self._refresh_line(y)
            self.cursor_row = row
            self.post_message(self.Highlighted(self.rows[row]))
        if scroll:
            self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        top, visible = int(self.scroll_offset.y), max(1, self._visible)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self._visible - 1))

    def action_jump(self, where: int) -> None:
        self.move_cursor(len(self.rows) - 1 if where < 0 else where)

    def action_choose(self) -> None:
        eid = self.current_id()
        if eid:
            self.post_message(self.Chosen(eid))

    def on_click(self, event) -> None:
        if event.y < 1:
            return
        i = int(self.scroll_offset.y) + event.y - 1
        if i >= len(self.rows):
            return
        if i == self.cursor_row:
            self.action_choose()
        else:
            self.move_cursor(i, scroll=False)


def _title(row: QueueRow) -> Text:
    """A group's row leads with its size (×28: one alarm storm); a member under an expanded group is indented."""
    if row.group_count > 1:
        return Text.assemble((f"×{row.group_count} ", "bold"), row.title)
    if row.group_leader:
        return Text.assemble(("└ ", theme.DIM), row.title)
    return Text(row.title)
