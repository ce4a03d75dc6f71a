"""Rasterise jurisdictions to a character map for terminals.

``render(code)`` draws the children of ``code``: the city's 41 districts, a
district's streets or a street's grids. The result keeps a region id per cell
so a UI can colour, highlight or flash a region, plus labels and a legend.
The colour-independent part (region ids, characters, labels) is cached by
(code, width, height); colours and the highlight are applied per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import numpy as np
from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

from ..domain.colour import Colour
from ..domain.entities import Level
from ..errors import BadInput
from .registry import get_registry

ASPECT = 2.0  # a terminal cell is about twice as tall as it is wide
MIN_WIDTH, MAX_WIDTH = 20, 1000
MIN_HEIGHT = 2

# One-character keys for numbered labels (no 0/O, 1/l/I look-alikes).
KEYS = "123456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

_SHORT_DISTRICT = {"500190": "两江", "500191": "高新区", "500192": "万盛"}
_DISTRICT_SUFFIXES = ("土家族苗族自治县", "苗族土家族自治县", "土家族自治县", "自治县", "区", "县")
_STREET_SUFFIXES = ("街道", "镇", "乡")

# fill background, text/border foreground
PALETTE: dict[Colour | None, tuple[str, str]] = {
    Colour.RED: ("#b71c1c", "#ffffff"),
    Colour.ORANGE: ("#e65100", "#ffffff"),
    Colour.YELLOW: ("#f9a825", "#000000"),
    Colour.BLUE: ("#1565c0", "#ffffff"),
    Colour.GREEN: ("#2e7d32", "#ffffff"),
    None: ("#37474f", "#cfd8dc"),
}
HIGHLIGHT = ("#ffffff", "#000000")


@dataclass(frozen=True)
class LegendEntry:
    key: str
    code: str
    name: str
    on_map: bool  # False: the region is too small for its key at this size


@dataclass(frozen=True)
class Raster:
    """Colour-independent part of a map; shared between calls, do not mutate."""

    code: str
    name: str
    level: Level  # level of the regions drawn
    width: int
    height: int
    bounds: tuple[float, float, float, float]
    regions: tuple[str, ...]
    names: tuple[str, ...]
    ids: np.ndarray  # (height, width) region index, -1 outside
    cells: tuple[tuple[str, ...], ...]  # one string per cell; "" after a wide character
    is_label: np.ndarray  # (height, width) True where label text sits
    labels: Mapping[str, str]  # code -> text drawn inside the region
    legend: tuple[LegendEntry, ...]


@dataclass(frozen=True)
class MapRender:
    raster: Raster
    colours: Mapping[str, Colour] = field(default_factory=dict)  # region code -> colour
    highlight: str | None = None  # region code

    # -- plain accessors
    @property
    def width(self) -> int:
        return self.raster.width

    @property
    def height(self) -> int:
        return self.raster.height

    @property
    def regions(self) -> tuple[str, ...]:
        return self.raster.regions

    @property
    def labels(self) -> Mapping[str, str]:
        return self.raster.labels

    @property
    def legend(self) -> tuple[LegendEntry, ...]:
        return self.raster.legend

    @property
    def rows(self) -> list[str]:
        return ["".join(row) for row in self.raster.cells]

    def region_at(self, row: int, col: int) -> str | None:
        if not (0 <= row < self.height and 0 <= col < self.width):
            return None
        i = int(self.raster.ids[row, col])
        return self.raster.regions[i] if i >= 0 else None

    def cells_of(self, code: str) -> np.ndarray:
        """(row, col) pairs of a region's cells, e.g. to flash it."""
        i = self.raster.regions.index(code)
        return np.argwhere(self.raster.ids == i)

    def lonlat_at(self, row: int, col: int) -> tuple[float, float]:
        minx, miny, maxx, maxy = self.raster.bounds
        return (
            minx + (col + 0.5) * (maxx - minx) / self.width,
            maxy - (row + 0.5) * (maxy - miny) / self.height,
        )

    def title(self) -> str:
        r = self.raster
        what = {Level.DISTRICT: "区县", Level.STREET: "镇街", Level.GRID: "网格"}[r.level]
        return f"{r.name} {r.code} · {len(r.regions)} {what}"

    def legend_lines(self, width: int | None = None) -> list[str]:
        """Legend entries laid out in columns that fit ``width`` terminal cells."""
        width = width or self.width
        items = [f"{e.key} {e.name}" + ("" if e.on_map else " (未显示)") for e in self.legend]
        if not items:
            return []
        col = max(cell_len(t) for t in items) + 2
        per_row = max(1, width // col)
        lines = []
        for start in range(0, len(items), per_row):
            chunk = items[start : start + per_row]
            lines.append("".join(t + " " * (col - cell_len(t)) for t in chunk).rstrip())
        return lines

    def to_plain(self, title: bool = True, legend: bool = True) -> str:
        out = [self.title()] if title else []
        out += [row.rstrip() for row in self.rows]
        if legend and self.legend:
            out += ["", *self.legend_lines()]
        return "\n".join(out)

    def _region_styles(self) -> list[tuple[Style, Style, Style]]:
        """Per region: fill, border and label style."""
        styles = []
        for code in self.raster.regions:
            bg, fg = HIGHLIGHT if code == self.highlight else PALETTE[self.colours.get(code)]
            fill = Style(bgcolor=bg)
            styles.append((fill, Style(color=fg, bgcolor=bg, dim=code != self.highlight), Style(color=fg, bgcolor=bg, bold=True)))
        return styles

    def to_rich(self, title: bool = True, legend: bool = True) -> Text:
        r = self.raster
        styles = self._region_styles()
        text = Text()
        if title:
            text.append(self.title() + "\n", style="bold")
        for y, row in enumerate(r.cells):
            run, run_style = [], None
            for x, ch in enumerate(row):
                i = int(r.ids[y, x])
                if i < 0:
                    style = None
                else:
                    fill, border, lab = styles[i]
                    style = lab if r.is_label[y, x] else (fill if ch == " " else border)
                if style is not run_style and run:
                    text.append("".join(run), style=run_style)
                    run = []
                run_style = style
                run.append(ch)
            if run:
                text.append("".join(run), style=run_style)
            text.append("\n")
        if legend and self.legend:
            text.append("\n" + "\n".join(self.legend_lines()))
        return text

    def to_dict(self, ids: bool = False) -> dict:
        r = self.raster
        counts = np.bincount(r.ids[r.ids >= 0].ravel(), minlength=len(r.regions))
        keys = {e.code: e.key for e in r.legend}
        out = {
            "code": r.code,
            "name": r.name,
            "region_level": r.level.value,
            "width": r.width,
            "height": r.height,
            "bounds": list(r.bounds),
            "rows": self.rows,
            "regions": [
                {
                    "id": i,
                    "code": code,
                    "name": r.names[i],
                    "label": r.labels.get(code),
                    "key": keys.get(code),
                    "cells": int(counts[i]),
                    "colour": self.colours[code].value if code in self.colours else None,
                }
                for i, code in enumerate(r.regions)
            ],
            "legend": [{"key": e.key, "code": e.code, "name": e.name, "on_map": e.on_map} for e in r.legend],
            "highlight": self.highlight,
        }
        if ids:
            out["ids"] = r.ids.tolist()
        return out


# ---------------------------------------------------------------- rendering


def render(
    code: str | None = None,
    width: int = 80,
    height: int | None = None,
    colours: Mapping[str, Colour | str] | None = None,
    highlight: str | None = None,
) -> MapRender:
    """Map of the children of ``code`` (None: the city) at most ``width`` × ``height`` cells.

    ``colours`` and ``highlight`` may name the regions themselves or anything
    below them: a grid's colour tints its street or district, the worst
    colour winning; highlighting a grid highlights the region holding it.
    """
    reg = get_registry()
    code = reg.city.code if code is None else _norm_code(code)
    reg.level_of(code)  # unknown code -> UnknownCode
    width = _check_size("width", width)
    if height is not None:
        height = _check_size("height", height, MIN_HEIGHT)
    raster = _raster(code, width, height)
    return MapRender(raster, _region_colours(raster, colours or {}), _region_of(raster, highlight))


def _norm_code(code) -> str:
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    if not isinstance(code, str):
        raise BadInput(f"map code must be a jurisdiction code, got {type(code).__name__}")
    return code.strip()


def clear_cache() -> None:
    _raster.cache_clear()


def _check_size(what: str, value, minimum: int = MIN_WIDTH) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"map {what} must be a whole number, got {value!r}") from None
    if n != value and not isinstance(value, str):
        raise BadInput(f"map {what} must be a whole number, got {value!r}")
    if not minimum <= n <= MAX_WIDTH:
        raise BadInput(f"map {what} must be between {minimum} and {MAX_WIDTH}, got {n}")
    return n


