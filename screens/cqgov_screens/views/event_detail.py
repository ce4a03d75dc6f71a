"""Event detail: fields, SLA stage timers, audit timeline, merge candidates and the role's actions."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from cqgov_tui.clock import fmt_duration, fmt_local
from cqgov_tui.console.detail import EventDetail, deadline_text, event_detail

from .. import theme
from ..keymap import ACTION_KEYS
from ..widgets.status_bar import StatusBar
from .prompt import Prompt


class EventDetailScreen(Screen):
    BINDINGS = [Binding("escape,backspace", "back", "back", id="back")]

    def __init__(self, backend, event_id: str, strings, action_keys: dict[str, str] | None = None, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.event_id = event_id
        self.t = strings
        self.keys = dict(ACTION_KEYS, **(action_keys or {}))
        self.detail: EventDetail | None = None
        self._head = -1
        self.pending: str | None = None  # command id waiting for the server's verdict

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Static(id="detail-head")
            yield Static(id="detail-fields")
            yield Static(id="detail-stages")
            yield Static(id="detail-actions")
            yield Static(id="detail-candidates")
            yield Static(id="detail-nearby")
            yield Static(id="detail-files")
            yield Static(id="detail-timeline")
        yield StatusBar(self.t, self.backend.tier, self.backend.code, self.backend.user, id="detail-status")

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        if self.backend.store.head() != self._head:
            self.reload()
        else:
            self._draw_stages()
        status = self.query_one(StatusBar)
        link = self.backend.status()
        status.set_state(link=link, now=self.backend.clock.now())
        if self.pending:
            for rej in link.rejections:
                if rej.command_id == self.pending:
                    status.say(self.t.refused(rej.code, rej.reason), error=True)
                    self.pending = None

    def reload(self) -> None:
        b = self.backend
        self._head = b.store.head()
        event = b.store.get_event(self.event_id)
        self.detail = event_detail(b.store, self.event_id, b.user, b.names, b.catalogue,
                                   owner=b.owner(event) if event is not None else None)
        self._draw()

    # ------------------------------------------------------------ drawing

    def _draw(self) -> None:
        t, d = self.t, self.detail
        head = self.query_one("#detail-head", Static)
        if d is None:
            head.update(Text(t("detail.missing"), style=theme.OVERDUE))
            return
        row = d.row
        title = Text()
        title.append(f"{theme.GLYPH[row.colour]} {t.colour(row.colour.value)} ", style=theme.colour_style(row.colour))
        title.append(f"{row.number}  ", style="bold")
        title.append(row.title, style="bold")
        title.append(f"   {t.status(row.status.value)}")
        if row.supervised:
            title.append(f"  {t('flag.supervised')}", style=theme.SUPERVISED)
        owner = self.backend.owner(d.event)
        if owner:
            title.append(f"\n{t('detail.owner', node=owner)}", style=theme.DIM)
        head.update(title)
        fields = Table.grid(padding=(0, 2))
        fields.add_column(style="bold", no_wrap=True)
        fields.add_column()
        for key, value in d.fields:
            if key == "status":
                value = t.status(value)
            elif key == "colour":
                value = t.colour(value)
            fields.add_row(Text(t(f"field.{key}")), Text(value))
        self.query_one("#detail-fields", Static).update(fields)
        self._draw_stages()
        self._draw_actions()
        self._draw_candidates()
        self._draw_nearby()
        self._draw_files()
        self._draw_timeline()

    def _draw_stages(self) -> None:
        d = self.detail
        if d is None:
            return
        now = self.backend.clock.now()
        out = Text(f"{self.t('detail.stages')}\n", style="bold")
        for st in d.stages:
            label = st.label_zh if self.t.lang == "zh" else st.label
            out.append(f"  {label:<8} {deadline_text(st.due_at, now)}  ")
            if st.reached_at is not None:
                out.append(self.t("detail.late") if st.late else self.t("detail.reached"),
                           style=theme.OVERDUE if st.late else theme.DIM)
                out.append(f" {fmt_local(st.reached_at)}")
            else:
                left = st.left(now)
                out.append(fmt_duration(left), style=theme.OVERDUE if left < 0 else "bold")
            out.append("\n")
        self.query_one("#detail-stages", Static).update(out)

    def _draw_actions(self) -> None:
        d = self.detail
        out = Text(f"{self.t('detail.actions')}\n", style="bold")
        if not d.actions:
            out.append(f"  {self.t('detail.no_actions')}\n", style=theme.DIM)
        for a in d.actions:
            key = self.keys.get(a.action, "?")
            out.append(f"  [{key}] ", style="bold")
            out.append(f"{self.t.action(a.action, a.zh)}   ")
        self.query_one("#detail-actions", Static).update(out)

    def _draw_candidates(self) -> None:
        d = self.detail
        out = Text()
        if d.candidates:
            out.append(f"{self.t('detail.candidates')}\n", style="bold")
            for row, score in d.candidates:
                out.append(f"  {theme.GLYPH[row.colour]} ", style=theme.colour_style(row.colour))
                out.append(f"{row.number}  {row.title}  {self.t.status(row.status.value)}  {score:.2f}\n")
        self.query_one("#detail-candidates", Static).update(out)

    def _draw_nearby(self) -> None:
        """Who is on duty near the event (issue 14): ``t`` dispatches it to one of them."""
        from cqgov_tui.console.people import nearby_rows

        d = self.detail
        self.nearby = nearby_rows(self.backend.store, d.event, self.backend.clock.now()) if d else []
        out = Text(f"{self.t('detail.nearby')}\n", style="bold")
        if not self.nearby:
            out.append(f"  {self.t('detail.nobody')}\n", style=theme.DIM)
        for p in self.nearby:
            far = f"{p.distance_m / 1000:.1f} km" if p.distance_m is not None else "-"
            out.append(f"  {p.user:<14} {p.name:<8} {p.role_zh:<5} {p.status:<8} {far}\n")
        self.query_one("#detail-nearby", Static).update(out)

    def _draw_files(self) -> None:
        """The event's attachments (issue 14): ``p`` opens one with the system viewer, fetched on first open."""
        from cqgov_tui.console.attachments import attachment_rows

        d = self.detail
        self.files = attachment_rows(self.backend.store, d.event.id) if d else []
        out = Text(f"{self.t('detail.files')}\n", style="bold")
        if not self.files:
            out.append(f"  {self.t('detail.no_files')}\n", style=theme.DIM)
        for f in self.files:
            where = "" if f.held else f"  ({self.t('detail.remote_file')})"
            out.append(f"  {f.n}. {f.name}  {f.mime}  {f.size / 1024:.0f} KiB  {f.kind}  {f.added_by}{where}\n")
        self.query_one("#detail-files", Static).update(out)

    @work(thread=True, exclusive=True, group="detail-file")
    def open_file(self, n: int) -> None:
        from cqgov_tui.console.attachments import open_nth
        from cqgov_tui.errors import CqgovError

        try:
            cmd = open_nth(self.backend, self.event_id, n, getattr(self.app, "launch_viewer", None))
        except CqgovError as exc:
            self.app.call_from_thread(self._file_done, str(exc).splitlines()[0] or type(exc).__name__, True)
            return
        self.app.call_from_thread(self._file_done, self.t("file.opened", cmd=" ".join(cmd)), False)

    def _file_done(self, message: str, error: bool) -> None:
        self.query_one(StatusBar).say(message, error=error)
        self._draw_files()

    def _draw_timeline(self) -> None:
        d = self.detail
        out = Text(f"{self.t('detail.timeline')}\n", style="bold")
        for e in d.timeline:
            out.append(f"  {fmt_local(e.at)}  ", style=theme.DIM)
            out.append(f"{e.action:<10}", style="bold")
            if e.to_status and e.to_status != e.from_status:
                out.append(f"{self.t.status(e.from_status) if e.from_status else '·'} → {self.t.status(e.to_status)}  ")
            out.append(f"{e.actor}/{e.role}@{e.tier}  ")
            out.append(e.note)
            out.append("\n")
        self.query_one("#detail-timeline", Static).update(out)

    # ------------------------------------------------------------ actions

    def on_key(self, event) -> None:
        d = self.detail
        if d is None:
            return
        if event.key == "t":  # dispatch to a person on duty nearby (issue 14)
            event.stop()
            first = self.nearby[0].user if getattr(self, "nearby", None) else ""
            self.app.push_screen(Prompt(self.t("prompt.person"), first),
                                 lambda v: v and self._dispatch_to(v.strip()))
            return
        if event.key == "p" and getattr(self, "files", None):  # open an attachment (issue 14)
            event.stop()
            self.app.push_screen(Prompt(self.t("prompt.file"), "1"),
                                 lambda v: v and v.strip().isdigit() and self.open_file(int(v.strip())))
            return
        by_key = {k: a for a, k in self.keys.items()}
        action = by_key.get(event.key)
        if action is None:
            return
        spec = next((a for a in d.actions if a.action == action), None)
        if spec is None:
            return
        event.stop()
        self.start_action(spec)

    def start_action(self, spec) -> None:
        label = self.t.action(spec.action, spec.zh)
        if spec.needs_target:
            default = self.detail.candidates[0][0].number if self.detail.candidates else ""
            self.app.push_screen(Prompt(self.t("prompt.target"), default),
                                 lambda v: v and self.perform(spec.action, note=f"merge into {v}", target=v.strip()))
        elif spec.action == "dispatch":
            cat = self.backend.catalogue.categories.get(self.detail.event.category_code) if self.backend.catalogue else None
            default = ",".join([cat.department_code, *cat.co_departments]) if cat else ""
            self.app.push_screen(Prompt(self.t("prompt.departments"), default), lambda v: v is not None and self.perform(
                "dispatch", departments=[x.strip() for x in v.replace("，", ",").split(",") if x.strip()]))
        elif spec.action == "supervise":
            self.app.push_screen(Prompt(self.t("prompt.supervise")), lambda v: v and self.supervise(v))
        elif spec.action == "callback":
            self.app.push_screen(Prompt(self.t("prompt.callback")),
                                 lambda v: v is not None and self.perform("callback", note=v))
        elif spec.needs_note:
            self.app.push_screen(Prompt(self.t("prompt.reason", action=label)),
                                 lambda v: v is not None and self.perform(spec.action, note=v))
        else:
            self.perform(spec.action)

    @work(thread=True, exclusive=True, group="detail-action")
    def _dispatch_to(self, user: str) -> None:
        outcome = self.backend.people.dispatch(self.event_id, user)
        self.app.call_from_thread(self._done, outcome)

    def perform(self, action: str, note: str = "", departments=None, target: str | None = None) -> None:
        self._perform(action, note, departments, target)

    @work(thread=True, exclusive=True, group="detail-action")
    def _perform(self, action, note, departments, target) -> None:
        outcome = self.backend.act(self.event_id, action, note=note, departments=departments, target=target)
        self.app.call_from_thread(self._done, outcome)

    def supervise(self, note: str) -> None:
        """督办 (``u``): a directive to the tier that owns the event, through the backend."""
        self._supervise(note.strip())

    @work(thread=True, exclusive=True, group="detail-action")
    def _supervise(self, note: str) -> None:
        outcome = self.backend.supervise(self.event_id, note)
        self.app.call_from_thread(self._done, outcome)

    def _done(self, outcome) -> None:
        status = self.query_one(StatusBar)
        if not outcome.ok:
            status.say(self.t.refused(outcome.code, outcome.message), error=True)
        elif outcome.pending:
            from cqgov_tui.engine.lifecycle import RULES

            self.pending = outcome.command_id
            rule = RULES.get(outcome.message)  # an action queued is named in the console's language
            status.say(self.t("action.queued", what=self.t.action(rule.action, rule.zh) if rule else outcome.message))
        else:
            status.say(self.t("action.sent", what=outcome.message))
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()
