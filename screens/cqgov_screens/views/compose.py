"""Compose a directive (政令一键智达): targets from the jurisdiction tree, who must answer there
(departments and roles, picked from a list or typed), priority, deadline, require-ack, title and
text; ctrl+s sends."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Checkbox, Input, Label, Select, SelectionList, TextArea, Tree

from cqgov_tui.console.directives import PRIORITIES, DirectiveDraft, audience_choices
from cqgov_tui.scope import CITY_CODE

from ..widgets.status_bar import StatusBar


class TargetTree(Tree):
    BINDINGS = [Binding("space", "toggle_pick", "pick", id="pick")]

    def __init__(self, registry, root_code: str, strings, **kw):
        root_name = registry.get(root_code).name if registry else root_code
        super().__init__(root_name, data=root_code, **kw)
        self.registry = registry
        self.picked: set[str] = set()
        self.t = strings

    def on_mount(self) -> None:
        self._fill(self.root)
        self.root.expand()

    def _fill(self, node) -> None:
        if self.registry is None or node.children:
            return
        level = self.registry.get(node.data).level.value
        for child in self.registry.children(node.data):
            if level == "street":  # grids are not addressed by directives
                break
            node.add(child.name, data=child.code, allow_expand=child.level.value == "district")

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        self._fill(event.node)

    def action_toggle_pick(self) -> None:
        node = self.cursor_node
        if node is None or node.data is None:
            return
        code = node.data
        base = str(node.label).lstrip("✔ ").strip()
        if code in self.picked:
            self.picked.discard(code)
            node.set_label(base)
        else:
            self.picked.add(code)
            node.set_label(f"✔ {base}")
        label = self.parent.query_one("#compose-picked", Label) if self.parent else None
        if label is not None:
            label.update(self.t("compose.picked", n=len(self.picked)))


class ComposeScreen(Screen):
    BINDINGS = [Binding("escape", "back", "back", id="back"), Binding("ctrl+s", "send", "send", id="send")]

    def __init__(self, backend, strings, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.t = strings

    def compose(self) -> ComposeResult:
        t = self.t
        root = self.backend.user.scope_code or CITY_CODE
        with Horizontal(id="compose-body"):
            with Vertical(id="compose-left"):
                yield Label(t("compose.targets"))
                yield TargetTree(self.backend.registry, root, t, id="compose-tree")
                yield Label(t("compose.picked", n=0), id="compose-picked")
                yield Label(t("compose.audience"))
                zh = t.lang == "zh"
                yield SelectionList[str](*[(c.zh if zh else c.en, c.value) for c in
                                           audience_choices(self.backend.catalogue.departments)],
                                         id="compose-audience")
            with Vertical(id="compose-right"):
                yield Label(t("compose.subject"))
                yield Input(id="compose-title")
                yield Label(t("compose.extra"))
                yield Input(id="compose-extra")
                with Horizontal(id="compose-row"):
                    yield Select([(t(f"priority.{p}"), p) for p in PRIORITIES], value="normal", allow_blank=False,
                                 id="compose-priority")
                    yield Input("60", id="compose-deadline", type="integer")
                    yield Checkbox(t("compose.ack"), True, id="compose-ack")
                yield Label(t("compose.text"))
                yield TextArea(id="compose-text")
                yield Label(t("compose.send"), id="compose-hint")
        yield StatusBar(t, self.backend.tier, self.backend.code, self.backend.user, id="compose-status")

    def on_mount(self) -> None:
        self.query_one("#compose-title", Input).focus()
        self.query_one(StatusBar).set_state(link=self.backend.status(), now=self.backend.clock.now())

    def draft(self) -> DirectiveDraft:
        picked = sorted(self.query_one(TargetTree).picked) + sorted(self.query_one(SelectionList).selected)
        extra = [x.strip() for x in self.query_one("#compose-extra", Input).value.replace("，", ",").split(",") if x.strip()]
        try:
            minutes = float(self.query_one("#compose-deadline", Input).value or "60")
        except ValueError:
            minutes = -1.0
        return DirectiveDraft(
            title=self.query_one("#compose-title", Input).value,
            text=self.query_one("#compose-text", TextArea).text,
            targets=tuple(dict.fromkeys(picked + extra)),
            priority=str(self.query_one("#compose-priority", Select).value),
            deadline_minutes=minutes,
            require_ack=self.query_one("#compose-ack", Checkbox).value,
        )

    def action_send(self) -> None:
        self._send(self.draft())

    @work(thread=True, exclusive=True, group="compose")
    def _send(self, draft: DirectiveDraft) -> None:
        outcome = self.backend.send_directive(draft)
        self.app.call_from_thread(self._sent, outcome)

    def _sent(self, outcome) -> None:
        status = self.query_one(StatusBar)
        if not outcome.ok:
            status.say(self.t.refused(outcome.code, outcome.message), error=True)
            return
        self.app.notify(self.t("compose.sent", n=outcome.message))
        # Follow the directive at once; on a server it shows as soon as the sync brings it back.
        self.dismiss(outcome.ref)

    def action_back(self) -> None:
        self.dismiss(None)
