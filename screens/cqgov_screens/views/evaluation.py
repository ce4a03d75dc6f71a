"""事件热榜 and 考评, opened from the runways pane (``h`` / ``k``), ``:hot`` / ``:rank`` or the palette.

One screen, two views: the hot list (most reported, open longest, most
escalated, most supervised; Enter opens the event) and the ranking of
districts, streets or departments (``b`` cycles the unit). ``p`` cycles the
period (24h, 7d, 30d); ``h`` and ``k`` switch between the views. The data is
computed on a worker (``cqgov_tui.console.evaluation``); ``filled`` says a
result is on screen.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cqgov_tui.console.evaluation import HOT_KINDS, ViewState, hot_value, load, pct, view_scope
from cqgov_tui.domain.colour import Colour

from .. import theme
from ..widgets.status_bar import StatusBar

RANK_COLUMNS = ("pos", "unit", "events", "response", "overdue", "closure", "rework", "satisfaction", "score")
HOT_COLUMNS = ("pos", "colour", "number", "title", "category", "place", "status", "value")


class EvaluationScreen(Screen):
    BINDINGS = [Binding("escape,backspace", "back", "back", id="back"),
                Binding("p", "period", "period", id="eval_period"),
                Binding("b", "unit", "unit", id="eval_unit"),
                Binding("h", "mode('hot')", "hot_list", id="eval_hot"),
                Binding("k", "mode('rank')", "ranking", id="eval_rank")]

    def __init__(self, backend, strings, state: ViewState, high_contrast: bool = False, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.t = strings
        self.state = state
        self.high_contrast = high_contrast
        self.result = None  # the Ranking or HotList on screen
        self.filled = False
        self.row_events: list[str | None] = []  # hot list: the event of each row (None: a heading)

    @property
    def active_bindings(self):
        """Footer labels in the console's language (as on the command centre)."""
        out = {}
        for key, active in super().active_bindings.items():
            b = active.binding
            label = self.t.key(b.description) if self.t.has_key(b.description) else b.description
            out[key] = active._replace(binding=dataclasses.replace(b, description=label))
        return out

    def compose(self) -> ComposeResult:
        with Vertical(id="eval-box"):
            yield Static(id="eval-head")
            yield DataTable(id="eval-table", cursor_type="row", zebra_stripes=False)
        yield StatusBar(self.t, self.backend.tier, self.backend.code, self.backend.user, id="eval-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._head()
        self.query_one(StatusBar).set_state(link=self.backend.status(), now=self.backend.clock.now())
        self.query_one(DataTable).focus()
        self.reload()

    # ------------------------------------------------------------ data

    def reload(self) -> None:
        self.filled = False
        self._load(self.state)

    @work(thread=True, exclusive=True, group="evaluation", exit_on_error=False)
    def _load(self, state: ViewState) -> None:
        try:
            result = load(self.backend, state)
        except Exception as exc:  # a query on a busy store: say so, keep the screen
            self.app.call_from_thread(self._failed, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        self.app.call_from_thread(self._show, state, result)

    def _failed(self, why: str) -> None:
        self.query_one(StatusBar).say(self.t("error.worker", e=why), error=True)

    def _show(self, state: ViewState, result) -> None:
        if state != self.state:
            return  # the user moved on while this one was computed
        self.result = result
        if state.mode == "rank":
            self._draw_rank(result)
        else:
            self._draw_hot(result)
        self._head()
        self.filled = True

    # ------------------------------------------------------------ drawing

    def _head(self) -> None:
        t, s = self.t, self.state
        title = t("eval.hot_title") if s.mode == "hot" else t("eval.rank_title", unit=t(f"eval.by.{s.by}"))
        scope = self.backend.names.place(view_scope(self.backend))
        text = Text()
        text.append(title, style="bold")
        text.append(f"   {t('eval.scope')} {scope}   {t('eval.period')} {t(f'eval.period.{s.period}')}")
        if self.result is not None:
            n = len(self.result.ranks) if s.mode == "rank" else sum(len(v) for v in self.result.lists.values())
            text.append(f"   {t('events.count', n=n)}", style=theme.DIM)
        text.append(f"\n{t('eval.keys_rank' if s.mode == 'rank' else 'eval.keys_hot')}", style=theme.DIM)
        self.query_one("#eval-head", Static).update(text)

    def _columns(self, table: DataTable, keys: tuple[str, ...]) -> None:
        table.clear(columns=True)
        for key in keys:
            table.add_column(self.t(f"eval.col.{key}"), key=key)

    def _draw_rank(self, ranking) -> None:
        table = self.query_one(DataTable)
        self._columns(table, RANK_COLUMNS)
        self.row_events = []
        for r in ranking.ranks:
            score = Text(pct(r.score), style="bold")
            table.add_row(Text(str(r.position), justify="right"), Text(r.name), Text(str(r.events), justify="right"),
                          Text(pct(r.response_min), justify="right"), Text(pct(r.overdue_rate), justify="right"),
                          Text(pct(r.closure_rate), justify="right"), Text(pct(r.rework_rate), justify="right"),
                          Text(pct(r.satisfaction), justify="right"), score, key=r.code)
        if not ranking.ranks:
            table.add_row(Text(""), Text(self.t("eval.empty"), style=theme.DIM), *[Text("")] * (len(RANK_COLUMNS) - 2))

    def _draw_hot(self, hot) -> None:
        table = self.query_one(DataTable)
        self._columns(table, HOT_COLUMNS)
        self.row_events = []
        rest = [Text("")] * (len(HOT_COLUMNS) - 3)  # the cells after a heading's
        for kind in HOT_KINDS:
            items = hot.lists.get(kind, [])
            self.row_events.append(None)
            table.add_row(Text(""), Text(""), Text(self.t(f"eval.hot.{kind}"), style="bold"), *rest)
            for n, i in enumerate(items, 1):
                colour = _colour(i.colour)
                style = theme.colour_style(colour, self.high_contrast)
                self.row_events.append(i.event_id)
                table.add_row(Text(str(n), justify="right"), Text(theme.GLYPH[colour] if colour else "·", style=style),
                              Text(i.number), Text(i.title), Text(i.category), Text(i.place),
                              Text(self.t.status(i.status)), Text(hot_value(kind, i.value), justify="right", style="bold"))
            if not items:
                self.row_events.append(None)
                table.add_row(Text(""), Text(""), Text(self.t("eval.none"), style=theme.DIM), *rest)
        first = next((i for i, eid in enumerate(self.row_events) if eid), None)
        if first is not None:
            table.move_cursor(row=first, animate=False)

    # ------------------------------------------------------------ keys

    def _set(self, state: ViewState) -> None:
        self.state = state
        self.result = None
        self._head()
        self.reload()

    def action_period(self) -> None:
        self._set(self.state.next_period())

    def action_unit(self) -> None:
        if self.state.mode == "rank":
            self._set(self.state.next_unit())

    def action_mode(self, mode: str) -> None:
        if mode != self.state.mode:
            self._set(self.state.switched(mode))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a hot-list event opens its detail."""
        if self.state.mode != "hot" or event.cursor_row >= len(self.row_events):
            return
        event_id = self.row_events[event.cursor_row]
        if event_id:
            self.app.open_event(event_id)

    def action_back(self) -> None:
        self.app.pop_screen()


def _colour(value: str) -> Colour | None:
    try:
        return Colour(value)
    except ValueError:
        return None
