"""Open the console. ``cqgov tui`` reaches this module by name (``importlib``) and ``cqgov demo``
through the ``cqgov.console`` entry point, so the core never imports the UI statically.

Start-up order: the store opens, names load (catalogue and the registry's
tree, both from disk caches) and the first poll (queue with names, map
colours, directives, link) runs on a thread while Textual is imported —
DuckDB's import, connect and query release the GIL for much of their time, so
the two overlap — and the app paints its panes already holding that frame.
The same thread then goes on loading what the runway board needs (risk
points) and computing the board (``ConsoleFeed.prefetch_board``) while the
first frame is drawn; the app's workers wait for those
loads rather than starting their own, and each pane fills as its data arrives
(``cqgov_tui.console.readiness`` says when every one has).

Every start after the first skips those loads: the launcher keeps the panes'
first content beside the store when it closes it (``console.start_snapshot``,
keyed by the store file and the user), and the next start on the same store
paints it in its first frame; the app's workers load the same from the store
once that frame is painted. On a local store that start does not even open
the store (nor import DuckDB) before the first frame: the snapshot's key
proves the file unchanged, so its tier, code and node stand for the store's
(``console.pending_store``), and the app opens it once the frame is painted.
A snapshot that does not match (the store was written since, another user, a
corrupt file) is ignored.
"""

from __future__ import annotations

import gc
import sys
import threading


def run_console(server_url: str | None = None, token: str | None = None, db_path: str | None = None,
                lang: str | None = None, low_bandwidth: bool = False, high_contrast: bool = False,
                backend=None, role: str | None = None, sample: bool = False) -> int:
    """Open the console on a tier server (``server_url``, ``token``; ``db_path`` is then the replica)
    or a local store (``db_path``). Returns an exit code."""
    start = _StartMode()
    try:
        return _run(start, server_url, token, db_path, lang, low_bandwidth, high_contrast, backend, role, sample)
    finally:
        start.end()


def _run(start: _StartMode, server_url, token, db_path, lang, low_bandwidth, high_contrast, backend, role,
         sample) -> int:
    # Imported here, before the thread starts, so the two threads never import the same modules.
    from cqgov_tui.console.feed import ConsoleFeed
    from cqgov_tui.console.session import open_backend, replica_path

    # The store the panes' start snapshot lives beside (none for the sample city or a given backend).
    store_path = None if backend is not None or sample else (db_path or (replica_path(server_url) if server_url
                                                                          else None))
    limit = 100 if low_bandwidth else 300

    def open_and_poll():
        # Imported here: its decoder's import (~0.05 s) then overlaps Textual's instead of preceding it.
        from cqgov_tui.console import start_snapshot

        # Read before the store opens: whether it still matches is told by the file, not by DuckDB.
        snap = start_snapshot.read(store_path) if store_path else None
        if snap is not None and db_path and not server_url and backend is None and not sample:
            pending = _pending_start(snap, db_path, role, limit)
            if pending is not None:
                return pending
        b = backend or open_backend(server_url=server_url, token=token, db_path=db_path, role=role, sample=sample,
                                    low_bandwidth=low_bandwidth)
        # Names first, so the first frame's rows carry them and need no second query and redraw: the
        # catalogue and the registry's tree come from disk caches (``catalogue.cached``,
        # ``console.geo_cache``) in a few hundredths of a second, while Textual is still importing.
        try:
            b.preload()
        except Exception:  # the app's worker loads them again and reports what fails
            pass
        feed = ConsoleFeed(b, limit=limit)
        snap = start_snapshot.usable(snap, b.user, limit)
        if snap is not None and b.loaded:
            return b, feed, None, snap
        try:
            first = feed.poll(None)
        except Exception:  # the app polls again and shows the error in its status bar
            first = None
        return b, feed, first, None

    def preload(opened) -> None:
        b, feed, _, snap = opened
        if snap is not None:
            return  # the app's workers load the board once the snapshot's frame is painted
        b.preload_board()
        feed.prefetch_board()  # the app's board worker takes this one (or waits for it)

    opening = _Opening(open_and_poll, then=preload)
    from .app import ConsoleApp
    from .keymap import config_path

    backend, feed, first, snap = opening.result()

    state_path = config_path().parent / "console-state.json"
    app = ConsoleApp(backend, lang=lang, low_bandwidth=low_bandwidth, high_contrast=high_contrast,
                     state_path=state_path, feed=feed, first_frame=first, snapshot=snap)
    app.started = start.end
    try:
        app.run()
    finally:
        backend.stop()
        if backend_idle(backend):
            from cqgov_tui.console.start_snapshot import close_and_keep

            close_and_keep(backend, store_path, limit)
    # A store opened after the snapshot's frame that could not be (locked meanwhile, damaged): the app
    # left at once, and its one-line error is told as a start without a snapshot tells it.
    error = getattr(backend.store, "error", None) if getattr(backend.store, "pending", False) else None
    if error is not None:
        raise error
    return app.return_code or 0


