"""The runways pane (跑道): 8 sectors → runways → sub-runways → indicators as one tree of nodes.

The board itself is computed by ``engine.runways.compute_board``; this module
only normalises it into nodes the pane can draw and drill, and renders
sparklines. An indicator without data keeps ``value`` None (``no_data``): the
pane says 无数据 / no data in grey, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.colour import Colour
from ..textsafe import plain

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class BoardNode:
    code: str
    name: str
    colour: Colour | None
    value: float | None = None
    unit: str = ""
    thresholds: tuple[float, ...] = ()
    history: tuple[float, ...] = ()
    time_in_red: float = 0.0  # seconds
    children: tuple["BoardNode", ...] = ()
    kind: str = ""  # an indicator's class: "vital" 城市体征 or "kpi"; "" above indicators

    @property
    def no_data(self) -> bool:
        """An indicator with nothing to measure: shown as 无数据 / no data, grey."""
        return not self.children and self.kind != "" and self.value is None


def split_by_kind(nodes: tuple[BoardNode, ...]) -> tuple[tuple[BoardNode, ...], tuple[BoardNode, ...]]:
    """Indicators apart: (城市体征, KPI), each in catalogue order."""
    return tuple(n for n in nodes if n.kind != "kpi"), tuple(n for n in nodes if n.kind == "kpi")


def sparkline(values, width: int = 12) -> str:
    vals = [float(v) for v in list(values)[-width:] if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        return SPARK[3] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * (len(SPARK) - 1) + 0.5))] for v in vals)


_CHILD_ATTRS = ("children", "runways", "sub_runways", "indicators")


def _get(obj, *names, default=None):
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return default


def _colour(value) -> Colour | None:
    if value is None:
        return None
    if isinstance(value, Colour):
        return value
    try:
        return Colour(str(getattr(value, "value", value)))
    except ValueError:
        return None


def normalise(node) -> BoardNode:
    """Accept the engine's objects or plain dicts, whatever the level."""
    children = ()
    for attr in _CHILD_ATTRS:
        kids = _get(node, attr)
        if kids:
            kids = kids.values() if isinstance(kids, dict) else kids
            children = tuple(normalise(k) for k in kids)
            break
    value = _get(node, "value")
    history = _get(node, "history", default=()) or ()
    history = tuple(float(getattr(h, "value", h[-1] if isinstance(h, (tuple, list)) else h)) for h in history)
    return BoardNode(
        code=str(_get(node, "code", default="")),
        name=plain(str(_get(node, "name", default=""))),
        colour=_colour(_get(node, "colour", "color")),
        value=None if value is None else float(value),
        unit=plain(str(_get(node, "unit", default="") or "")),
        thresholds=tuple(float(t) for t in (_get(node, "thresholds", default=()) or ())),
        history=history,
        time_in_red=float(_get(node, "time_in_red", "red_seconds", default=0.0) or 0.0),
        children=children,
        kind=str(_get(node, "kind", default="") or "") if not children else "",
    )


def load_board(store, catalogue, now: float, scope_code: str) -> tuple[BoardNode, ...]:
    """The sectors, recording history in the console's own store (throttled by the engine) so
    sparklines and time in red build up over a shift; history is local, never replicated."""
    from ..engine.runways import compute_board

    board = compute_board(store, catalogue, now, scope_code, record=True)
    sectors = _get(board, "sectors", default=board)
    if isinstance(sectors, dict):
        sectors = sectors.values()
    return tuple(normalise(s) for s in sectors)