def _region_of(raster: Raster, code: str | None) -> str | None:
    if code is None:
        return None
    code = str(code).strip()
    n = len(raster.regions[0]) if raster.regions else 0
    if code[:n] in raster.regions:
        return code[:n]
    raise BadInput(f"{code!r} is not on the map of {raster.name} ({raster.code})")


def _region_colours(raster: Raster, colours: Mapping[str, Colour | str]) -> dict[str, Colour]:
    out: dict[str, Colour] = {}
    n = len(raster.regions[0]) if raster.regions else 0
    regions = set(raster.regions)
    for key, colour in colours.items():
        try:
            c = colour if isinstance(colour, Colour) else Colour.parse(colour)
        except ValueError as exc:
            raise BadInput(f"colour of {key}: {exc}") from None
        region = str(key)[:n]
        if region not in regions:
            continue  # colours of other places are simply not on this map
        prev = out.get(region)
        out[region] = c if prev is None or c.rank < prev.rank else prev
    return out


def _short(code: str, name: str, level: Level) -> str | None:
    if level is Level.DISTRICT:
        if code in _SHORT_DISTRICT:
            return _SHORT_DISTRICT[code]
        suffixes = _DISTRICT_SUFFIXES
    elif level is Level.STREET:
        suffixes = _STREET_SUFFIXES
    else:
        return None
    for s in suffixes:
        if name.endswith(s) and len(name) - len(s) >= 2:
            return name[: -len(s)]
    return None


