"""Entry the CLI reaches by name (``importlib``), so the core never imports the UI statically."""

from __future__ import annotations


def launch(**options) -> int:
    from .app import run_console

    return run_console(**options)
