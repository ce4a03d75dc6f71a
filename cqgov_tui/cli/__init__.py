"""The `cqgov` command line: one click group; each command family lives in its own module.

Modules are imported only when their command runs (or for ``--help``), so
`cqgov tui` does not pay for the server, sync and bench stacks at start-up.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

# command name → module that registers it on ``main`` when imported
_COMMANDS = {
    "init": "init_cmd",
    "events": "events_cmd",
    "map": "map_cmd",
    "locate": "map_cmd",
    "fixtures": "fixtures_cmd",
    "audit": "audit_cmd",
    "kpi": "kpi_cmd",
    "review": "review_cmd",
    "sensors": "sensors_cmd",
    "sync": "sync_cmd",
    "drill": "drill_cmd",
    "tui": "tui_cmd",
    "serve": "serve_cmd",
    "token": "token_cmd",
    "directive": "directive_cmd",
    "simulate": "simulate_cmd",
    "demo": "demo_cmd",
    "store": "store_cmd",
    "report": "report_cmd",
    "export": "export_cmd",
    "web": "web_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _COMMANDS.get(name)
        if module is not None and name not in self.commands:
            importlib.import_module(f"{__name__}.{module}")
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cqgov")
def main() -> None:
    """cqgov — terminal command centre for Chongqing's city operations centres."""
