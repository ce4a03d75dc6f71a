"""The runways pane (跑道): sectors with five-colour lights; Enter drills to runways,
sub-runways and indicators with values, thresholds, sparkline and time in red; ``h`` opens the
事件热榜 and ``k`` the 考评 ranking (``views/evaluation.py``)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from cqgov_tui.clock import fmt_duration
from cqgov_tui.console.board import BoardNode, sparkline, split_by_kind

from .. import theme
from ..keymap import PANE_KEYS, pane_bindings
from ..messages import PaneFilled


class BoardTable(DataTable):
    BINDINGS = [
        Binding("enter", "drill", "drill", id="drill"),
        Binding("backspace,escape", "up", "up", id="up"),
        *pane_bindings(PANE_KEYS),  # h 事件热榜, k 考评
    ]

    def action_drill(self) -> None:
        self.parent.drill()

    def action_up(self) -> None:
        self.parent.up()

    def action_hot(self) -> None:
        self.app.open_evaluation("hot")

    def action_rank(self) -> None:
        self.app.open_evaluation("rank")


class RunwayBoard(Vertical):
    def __init__(self, strings, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.t = strings
        self.high_contrast = high_contrast
        self.sectors: tuple[BoardNode, ...] = ()
        self.path: list[str] = []  # codes from sector down
        self.filled = False  # a computed board is on screen
        self.rows: list[BoardNode | None] = []  # the table's rows (None: a 城市体征/KPI heading)

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
        self.rows = []
        if nodes and all(n.kind for n in nodes):  # indicators: 城市体征 and KPI apart, each under its heading
            vital, kpi = split_by_kind(nodes)
            groups = [(self.t("runways.vital"), vital), (self.t("runways.kpi"), kpi)]
        else:
            groups = [("", nodes)]
        for heading, group in groups:
            if not group:
                continue
            if heading:
                self.rows.append(None)
                table.add_row(Text(""), Text(heading, style="bold"), Text(""), Text(""), Text(""), Text(""))
            for n in group:
                self.rows.append(n)
                self._add_row(table, n)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)

    def _add_row(self, table, n: BoardNode) -> None:
        style = theme.colour_style(n.colour, self.high_contrast)
        light = Text(theme.GLYPH[n.colour] if n.colour else "·", style=style)
        if n.no_data:
            value = Text(self.t("runways.no_data"), style=theme.DIM)
        else:
            value = Text("" if n.value is None else f"{n.value:g}{n.unit}")
        thr = "/".join(f"{t:g}" for t in n.thresholds)
        red = Text(fmt_duration(n.time_in_red) if n.time_in_red else "",
                   style=theme.OVERDUE if n.time_in_red else "")
        table.add_row(light, Text(n.name, style=theme.DIM if n.no_data else ""), value, Text(thr),
                      Text(sparkline(n.history), style=style), red, key=n.code or None)

    def drill(self) -> None:
        table = self.query_one(BoardTable)
        rows = getattr(self, "rows", [])
        if not rows or table.cursor_row >= len(rows) or rows[table.cursor_row] is None:
            return
        node = rows[table.cursor_row]
        if node.children:
            self.path.append(node.code)
            table.move_cursor(row=0, animate=False)
            self._draw()

    def up(self) -> None:
        if self.path:
            self.path.pop()
            self._draw()