@lru_cache(maxsize=128)
def _raster(code: str, width: int, height: int | None) -> Raster:
    reg = get_registry()
    parent = reg.get(code)
    level = parent.level
    if level is Level.CITY:
        bounds = reg.bounds
    else:
        bounds = tuple(float(v) for v in reg.geometry(code).bounds)
    minx, miny, maxx, maxy = bounds
    coslat = math.cos(math.radians((miny + maxy) / 2))
    gw = max((maxx - minx) * coslat, 1e-9)
    gh = max(maxy - miny, 1e-9)
    rows = max(MIN_HEIGHT, round(width * gh / gw / ASPECT))
    if height is not None and rows > height:
        rows = height
        width = max(MIN_WIDTH // 2, min(width, round(height * ASPECT * gw / gh)))

    cx = minx + (np.arange(width) + 0.5) * (maxx - minx) / width
    cy = maxy - (np.arange(rows) + 0.5) * (maxy - miny) / rows
    X, Y = np.meshgrid(cx, cy)
    regions, flat = reg.classify(code, X.ravel(), Y.ravel())
    ids = flat.reshape(rows, width)
    child_level = {Level.CITY: Level.DISTRICT, Level.DISTRICT: Level.STREET, Level.STREET: Level.GRID, Level.GRID: Level.GRID}[level]

    # Regions too small to hit a cell centre still get the cell at their anchor.
    counts = np.bincount(ids[ids >= 0], minlength=len(regions))
    for i in np.flatnonzero(counts == 0):
        j = reg.get(regions[i])
        col = int((j.lon - minx) / (maxx - minx) * width)
        row = int((maxy - j.lat) / (maxy - miny) * rows)
        row, col = min(max(row, 0), rows - 1), min(max(col, 0), width - 1)
        # nearest cell, ring by ring, that no other one-cell region needs
        for radius in range(0, 4):
            spot = None
            for r in range(row - radius, row + radius + 1):
                for c in range(col - radius, col + radius + 1):
                    if 0 <= r < rows and 0 <= c < width and max(abs(r - row), abs(c - col)) == radius:
                        cur = int(ids[r, c])
                        if cur < 0 or counts[cur] > 1:
                            spot = (r, c)
                            break
                if spot:
                    break
            if spot:
                cur = int(ids[spot])
                if cur >= 0:
                    counts[cur] -= 1
                ids[spot] = i
                counts[i] = 1
                break

    names = []
    for c in regions:
        names.append(reg.get(c).name if child_level is not Level.GRID else f"第{int(c[9:])}网格")

    cells, border = _borders(ids)
    is_label = np.zeros(ids.shape, dtype=bool)
    labels: dict[str, str] = {}
    legend: list[LegendEntry] = []
    use_keys = len(regions) <= len(KEYS)
    order = np.argsort(-counts, kind="stable")
    groups = _cells_by_region(ids, len(regions))
    for i in order:
        code_i = regions[i]
        if child_level is Level.GRID:
            key = str(int(code_i[9:]))
            candidates = [(key, True)]
        else:
            key = KEYS[i] if use_keys else str(i + 1)
            short = _short(code_i, names[i], child_level)
            candidates = [(names[i], True)] + ([(short, True)] if short else []) + [(key, False)]
        placed = None
        for text, is_name in candidates:
            if _place(text, groups[i], ids, border, is_label, cells):
                placed = (text, is_name)
                break
        if placed is not None:
            labels[code_i] = placed[0]
            if not placed[1]:
                legend.append(LegendEntry(key, code_i, names[i], True))
        else:
            legend.append(LegendEntry(key, code_i, names[i], False))
    pos = {c: k for k, c in enumerate(regions)}
    legend.sort(key=lambda e: pos[e.code])
    ids.setflags(write=False)
    is_label.setflags(write=False)
    return Raster(
        code=code,
        name=parent.name,
        level=child_level,
        width=width,
        height=rows,
        bounds=bounds,
        regions=tuple(regions),
        names=tuple(names),
        ids=ids,
        cells=tuple(tuple(r) for r in cells),
        is_label=is_label,
        labels=labels,
        legend=tuple(legend),
    )


def _borders(ids: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
    """Characters with region outlines: '|' where the region changes to the
    right (or the outside is to the left), '-' likewise below/above, '+' both."""
    inside = ids >= 0
    outside = ~inside
    vert = np.zeros(ids.shape, dtype=bool)
    vert[:, :-1] = ids[:, :-1] != ids[:, 1:]
    vert[:, -1] = True
    vert[:, 1:] |= outside[:, :-1]
    vert[:, 0] = True
    horiz = np.zeros(ids.shape, dtype=bool)
    horiz[:-1, :] = ids[:-1, :] != ids[1:, :]
    horiz[-1, :] = True
    horiz[1:, :] |= outside[:-1, :]
    horiz[0, :] = True
    vert &= inside
    horiz &= inside
    chars = np.full(ids.shape, " ", dtype="<U1")
    chars[vert] = "|"
    chars[horiz] = "-"
    chars[vert & horiz] = "+"
    return chars.tolist(), vert | horiz


def _cells_by_region(ids: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")  # stable: row-major within a region
    sorted_ids = flat[order]
    starts = np.searchsorted(sorted_ids, np.arange(n), side="left")
    ends = np.searchsorted(sorted_ids, np.arange(n), side="right")
    w = ids.shape[1]
    return [(order[s:e] // w, order[s:e] % w) for s, e in zip(starts, ends)]


def _place(text, cells_rc, ids, border, is_label, chars) -> bool:
    """Write ``text`` into a horizontal run of the region's cells near its middle;
    prefer cells off the outline. False if no run is long enough."""
    need = cell_len(text)
    rows_, cols_ = cells_rc
    if rows_.size == 0:
        return False
    mid_r, mid_c = float(rows_.mean()), float(cols_.mean())
    height, width = ids.shape
    for avoid_border, gap in ((True, True), (False, True), (False, False)):
        ok = ~is_label[rows_, cols_]
        if avoid_border:
            ok &= ~border[rows_, cols_]
        r, c = rows_[ok], cols_[ok]
        if r.size < need:
            continue
        # runs of consecutive columns in one row
        brk = np.ones(r.size, dtype=bool)
        brk[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1)
        starts = np.flatnonzero(brk)
        lengths = np.diff(np.append(starts, r.size))
        best = None
        for s, n in zip(starts, lengths):
            if n < need:
                continue
            row, c0, c1 = int(r[s]), int(c[s]), int(c[s]) + int(n)
            start = int(min(max(round(mid_c - need / 2), c0), c1 - need))
            # keep a gap to a neighbouring label so two names do not run together
            if gap and start > 0 and is_label[row, start - 1]:
                start += 1
            if start + need > c1 or (gap and start + need < width and is_label[row, start + need]):
                continue
            score = abs(row - mid_r) * ASPECT + abs(start + need / 2 - mid_c)
            if best is None or score < best[0]:
                best = (score, row, start)
        if best is None:
            continue
        _, row, col = best
        for ch in text:
            w = cell_len(ch)
            chars[row][col] = ch
            is_label[row, col] = True
            if w == 2:
                chars[row][col + 1] = ""
                is_label[row, col + 1] = True
            col += w
        return True
    return False
