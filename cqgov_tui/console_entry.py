"""How the headless core finds the interactive console without importing the UI.

The UI package registers itself under the ``cqgov.console`` entry point (see
pyproject.toml); the core only looks the name up, so `cqgov` stays usable —
and the import contract holds — where the console is not installed.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Callable


def find_console() -> Callable | None:
    """The console launcher (``run_console(**options)``), or None when no UI is installed."""
    for ep in entry_points(group="cqgov.console"):
        return ep.load()
    return None
