"""One refresh of the console, computed off the UI thread: only what changed since the last one.

The store's change-log head says whether anything moved at all; the log rows
since the last head say which events changed (highlighted briefly) and which
turned red (their regions flash). Panes whose inputs did not change are not
recomputed, so an idle console costs one ``max(seq)`` query per tick. Changes
arriving between two polls are coalesced into one frame.

No poll waits for the catalogue and registry: until they are loaded (on a
thread, see ``Backend.preload``) the queue's rows carry codes and the frame
says so (``named``); the console then invalidates the feed and names replace
codes. The map's colours and the directives need neither, so the first poll
has them. The runway board needs the catalogue and its risk points and has its
own call (``board``), run on its own worker and timer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..domain.entities import Level
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
    named: bool = True  # the queue's rows carry names (False: codes, the catalogue and registry still loading)


@dataclass
class ConsoleFeed:
    backend: Backend
    limit: int = 300
    board_every_s: float = 30.0
    flt: QueueFilter = field(default_factory=QueueFilter)
    expanded: set[str] = field(default_factory=set)  # group leaders whose members the queue lists
    _head: int = -1
    _flt_seen: QueueFilter | None = None
    _map_level: object = None
    _board_at: float = float("-inf")
    _dir_at: float = float("-inf")
    _stale: bool = False
    # Polls may overlap (a worker replaced by a newer one still runs to its end): one at a time.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # A board computed ahead (``prefetch_board``) waits here for the next ``board`` call.
    _board_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _prefetched: tuple | None = field(default=None, repr=False, compare=False)

    def invalidate(self) -> None:
        """Forget the last frame (after a resize, a filter, a drill or names arriving the panes redraw
        in full). Safe during a poll: the next poll starts afresh whatever the running one records."""
        self._stale = True
        self._board_at = float("-inf")

    def poll(self, map_level: Level | None, force: bool = False) -> Frame:
        """What changed since the last poll; ``map_level`` is the level the map shows (None: the
        registry is still loading and the map opens on the city)."""
        with self._lock:
            if self._stale:
                self._stale = False
                self._head, self._flt_seen, self._map_level = -1, None, None
            return self._poll(map_level, force)

    def _poll(self, map_level: Level | None, force: bool) -> Frame:
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
        named = b.loaded
        if moved or self._flt_seen != self.flt:
            # Until the catalogue and registry are loaded (in the background) rows carry codes, and
            # the console invalidates the feed when they arrive; a poll never waits for them.
            names = b.names if named else b.loaded_names
            queue = tuple(load_queue(b.store, names, self.flt, self.limit, frozenset(self.expanded)))
            self._flt_seen = self.flt
        # The map opens on the city: its colours need no registry, so they come with the first poll.
        map_level = map_level or Level.CITY
        if moved or map_level != self._map_level:
            fill = region_fill(b.store, map_level)
            self._map_level = map_level
        # Receipt deadlines pass without any write, so the pane refreshes on a slow timer too.
        if moved or now - self._dir_at >= 10.0:
            directives = tuple(load_directives(b.store, now, viewer=b.user))
            self._dir_at = now
        self._head = head
        return Frame(head, now, queue, fill, directives, None, link, frozenset(changed), tuple(new_red), named=named)

    def board(self, force: bool = False) -> tuple[BoardNode, ...] | None:
        """The runway board when due (every ``board_every_s``, or ``force``), else None. A board
        prefetched since the last call is returned as it is (a call during the prefetch waits for it)."""
        with self._board_lock:
            if self._prefetched is not None:
                board, self._prefetched = self._prefetched, None
                return board
            b = self.backend
            now = b.clock.now()
            if not force and now - self._board_at < self.board_every_s:
                return None
            self._board_at = now
            return load_board(b.store, b.catalogue, now, b.user.scope_code)

    def prefetch_board(self) -> None:
        """Compute the board now, for the next ``board`` call (the launcher's thread, while the UI is still
        starting: its queries then overlap Textual's start instead of following the first frame)."""
        with self._board_lock:
            b = self.backend
            now = b.clock.now()
            self._prefetched = load_board(b.store, b.catalogue, now, b.user.scope_code)
            self._board_at = now
