"""The open events in memory, indexed by id, number, place and district: the engine's hot reads.

Report and act look events up (by id or number), look for duplicates nearby
and for an inhibiting district warning, and the sweep looks for overdue ones.
Against DuckDB each of those is a statement; here each is a dict lookup over
the open events only, so a command costs the same with ten thousand or ten
million events archived. The index mirrors ``event_queue`` as committed; the
write batch of the running transaction is laid over it by ``Store``.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

from ..domain.entities import Event, Status

_CLOSED = frozenset(s.value for s in Status if not s.is_open)  # (a str enum compares equal to its value)
# Dedup boxes are 50 m; cells of ~0.005° (~500 m) keep a box inside at most four cells.
CELL_DEG = 0.005


def cell(lon: float, lat: float) -> tuple[int, int]:
    return math.floor(lon / CELL_DEG), math.floor(lat / CELL_DEG)


class OpenEvents:
    """Committed open events (the rows of ``event_queue``) with the indexes the engine reads by."""

    def __init__(self, events: Iterable[Event] = ()):
        self.by_id: dict[str, Event] = {}
        self.by_number: dict[str, str] = {}
        self._cells: dict[tuple[str, int, int], set[str]] = {}
        self._district: dict[tuple[str, str], set[str]] = {}
        for e in events:
            self.put(e)

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.by_id.values())

    def get(self, event_id: str) -> Event | None:
        return self.by_id.get(event_id)

    def put(self, event: Event) -> None:
        """Learn a committed row: kept while open, dropped once it is not."""
        old = self.by_id.get(event.id)
        if event.status in _CLOSED:
            if old is not None:
                self.drop(event.id)
            return
        if old is not None and old.number == event.number and old.lon == event.lon and old.lat == event.lat \
                and old.category_code == event.category_code and old.district_code == event.district_code:
            self.by_id[event.id] = event  # a new version in the same place (most transitions): same index keys
            return
        if old is not None:
            self.drop(event.id)
        self.by_id[event.id] = event
        self.by_number[event.number] = event.id
        if event.lon is not None and event.lat is not None:
            self._cells.setdefault((event.category_code, *cell(event.lon, event.lat)), set()).add(event.id)
        self._district.setdefault((event.district_code, event.category_code), set()).add(event.id)

    def drop(self, event_id: str) -> None:
        old = self.by_id.pop(event_id, None)
        if old is None:
            return
        if self.by_number.get(old.number) == event_id:
            del self.by_number[old.number]
        if old.lon is not None and old.lat is not None:
            key = (old.category_code, *cell(old.lon, old.lat))
            ids = self._cells.get(key)
            if ids is not None:
                ids.discard(event_id)
                if not ids:
                    del self._cells[key]
        key2 = (old.district_code, old.category_code)
        ids = self._district.get(key2)
        if ids is not None:
            ids.discard(event_id)
            if not ids:
                del self._district[key2]

    def in_box(self, category: str, lon0: float, lon1: float, lat0: float, lat1: float) -> list[Event]:
        (cx0, cy0), (cx1, cy1) = cell(lon0, lat0), cell(lon1, lat1)
        out = []
        for cx in range(cx0, cx1 + 1):
            for cy in range(cy0, cy1 + 1):
                for i in self._cells.get((category, cx, cy), ()):
                    e = self.by_id[i]
                    if lon0 <= e.lon <= lon1 and lat0 <= e.lat <= lat1:  # type: ignore[operator]
                        out.append(e)
        return out

    def in_district(self, district: str, categories: Iterable[str]) -> list[Event]:
        return [self.by_id[i] for c in categories for i in self._district.get((district, c), ())]