def _pending_start(snap, db_path: str, role, limit: int):
    """The every-day start on a local store: its snapshot matches the file, so the store's tier, code and
    node are the snapshot's, and the store is opened after the first frame (``console.pending_store``):
    neither DuckDB's import nor the open shares the interpreter with Textual's import and first paint.
    None when the snapshot cannot stand for the store (no metadata, a replica, another viewer)."""
    from cqgov_tui.console import start_snapshot
    from cqgov_tui.console.feed import ConsoleFeed
    from cqgov_tui.console.session import pending_local_backend

    if not (snap.tier and snap.code and snap.node):
        return None
    b = pending_local_backend(db_path, snap.tier, snap.code, snap.node, role=role)
    if b is None or start_snapshot.usable(snap, b.user, limit) is None:
        return None
    try:
        b.preload()  # names and the map's shapes, from their disk caches
    except Exception:  # the app's worker loads them again and reports what fails
        return None
    return b, ConsoleFeed(b, limit=limit), None, snap


def backend_idle(backend) -> bool:
    """No sync thread still uses the store (one abandoned mid-request keeps it open until exit)."""
    client = getattr(backend, "client", None)
    threads = getattr(client, "_threads", None) or []
    return not any(t.is_alive() for t in threads)


class _StartMode:
    """How the process runs until every pane is filled (``end``, called by the app then, or on the way out).

    Start-up makes about a million objects (Textual's import, the store's rows) and frees few: the
    collector's passes over them cost a tenth of a second or more and find next to nothing, so it is
    off until the end, which freezes what start-up made (later passes skip it) and turns it back on.
    Two threads share the GIL meanwhile (Textual's import and first paint; the store's import, queries
    and the board): a shorter switch interval stops each stat or read of an import waiting up to 5 ms
    for the other thread's next switch.
    """

    SWITCH_S = 0.0005

    def __init__(self) -> None:
        self._switch = sys.getswitchinterval()
        self._gc = gc.isenabled()
        self._ended = False
        gc.disable()
        sys.setswitchinterval(self.SWITCH_S)

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        sys.setswitchinterval(self._switch)
        if self._gc:
            gc.freeze()
            gc.enable()


class _Opening:
    """A call on a thread; ``result()`` waits for it and raises what it raised (one-line errors).

    ``then(result)`` runs afterwards on the same thread (daemon: it never holds up an exit); its
    errors are left for whoever needs the same work to meet again (the app's workers retry the loads).
    """

    def __init__(self, fn, then=None):
        self._value = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(fn, then), name="cqgov-open", daemon=True)
        self._thread.start()

    def _run(self, fn, then) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc
        finally:
            self._done.set()
        if then is not None and self._error is None:
            try:
                then(self._value)
            except Exception:  # the app's workers load the same on demand and report what fails
                pass

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


def launch(**options) -> int:
    return run_console(**options)
