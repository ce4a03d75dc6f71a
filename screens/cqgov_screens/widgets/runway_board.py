"""The runways pane (跑道): sectors with five-colour lights; Enter drills to runways,
sub-runways and indicators with values, thresholds, sparkline and time in red."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from cqgov_tui.clock import fmt_duration
from cqgov_tui.console.board import BoardNode, sparkline

from .. import theme
from ..messages import PaneFilled


class BoardTable(DataTable):
    BINDINGS = [
        Binding("enter", "drill", "drill", id="drill"),
        Binding("backspace,escape", "up", "up", id="up"),
    ]

    def action_drill(self) -> None:
        self.parent.drill()

    def action_up(self) -> None:
        self.parent.up()


class RunwayBoard(Vertical):
    def __init__(self, strings, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.t = strings
        self.high_contrast = high_contrast
        self.sectors: tuple[BoardNode, ...] = ()
        self.path: list[str] = []  # codes from sector down
        self.filled = False  # a computed board is on screen

    def compose(self) -> ComposeResult:
        yield Static("", id="board-crumb")
        yield BoardTable(id="board-table", cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(BoardTable)
        for key, label, width in (("light", "", 4), ("name", "", 18), ("value", self.t("runways.value"), 10),
                                  ("thr", self.t("runways.thresholds"), 16), ("spark", "", 12),
                                  ("red", self.t("runways.red"), 10)):
            table.add_column(label, key=key, width=width)
        self._draw()

    def apply(self, sectors: tuple[BoardNode, ...]) -> None:
        if sectors != self.sectors:
            self.sectors = sectors
            self._draw()
        if not self.filled:
            self.filled = True
            self.post_message(PaneFilled("runways"))

    def level(self) -> tuple[BoardNode, ...]:
        nodes = self.sectors
        for code in self.path:
            hit = next((n for n in nodes if n.code == code), None)
            if hit is None:
                self.path = self.path[: self.path.index(code)]
                break
            nodes = hit.children
        return nodes

    def _draw(self) -> None:
        table = self.query_one(BoardTable)
        crumb = self.query_one("#board-crumb", Static)
        cursor = table.cursor_row
        table.clear()
        nodes = self.level()
        names = []
        level_nodes = self.sectors
        for code in self.path:
            hit = next((n for n in level_nodes if n.code == code), None)
            if hit is None:
                break
            names.append(hit.name)
            level_nodes = hit.children
        crumb.update(Text(" › ".join(names) if names else (self.t("runways.hint") if nodes else self.t("runways.empty")),
                          style=theme.DIM))
        for n in nodes:
            style = theme.colour_style(n.colour, self.high_contrast)
            light = Text(theme.GLYPH[n.colour] if n.colour else "·", style=style)
            value = "" if n.value is None else f"{n.value:g}{n.unit}"
            thr = "/".join(f"{t:g}" for t in n.thresholds)
            red = Text(fmt_duration(n.time_in_red) if n.time_in_red else "",
                       style=theme.OVERDUE if n.time_in_red else "")
            table.add_row(light, Text(n.name), Text(value), Text(thr), Text(sparkline(n.history), style=style), red,
                          key=n.code or None)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def drill(self) -> None:
        nodes = self.level()
        table = self.query_one(BoardTable)
        if not nodes or table.cursor_row >= len(nodes):
            return
        node = nodes[table.cursor_row]
        if node.children:
            self.path.append(node.code)
            table.move_cursor(row=0, animate=False)
            self._draw()

    def up(self) -> None:
        if self.path:
            self.path.pop()
            self._draw()
