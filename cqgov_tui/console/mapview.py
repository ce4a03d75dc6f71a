"""The map pane (地图): which region each character cell shows, the worst open colour per
region, drill-down city → district → street → grid, and flashes on new red events.

Rasterising is done once per (region, size) and cached; a colour change only
re-colours cells, it never re-rasterises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from ..domain.colour import Colour
from ..domain.entities import Level
from ..textsafe import plain

CHAR_ASPECT = 2.0  # a terminal cell is about twice as tall as it is wide
FLASH_SECONDS = 5.0
_FILL_LEVEL = {Level.CITY: "district", Level.DISTRICT: "street", Level.STREET: "grid"}


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    x: int  # label anchor cell
    y: int


@dataclass(frozen=True)
class MapCanvas:
    code: str
    name: str
    level: Level
    width: int
    height: int
    cells: tuple[tuple[int, ...], ...]  # index into ``regions`` per cell, -1 outside
    regions: tuple[Region, ...]

    def region_at(self, x: int, y: int) -> Region | None:
        if 0 <= y < self.height and 0 <= x < self.width:
            i = self.cells[y][x]
            return self.regions[i] if i >= 0 else None
        return None


def rasterise(registry, code: str, width: int, height: int) -> MapCanvas:
    width, height = max(8, int(width)), max(4, int(height))
    canvas = getattr(type(registry), "canvas", None)  # ``geo_cache.CachedRegistry``: drawn once per install
    if canvas is not None:
        return canvas(registry, code, width, height)
    return _rasterise(registry, code, width, height)


@lru_cache(maxsize=32)
def _rasterise(registry, code: str, width: int, height: int) -> MapCanvas:
    import numpy as np
    import shapely

    parent = registry.get(code)
    children = registry.children(code)
    if not children:
        return MapCanvas(code, plain(parent.name), parent.level, width, height,
                         tuple(tuple(-1 for _ in range(width)) for _ in range(height)), ())
    geoms = [registry.geometry(c.code) for c in children]
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(geoms, dtype=object))
    coslat = math.cos(math.radians((y0 + y1) / 2))
    # Keep shapes true: one cell spans ``sx`` degrees of longitude and CHAR_ASPECT × that in latitude-metres.
    span_x = max((x1 - x0) * coslat, 1e-9)
    span_y = max(y1 - y0, 1e-9)
    scale = max(span_x / width, span_y / (height * CHAR_ASPECT))
    used_w = span_x / scale
    used_h = span_y / (scale * CHAR_ASPECT)
    off_x = (width - used_w) / 2
    off_y = (height - used_h) / 2
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    gx, gy = np.meshgrid(xs, ys)
    lon = x0 + (gx - off_x) * scale / coslat
    lat = y1 - (gy - off_y) * scale * CHAR_ASPECT
    grid = np.full((height, width), -1, dtype=np.int32)
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        inside = shapely.contains_xy(g, lon, lat) & (grid < 0)
        grid[inside] = i
    regions = []
    for i, c in enumerate(children):
        ax = int((c.lon - x0) * coslat / scale + off_x)
        ay = int((y1 - c.lat) / (scale * CHAR_ASPECT) + off_y)
        ax, ay = min(max(ax, 0), width - 1), min(max(ay, 0), height - 1)
        if grid[ay, ax] != i:  # anchor fell between cells: use the region's first cell
            hits = np.argwhere(grid == i)
            if len(hits):
                ay, ax = (int(v) for v in hits[len(hits) // 2])
        regions.append(Region(c.code, plain(c.name), ax, ay))
    return MapCanvas(code, plain(parent.name), parent.level, width, height,
                     tuple(tuple(int(v) for v in row) for row in grid), tuple(regions))


def region_fill(store, level: Level) -> dict[str, Colour]:
    """Worst open colour of each child region one level below ``level``."""
    fill_level = _FILL_LEVEL.get(level)
    if fill_level is None:
        return {}
    counts = store.colour_counts(fill_level)
    out = {}
    for code, by_colour in counts.items():
        worst = Colour.worst(c for c in by_colour if by_colour[c])
        if worst is not None:
            out[code] = worst
    return out


@dataclass
class MapState:
    """Drill path and selection; pure state so keys can be tested without a screen."""

    registry: object
    path: list[str] = field(default_factory=lambda: ["500000"])
    selected: str | None = None
    flashes: dict[str, float] = field(default_factory=dict)  # region code → flash until

    @property
    def code(self) -> str:
        return self.path[-1]

    def level(self) -> Level:
        return self.registry.get(self.code).level

    def children(self) -> list:
        return self.registry.children(self.code)

    def drill(self, code: str | None = None) -> bool:
        code = code or self.selected
        if not code:
            return False
        level = self.registry.get(code).level
        if level is Level.GRID:
            return False
        self.path.append(code)
        self.selected = None
        return True

    def up(self) -> bool:
        if len(self.path) <= 1:
            return False
        self.selected = self.path.pop()
        return True

    def focus_on(self, district: str, street: str | None = None, grid: str | None = None) -> None:
        """Show the region of a selected event: drill to its parent and select it."""
        chain = ["500000", district] + ([street] if street else [])
        target = grid if grid else (street or district)
        parent_chain = chain[:-1] if target == chain[-1] else chain
        self.path = [c for c in parent_chain if c]
        self.selected = target

    def select_child_of(self, code: str) -> str | None:
        """The child of the current region that contains ``code`` (or None)."""
        for c in self.children():
            if code.startswith(c.code):
                return c.code
        return None

    def move(self, canvas: MapCanvas, dx: int, dy: int) -> str | None:
        """Select the nearest region in the direction of an arrow key."""
        if not canvas.regions:
            return None
        current = next((r for r in canvas.regions if r.code == self.selected), None)
        if current is None:
            self.selected = canvas.regions[0].code
            return self.selected
        best, best_score = None, float("inf")
        for r in canvas.regions:
            if r.code == current.code:
                continue
            vx, vy = r.x - current.x, (r.y - current.y) * CHAR_ASPECT
            along = vx * dx + vy * dy
            if along <= 0:
                continue
            across = abs(vx * dy - vy * dx)
            score = along + 2 * across
            if score < best_score:
                best, best_score = r, score
        if best is not None:
            self.selected = best.code
        return self.selected

    def flash(self, event_codes: list[str], now: float) -> None:
        """A new red event makes the region containing it (at the shown level) flash."""
        for code in event_codes:
            child = self.select_child_of(code) if code else None
            if child:
                self.flashes[child] = now + FLASH_SECONDS

    def flashing(self, now: float) -> set[str]:
        self.flashes = {c: t for c, t in self.flashes.items() if t > now}
        return set(self.flashes)
