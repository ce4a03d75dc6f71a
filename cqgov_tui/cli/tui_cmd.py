"""`cqgov tui`: open the console against a tier server (through a local replica) or a local store."""

from __future__ import annotations

import importlib

import click

from . import main
from .common import handle_errors


@main.command("tui")
@click.option("--server", "server_url", default=None, help="Tier server URL (e.g. http://127.0.0.1:8700).")
@click.option("--token", default=None, envvar="CQGOV_TOKEN", help="Access token for the server.")
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
              help="Local store: the replica file with --server, else a store this console owns.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None, help="UI language (default zh, or $CQGOV_LANG).")
@click.option("--low-bandwidth", is_flag=True, help="Refresh less often and transfer less.")
@click.option("--high-contrast", is_flag=True, help="High-contrast theme.")
@click.option("--role", default=None, type=click.Choice(["duty_officer", "dispatcher", "department", "grid_worker", "auditor", "admin"]),
              help="Acting role for a local store (default admin).")
@handle_errors
def tui(server_url, token, db_path, lang, low_bandwidth, high_contrast, role) -> None:
    """The command-centre console (事件 · 地图 · 跑道 · 政令)."""
    # Looked up by name: the core package must not import the UI (import-linter contract).
    launcher = importlib.import_module("cqgov_screens.launch")
    code = launcher.launch(server_url=server_url, token=token, db_path=db_path, lang=lang,
                           low_bandwidth=low_bandwidth, high_contrast=high_contrast, role=role)
    raise SystemExit(code)
