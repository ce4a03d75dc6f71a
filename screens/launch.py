"""Open the console. ``cqgov tui`` reaches this module by name (``importlib``) and ``cqgov demo``
through the ``cqgov.console`` entry point, so the core never imports the UI statically.

Start-up order matters for the first frame: the store opens and the first
(light) queue poll runs on a thread while Textual is imported — DuckDB's
import, connect and query release the GIL for much of their time, so the two
overlap — and the app paints its panes already filled. The catalogue and registry are *not* loaded
before the first frame: the app loads them on a worker once the queue is on
screen (loading them earlier only competes for the GIL with the first frame).
"""

from __future__ import annotations

import threading


def run_console(server_url: str | None = None, token: str | None = None, db_path: str | None = None,
                lang: str | None = None, low_bandwidth: bool = False, high_contrast: bool = False,
                backend=None, role: str | None = None, sample: bool = False) -> int:
    """Open the console on a tier server (``server_url``, ``token``; ``db_path`` is then the replica)
    or a local store (``db_path``). Returns an exit code."""
    # Imported here, before the thread starts, so the two threads never import the same modules.
    from cqgov_tui.console.feed import ConsoleFeed
    from cqgov_tui.console.session import open_backend

    def open_and_poll():
        b = backend or open_backend(server_url=server_url, token=token, db_path=db_path, role=role, sample=sample,
                                    low_bandwidth=low_bandwidth)
        feed = ConsoleFeed(b, limit=100 if low_bandwidth else 300)
        try:
            first = feed.poll(None, light=True)
        except Exception:  # the app polls again and shows the error in its status bar
            first = None
        return b, feed, first

    opening = _Opening(open_and_poll)
    from .app import ConsoleApp
    from .keymap import config_path

    backend, feed, first = opening.result()

    state_path = config_path().parent / "console-state.json"
    app = ConsoleApp(backend, lang=lang, low_bandwidth=low_bandwidth, high_contrast=high_contrast,
                     state_path=state_path, feed=feed, first_frame=first)
    try:
        app.run()
    finally:
        backend.stop()
        if backend_idle(backend):
            try:
                backend.store.close()
            except Exception:  # closing is best effort on the way out
                pass
    return app.return_code or 0


def backend_idle(backend) -> bool:
    """No sync thread still uses the store (one abandoned mid-request keeps it open until exit)."""
    client = getattr(backend, "client", None)
    threads = getattr(client, "_threads", None) or []
    return not any(t.is_alive() for t in threads)


class _Opening:
    """A call on a thread; ``result()`` waits for it and raises what it raised (one-line errors)."""

    def __init__(self, fn):
        self._value = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name="cqgov-open", daemon=True)
        self._thread.start()

    def _run(self, fn) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def launch(**options) -> int:
    return run_console(**options)
