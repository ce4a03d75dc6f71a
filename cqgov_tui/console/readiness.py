"""When the console is ready: every pane and the status bar show real content.

A first frame is not what a dispatcher waits for — the queue may still show
codes instead of names, the map may have no shapes yet, the board may still be
computing. Each pane reports once when it shows real data (the console's
definition, shared by the app, its tests and the start-up benchmark):

* ``events`` — the queue's rows from a query made with names loaded (names,
  not codes; an empty queue counts once its query ran);
* ``map`` — region shapes drawn and coloured from a fill computed for the
  level shown;
* ``runways`` — a computed board (sectors with values and lights);
* ``directives`` — the directives query's rows (none is an answer too);
* ``status`` — the link state read from the backend, and the clock.

``StartProgress`` collects those reports; ``fill`` says the moment the last
one arrives, so the UI can mark (and a benchmark time) that moment exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

PANES: tuple[str, ...] = ("events", "map", "runways", "directives", "status")


@dataclass
class StartProgress:
    """Which panes show real content, and when each did (``time.time()`` by default)."""

    clock: object = time.time
    filled: dict[str, float] = field(default_factory=dict)
    ready_at: float | None = None

    @property
    def ready(self) -> bool:
        return self.ready_at is not None

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(p for p in PANES if p not in self.filled)

    def fill(self, pane: str) -> bool:
        """Record that ``pane`` shows real content; True only for the report that completes the set."""
        if pane not in PANES:
            raise ValueError(f"unknown pane {pane!r} (expected one of {', '.join(PANES)})")
        if pane in self.filled:
            return False
        self.filled[pane] = self.clock()
        if self.ready_at is None and not self.missing:
            self.ready_at = self.filled[pane]
            return True
        return False
