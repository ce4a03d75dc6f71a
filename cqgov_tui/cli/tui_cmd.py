"""`cqgov tui`: open the console against a tier server (through a local replica) or a local store."""

from __future__ import annotations

import importlib

import click

from ..errors import BadInput
from . import main
from .common import (catalogue_option, from_config, handle_errors, lang_option, server_option, token_option,
                     use_catalogue)


@main.command("tui")
@server_option("server_url", required=False)
@token_option(required=False)
@click.option("--db", "db_path", default=from_config("db"), envvar="CQGOV_DB", type=click.Path(dir_okay=False),
              show_default="$CQGOV_DB or the config file's db",
              help="Local store: the replica file with --server, else a store this console owns.")
@lang_option()
@click.option("--low-bandwidth", is_flag=True, help="Refresh less often and transfer less.")
@click.option("--high-contrast", is_flag=True, help="High-contrast theme.")
@click.option("--role", default=None, type=click.Choice(["duty_officer", "dispatcher", "department", "grid_worker", "auditor", "admin"]),
              help="Acting role for a local store (default admin).")
@catalogue_option
@handle_errors
def tui(server_url, token, db_path, lang, low_bandwidth, high_contrast, role, catalogue_dir) -> None:
    """The command-centre console (事件 · 地图 · 跑道 · 政令)."""
    use_catalogue(catalogue_dir)  # the district's own categories, plans and 特色子跑道 for names and the board
    if server_url and not token:
        # Without a token every request is refused: say what is missing instead of opening "offline".
        raise BadInput(f"--server {server_url} needs a token: --token, $CQGOV_TOKEN or `token` in the config file "
                       "(a server's admin issues one with `cqgov token create`)")
    # Looked up by name: the core package must not import the UI (import-linter contract).
    launcher = importlib.import_module("cqgov_screens.launch")
    code = launcher.launch(server_url=server_url, token=token, db_path=db_path, lang=lang,
                           low_bandwidth=low_bandwidth, high_contrast=high_contrast, role=role)
    raise SystemExit(code)
