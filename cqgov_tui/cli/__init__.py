"""The `cqgov` command line: one click group; each command family lives in its own module."""

from __future__ import annotations

import importlib

import click

from .. import __version__

# Command modules register themselves on ``main``; listed here so start-up
# imports only click until a command actually runs.
_COMMAND_MODULES = [
    "init_cmd",
    "events_cmd",
    "map_cmd",
    "fixtures_cmd",
    "audit_cmd",
    "kpi_cmd",
    "review_cmd",
    "sensors_cmd",
    "sync_cmd",
    "drill_cmd",
    "tui_cmd",
    "serve_cmd",
    "token_cmd",
    "directive_cmd",
    "simulate_cmd",
    "demo_cmd",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cqgov")
def main() -> None:
    """cqgov — terminal command centre for Chongqing's city operations centres."""


for _name in _COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a command family not built yet
        if exc.name != f"{__name__}.{_name}":
            raise
