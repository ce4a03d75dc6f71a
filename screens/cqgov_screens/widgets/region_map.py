"""The map pane (地图): the core's raster of real shapes, coloured by each region's worst open event."""

from __future__ import annotations

from collections import Counter

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widget import Widget

from cqgov_tui.console.mapview import MapCanvas, MapState, rasterise
from cqgov_tui.domain.colour import Colour

from .. import theme
from ..messages import MapDrilled, PaneFilled


class RegionMap(Widget, can_focus=True):
    BINDINGS = [
        Binding("left,h", "move(-1,0)", show=False),
        Binding("right,l", "move(1,0)", show=False),
        Binding("up,k", "move(0,-1)", show=False),
        Binding("down,j", "move(0,1)", show=False),
        Binding("enter", "drill", "drill", id="drill"),
        Binding("backspace,escape", "up", "up", id="up"),
    ]

    def __init__(self, registry, strings, high_contrast: bool = False, animate: bool = True, **kw):
        """``registry`` may be None until it has loaded (``attach``): the map draws nothing meanwhile."""
        super().__init__(**kw)
        self.registry = registry
        self.t = strings
        self.state = MapState(registry)
        self.fill: dict[str, Colour] = {}
        self.high_contrast = high_contrast
        self.animate = animate
        self.now = 0.0
        self._canvas: MapCanvas | None = None
        self._blink = False
        self.filled = False  # shapes drawn and coloured from a fill computed for the level shown
        self._has_fill = False

    # ------------------------------------------------------------ data

    def attach(self, registry) -> None:
        """The registry finished loading after the first frame: draw the shapes."""
        if registry is not None and self.registry is None:
            self.registry = self.state.registry = registry
            self._canvas = None
            self.refresh()
            pane = self.parent
            if pane is not None and hasattr(pane, "set_subtitle"):
                pane.set_subtitle(self.breadcrumb())
            self._report_filled()

    def _report_filled(self) -> None:
        if not self.filled and self._has_fill and self.registry is not None:
            self.filled = True
            self.post_message(PaneFilled("map"))

    def level(self):
        """The level shown, or None while the registry is loading."""
        return self.state.level() if self.registry is not None else None

    def canvas(self) -> MapCanvas | None:
        w, h = self.size.width, max(1, self.size.height - 1)
        if w < 8 or h < 4 or self.registry is None:
            return None
        c = self._canvas
        if c is None or (c.code, c.width, c.height) != (self.state.code, w, h):
            self._canvas = c = rasterise(self.registry, self.state.code, w, h)
        return c

    def set_fill(self, fill: dict[str, Colour]) -> None:
        """Colours per region of the level shown (they may come before the registry: drawn once it is in)."""
        if fill != self.fill:
            self.fill = dict(fill)
            self.refresh()
        self._has_fill = True
        self._report_filled()

    def flash(self, codes: list[str], now: float) -> None:
        before = set(self.state.flashes)
        self.state.flash(codes, now)
        if set(self.state.flashes) != before:
            self.refresh()

    def tick(self, now: float) -> None:
        had = bool(self.state.flashes)
        self.now = now
        self._blink = not self._blink
        if had:
            self.state.flashing(now)
            self.refresh()

    def show_event(self, district: str, place_code: str) -> None:
        """Highlight the region of the selected event at the level being shown."""
        if self.registry is None:
            return
        child = self.state.select_child_of(place_code) if place_code else None
        if child and child != self.state.selected:
            self.state.selected = child
            self.refresh()

    # ------------------------------------------------------------ keys

    def action_move(self, dx: int, dy: int) -> None:
        c = self.canvas()
        if c is not None:
            self.state.move(c, dx, dy)
            self.refresh()

    def action_drill(self) -> None:
        if self.registry is not None and self.state.drill():
            self._after_level_change()

    def action_up(self) -> None:
        if self.state.up():
            self._after_level_change()

    def drill_to(self, code: str) -> None:
        """``:drill CODE`` — jump straight to a region (its parent chain becomes the path)."""
        if self.registry is None:
            return
        chain = [a.code for a in self.registry.ancestors(code)] + [code]
        self.state.path = chain
        self.state.selected = None
        self._after_level_change()

    def _after_level_change(self) -> None:
        self._canvas = None
        self.refresh()
        self.post_message(MapDrilled())
        pane = self.parent
        if pane is not None and hasattr(pane, "set_subtitle"):
            pane.set_subtitle(self.breadcrumb())

    def breadcrumb(self) -> str:
        if self.registry is None:
            return ""
        names = []
        for code in self.state.path:
            try:
                names.append(self.registry.get(code).name)
            except Exception:
                names.append(code)
        return " › ".join(names)

    # ------------------------------------------------------------ drawing

    def render(self) -> Text:
        c = self.canvas()
        if c is None:
            return Text("")
        flashing = self.state.flashing(self.now)
        selected = self.state.selected
        region_colour = [self.fill.get(r.code) for r in c.regions]
        out = Text(no_wrap=True, overflow="crop")
        labels = self._labels(c)
        for y, row in enumerate(c.cells):
            x = 0
            while x < c.width:
                label = labels.get((x, y))
                if label is not None:
                    idx = row[x]
                    style = theme.colour_style(region_colour[idx], self.high_contrast) if idx >= 0 else theme.DIM
                    if idx >= 0 and c.regions[idx].code == selected:
                        style = style + theme.SELECTED
                    out.append(label, style=style)
                    x += cell_len(label)
                    continue
                idx = row[x]
                if idx < 0:
                    out.append(" ")
                else:
                    out.append(*self._cell(c, row, x, y, idx, region_colour[idx], selected, flashing))
                x += 1
            out.append("\n")
        out.append(self._legend(c), style=theme.DIM)
        return out

    def _cell(self, c: MapCanvas, row, x: int, y: int, idx: int, colour, selected, flashing):
        code = c.regions[idx].code
        edge = (x + 1 < c.width and row[x + 1] != idx) or (y + 1 < c.height and c.cells[y + 1][x] != idx)
        glyph = "·" if colour is None else theme.MAP_GLYPH[colour]
        if edge:
            glyph = "·" if colour is None else "▪"
        style = theme.colour_style(colour, self.high_contrast)
        if code in flashing:
            style = style + (theme.FLASH if self.animate else theme.FLASH_STILL)
        elif code == selected:
            style = style + theme.SELECTED
        return glyph, style

    def _labels(self, c: MapCanvas) -> dict[tuple[int, int], str]:
        """Region names at their anchors, biggest regions first, never overlapping."""
        sizes = Counter(v for row in c.cells for v in row if v >= 0)
        taken: set[tuple[int, int]] = set()
        out = {}
        for idx in sorted(range(len(c.regions)), key=lambda i: -sizes.get(i, 0)):
            r = c.regions[idx]
            name = r.name if len(c.regions) < 60 else r.name[-3:]
            w = cell_len(name)
            x = max(0, min(c.width - w, r.x - w // 2))
            span = {(xx, r.y) for xx in range(x - 1, x + w + 1)}
            if span & taken or sizes.get(idx, 0) < 3:
                continue
            taken |= span
            out[(x, r.y)] = name
        return out

    def _legend(self, c: MapCanvas) -> str:
        sel = next((r for r in c.regions if r.code == self.state.selected), None)
        if sel is None:
            return self.t("map.hint") if c.regions else self.t("map.none")
        colour = self.fill.get(sel.code)
        mark = f" {theme.GLYPH[colour]}{self.t.colour(colour.value)}" if colour else ""
        return f"{self.t('map.selected')}: {sel.name}{mark}  ·  {self.t('map.hint')}"
