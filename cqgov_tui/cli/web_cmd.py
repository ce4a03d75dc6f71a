"""`cqgov web`: the console in a browser, for staff without a terminal (textual-serve)."""

from __future__ import annotations

import shlex
import sys

import click

from . import main
from .common import handle_errors


def tui_command(args: tuple[str, ...] | list[str]) -> str:
    """The shell command each browser session runs: this Python's `cqgov tui` with the given arguments."""
    return f"{shlex.quote(sys.executable)} -m cqgov_tui tui {shlex.join(list(args))}".strip()


@main.command("web", context_settings={"ignore_unknown_options": True})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--public-url", default=None, help="URL browsers reach this server at (default http://HOST:PORT).")
@click.argument("tui_args", nargs=-1, type=click.UNPROCESSED)
@handle_errors
def web(host, port, public_url, tui_args) -> None:
    """Serve the console (事件 · 地图 · 跑道 · 政令) over HTTP; each browser tab runs its own
    `cqgov tui TUI_ARGS…` (after `--`), e.g. `cqgov web --port 8080 -- --db console.duckdb`."""
    from importlib.resources import files

    from textual_serve.server import Server

    page = files("cqgov_fixtures") / "web"
    static = files("textual_serve") / "static"
    server = Server(tui_command(tui_args), host=host, port=port, title="cqgov 城市运行和治理中心",
                    public_url=public_url, templates_path=str(page), statics_path=str(static))
    server.serve()
