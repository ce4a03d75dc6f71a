"""The console's 事件热榜 and 考评 views as data: which period and unit, and the rows to draw.

Both come from ``engine.evaluation`` over the console's own store (a replica
holds its jurisdiction's events), within the user's scope. The screens cycle
the period (``p``) and, for the ranking, the unit (``b``); this module keeps
that state and never imports Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import fmt_duration
from ..engine.evaluation import BY, HOT_KINDS, HotList, Ranking, hot_list, rank
from ..scope import CITY_CODE

PERIODS = ("24h", "7d", "30d")
UNITS = tuple(BY)  # district, street, department


def _next(values: tuple[str, ...], current: str) -> str:
    return values[(values.index(current) + 1) % len(values)] if current in values else values[0]


@dataclass(frozen=True)
class ViewState:
    """What a view shows: hot list or ranking, the period, and the unit ranked."""

    mode: str = "hot"  # hot | rank
    period: str = "7d"
    by: str = "district"

    def next_period(self) -> ViewState:
        return ViewState(self.mode, _next(PERIODS, self.period), self.by)

    def next_unit(self) -> ViewState:
        return ViewState(self.mode, self.period, _next(UNITS, self.by))

    def switched(self, mode: str) -> ViewState:
        return ViewState(mode, self.period, self.by)


def parse_args(mode: str, arg: str) -> ViewState:
    """``:hot [PERIOD]`` / ``:rank [district|street|department] [PERIOD]`` (either order); ``ValueError``
    names the word it does not know."""
    from ..engine.evaluation import period_seconds

    state = ViewState(mode)
    for word in arg.split():
        w = word.lower()
        if mode == "rank" and w in UNITS:
            state = ViewState(mode, state.period, w)
            continue
        try:
            period_seconds(w)
        except Exception:
            raise ValueError(word) from None
        state = ViewState(mode, w, state.by)
    return state


def view_scope(backend) -> str:
    """The jurisdiction the views cover: the user's (a city user sees the whole city)."""
    scope = getattr(backend.user, "scope_code", "") or ""
    return scope if scope.isdigit() else (CITY_CODE if backend.tier.value == "city" else backend.code)


def load(backend, state: ViewState, limit: int = 10) -> Ranking | HotList:
    """The ranking or hot list for ``state`` (a store query: call it off the UI thread)."""
    now = backend.clock.now()
    scope = view_scope(backend)
    if state.mode == "rank":
        return rank(backend.store, backend.catalogue, backend.names, now, state.by, state.period, scope)
    return hot_list(backend.store, backend.names, now, state.period, scope, limit)


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def hot_value(kind: str, value: float) -> str:
    """A hot-list measure as read: reports and supervisions as counts, time open as h:mm:ss."""
    return fmt_duration(value) if kind == "open" else f"{value:g}"


__all__ = ["HOT_KINDS", "PERIODS", "UNITS", "ViewState", "hot_value", "load", "parse_args", "pct", "view_scope"]
