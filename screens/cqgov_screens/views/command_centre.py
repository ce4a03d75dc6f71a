"""The command centre: four panes (事件, 地图, 跑道, 政令) and a status bar.

Wide terminals get a 2×2 grid; below 120×30 one pane shows at a time with a
tab strip (1–4 or Tab switch), so the console works at 80×24.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.screen import Screen
from textual.widgets import Static

from ..widgets.directive_list import DirectiveList
from ..widgets.event_queue import EventQueue
from ..widgets.key_footer import KeyFooter
from ..widgets.pane import Pane
from ..widgets.region_map import RegionMap
from ..widgets.runway_board import RunwayBoard
from ..widgets.status_bar import StatusBar

PANE_IDS = ("pane-events", "pane-map", "pane-runways", "pane-directives")
PANE_KEYS = ("pane.events", "pane.map", "pane.runways", "pane.directives")
NARROW_W, NARROW_H = 120, 30


class CommandCentre(Screen):
    def __init__(self, backend, strings, high_contrast: bool, animate: bool, fill=None, **kw):
        """``fill``: called once the panes are mounted and before the screen is first laid out and painted
        (the app fills them with data it already holds, so the first paint is a full one)."""
        super().__init__(**kw)
        self.backend = backend
        self.t = strings
        self.high_contrast = high_contrast
        self.animate = animate
        self.active = 0
        self._fill = fill
        self._tabs_shown: tuple | None = None

    @property
    def active_bindings(self):
        """The footer's labels in the console's language (bindings are declared with ids as descriptions)."""
        out = {}
        for key, active in super().active_bindings.items():
            b = active.binding
            label = self.t.key(b.description) if self.t.has_key(b.description) else self.t.key(b.id or b.description)
            out[key] = active._replace(binding=dataclasses.replace(b, description=label)) if label != b.description \
                else active
        return out

    def compose(self) -> ComposeResult:
        t = self.t
        yield Static(id="tabs")
        with Container(id="panes"):
            with Pane(1, t("pane.events"), id=PANE_IDS[0], classes="pane"):
                yield EventQueue(t, self.high_contrast, id="events")
            with Pane(2, t("pane.map"), id=PANE_IDS[1], classes="pane"):
                # The registry may still be loading (first frame first); the app attaches it when ready.
                registry = self.backend.registry if self.backend.loaded else None
                yield RegionMap(registry, t, self.high_contrast, self.animate, id="map")
            with Pane(3, t("pane.runways"), id=PANE_IDS[2], classes="pane"):
                yield RunwayBoard(t, self.high_contrast, id="runways")
            with Pane(4, t("pane.directives"), id=PANE_IDS[3], classes="pane"):
                yield DirectiveList(t, id="directives")
        yield StatusBar(t, self.backend.tier, self.backend.code, self.backend.user, id="status")
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self._layout(self.size.width, self.size.height)
        self.query_one("#map", RegionMap).parent.set_subtitle(self.query_one("#map", RegionMap).breadcrumb())
        self.focus_pane(0)
        if self._fill is not None:
            fill, self._fill = self._fill, None
            fill()

    def on_resize(self, event) -> None:
        self._layout(event.size.width, event.size.height)

    @property
    def narrow(self) -> bool:
        return self.has_class("narrow")

    def _layout(self, width: int, height: int) -> None:
        self.set_class(width < NARROW_W or height < NARROW_H, "narrow")
        self._mark_active()

    def _mark_active(self) -> None:
        for i, pid in enumerate(PANE_IDS):
            self.query_one(f"#{pid}").set_class(i == self.active, "active")
        tabs = Text()
        for i, key in enumerate(PANE_KEYS):
            style = "reverse bold" if i == self.active else ""
            tabs.append(f" {i + 1} {self.t(key)} ", style=style)
        # Unchanged tabs are not updated: an update lays the screen out again (every resize called this).
        shown = (tabs.plain, tuple(tabs.spans))
        if shown != self._tabs_shown:
            self._tabs_shown = shown
            self.query_one("#tabs", Static).update(tabs)

    def focus_pane(self, index: int) -> None:
        self.active = index % len(PANE_IDS)
        self._mark_active()
        self.query_one(f"#{PANE_IDS[self.active]}", Pane).focus_inner()

    def on_descendant_focus(self, event) -> None:
        node = event.widget
        while node is not None and not isinstance(node, Pane):
            node = node.parent
        if isinstance(node, Pane) and PANE_IDS.index(node.id) != self.active:
            self.active = PANE_IDS.index(node.id)
            self._mark_active()

    def retitle(self) -> None:
        for pid, key in zip(PANE_IDS, PANE_KEYS):
            self.query_one(f"#{pid}", Pane).set_title(self.t(key))
        self._mark_active()
