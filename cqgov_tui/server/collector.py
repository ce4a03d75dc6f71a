"""The tier server process's garbage-collector settings.

Every command allocates a few hundred short-lived containers (row images,
change-log dicts, replies) and a group keeps them alive until its commit, so
with CPython's default thresholds (a young collection every 700 allocations)
they were promoted and the collector kept walking the long-lived heap — the
registry, the catalogue, the open-event index: about 12 % of an ingest run's
time in process. The server's objects are freed by reference counting; the
cycle collector only has to catch the rare cycle, so it can run far less often.
"""

from __future__ import annotations

import gc

YOUNG_EVERY = 50_000  # allocations between young-generation collections (CPython's default: 700)


def tune_for_serving() -> None:
    """Call once the server is built, before it serves: what exists now (modules, catalogue, geography,
    app) is moved out of the collector's sight for good, and collections are made rarer."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_EVERY, middle, old)
