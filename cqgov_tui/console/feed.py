"""One refresh of the console, computed off the UI thread: only what changed since the last one.

The store's change-log head says whether anything moved at all; the log rows
since the last head say which events changed (highlighted briefly) and which
turned red (their regions flash). Panes whose inputs did not change are not
recomputed, so an idle console costs one ``max(seq)`` query per tick. Changes
arriving between two polls are coalesced into one frame.

The first poll is ``light``: the queue and the link only, so the first frame
is on screen before the map colours and directive counts are computed. The
queue never waits for the catalogue and registry: rows show codes until they
are loaded (the console then invalidates the feed and names replace codes). The
runway board is slow on a big store and has its own call (``board``), run on
its own worker and timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backend import Backend, LinkStatus
from .board import BoardNode, load_board
from .directives import DirectiveRow, load_directives
from .mapview import region_fill
from .queue import QueueFilter, QueueRow, load_queue

MAX_LOG_SCAN = 2000  # beyond this many changes in one tick, treat everything as changed


@dataclass(frozen=True)
class Frame:
    head: int
    now: float
    queue: tuple[QueueRow, ...] | None  # None: unchanged since the last frame
    fill: dict | None
    directives: tuple[DirectiveRow, ...] | None
    board: tuple[BoardNode, ...] | None
    link: LinkStatus
    changed: frozenset[str] = frozenset()  # event ids changed since the last frame
    new_red: tuple[str, ...] = ()  # place codes of events that became red
    error: str = ""


@dataclass
class ConsoleFeed:
    backend: Backend
    limit: int = 300
    board_every_s: float = 30.0
    flt: QueueFilter = field(default_factory=QueueFilter)
    _head: int = -1
    _flt_seen: QueueFilter | None = None
    _map_level: object = None
    _board_at: float = float("-inf")
    _dir_at: float = float("-inf")

    def invalidate(self) -> None:
        """Forget the last frame (after a resize, a filter or a drill the panes redraw in full)."""
        self._head = -1
        self._flt_seen = None
        self._board_at = float("-inf")

    def poll(self, map_level, force: bool = False, light: bool = False) -> Frame:
        b = self.backend
        now = b.clock.now()
        link = b.status()
        head = b.store.head()
        moved = head != self._head or force
        changed: set[str] = set()
        new_red: list[str] = []
        if moved and self._head >= 0 and head - self._head <= MAX_LOG_SCAN:
            for ch in b.store.changes_after(self._head, limit=MAX_LOG_SCAN):
                if ch["entity"] != "event":
                    continue
                changed.add(ch["key"])
                data = ch["data"]
                if data.get("colour") == "red":
                    new_red.append(ch["scope"] or data.get("grid_code") or data.get("street_code")
                                   or data.get("district_code") or "")
        queue = fill = directives = None
        if moved or self._flt_seen != self.flt:
            # Until the catalogue and registry are loaded (in the background) rows carry codes, and
            # the console invalidates the feed when they arrive; a poll never waits for them.
            names = b.names if b.loaded else b.loaded_names
            queue = tuple(load_queue(b.store, names, self.flt, self.limit))
            self._flt_seen = self.flt
        if light:
            # The next full poll must fill the panes skipped here.
            self._map_level = object()
            self._dir_at = float("-inf")
        else:
            if map_level is not None and (moved or map_level != self._map_level):
                fill = region_fill(b.store, map_level)
                self._map_level = map_level
            # Receipt deadlines pass without any write, so the pane refreshes on a slow timer too.
            if moved or now - self._dir_at >= 10.0:
                directives = tuple(load_directives(b.store, now, viewer=b.user))
                self._dir_at = now
        self._head = head
        return Frame(head, now, queue, fill, directives, None, link, frozenset(changed), tuple(new_red))

    def board(self, force: bool = False) -> tuple[BoardNode, ...] | None:
        """The runway board when due (every ``board_every_s``, or ``force``), else None."""
        b = self.backend
        now = b.clock.now()
        if not force and now - self._board_at < self.board_every_s:
            return None
        self._board_at = now
        return load_board(b.store, b.catalogue, now, b.user.scope_code)
