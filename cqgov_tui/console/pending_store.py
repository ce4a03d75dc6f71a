"""A store the console opens after its first frame: who it is is known before DuckDB is even imported.

On an every-day start the panes' first content comes from the start snapshot
(``console.start_snapshot``), whose key proves the store file is unchanged
since it was written: the store's tier and code recorded in it are the
store's. Importing DuckDB and opening a big store then only slows the first
frame down (they share the interpreter with Textual's import and first
paint), so the launcher hands the console a ``PendingStore`` instead: it
answers ``path``, ``tier``, ``code``, ``node``, ``is_replica`` and ``clock``
from the snapshot at once, and everything else from the real store, which
``open()`` opens (once, on whichever thread asks first; the others wait for
it). The console opens it right after the first frame is painted.

An open that fails (the store locked by another process meanwhile, damaged)
fails every later access with the same one-line error; nothing is written.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from ..clock import Clock
from ..domain.entities import Tier


class PendingStore:
    """Stands for the store at ``path`` until ``open()``; then every attribute is the real store's."""

    pending = True  # what the console asks to know it must open it (``cqgov_screens.app``)

    def __init__(self, path: str, tier: Tier, code: str, node: str, clock: Clock,
                 opener: Callable[[], Any]) -> None:
        self.path = path
        self.tier = tier
        self.code = code
        self.node = node
        self.clock = clock
        self._opener = opener
        self._lock = threading.Lock()
        self._store: Any = None
        self._error: BaseException | None = None

    @property
    def is_replica(self) -> bool:
        from ..ownership import Node

        return self.node != Node(self.tier, self.code).name  # a tier store is the node ``<tier>-<code>``

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @property
    def error(self) -> BaseException | None:
        """Why the store could not be opened, once an open was tried and failed."""
        return self._error

    def open(self) -> Any:
        """The real store, opened now if it is not yet; raises the open's error (every time)."""
        if self._store is not None:
            return self._store
        with self._lock:
            if self._store is None and self._error is None:
                try:
                    self._store = self._opener()
                except BaseException as exc:  # kept: every later access says the same
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._store

    def close(self) -> None:
        """Close the real store if it was opened; a store never opened is left as it is on disk."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def __getattr__(self, name: str) -> Any:
        # Only for what ``__init__`` does not set: the real store's tables, queries and caches.
        if name.startswith("__") or name in ("_opener", "_lock", "_store", "_error"):
            raise AttributeError(name)
        return getattr(self.open(), name)
