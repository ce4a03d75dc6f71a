"""Open the console. ``cqgov tui`` reaches this module by name (``importlib``) and ``cqgov demo``
through the ``cqgov.console`` entry point, so the core never imports the UI statically.

Start-up order matters for the first frame: the store opens and the catalogue
and registry start loading on a thread *before* Textual is imported, so the
two overlap.
"""

from __future__ import annotations

import threading


def run_console(server_url: str | None = None, token: str | None = None, db_path: str | None = None,
                lang: str | None = None, low_bandwidth: bool = False, high_contrast: bool = False,
                backend=None, role: str | None = None, sample: bool = False) -> int:
    """Open the console on a tier server (``server_url``, ``token``; ``db_path`` is then the replica)
    or a local store (``db_path``). Returns an exit code."""
    if backend is None:
        from cqgov_tui.console.session import open_backend

        backend = open_backend(server_url=server_url, token=token, db_path=db_path, role=role, sample=sample)
    threading.Thread(target=_preload, args=(backend,), name="cqgov-preload", daemon=True).start()

    from .app import ConsoleApp
    from .keymap import config_path

    state_path = config_path().parent / "console-state.json"
    app = ConsoleApp(backend, lang=lang, low_bandwidth=low_bandwidth,
                     high_contrast=high_contrast, state_path=state_path)
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


def _preload(backend) -> None:
    try:
        backend.preload()
    except Exception:  # the app loads again on demand and shows the error there
        pass


def launch(**options) -> int:
    return run_console(**options)
