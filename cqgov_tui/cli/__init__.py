"""The `cqgov` command line: one click group; each command family lives in its own module.

Modules are imported only when their command runs (or for ``--help``), so
`cqgov tui` does not pay for the server, sync and bench stacks at start-up.
"""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput, CqgovError

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
    "roster": "roster_cmd",
    "tasks": "tasks_cmd",
    "notify": "notify_cmd",
    "report": "report_cmd",
    "export": "export_cmd",
    "web": "web_cmd",
    "attachments": "attachments_cmd",
    "risk": "risk_cmd",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _COMMANDS.get(name)
        if module is not None and name not in self.commands:
            importlib.import_module(f"{__name__}.{module}")
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's own, except that every mistake is one line: usage errors (click prints three), errors
        raised while options are read (a malformed config file), and arguments that are not UTF-8."""
        from .common import fail, internal_error, out

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            _check_utf8(sys.argv[1:] if args is None else args)
            rv = super().main(args, prog_name or "cqgov", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # `cqgov events`: the group's help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            path = exc.ctx.command_path.split(" ", 1)[1:] if exc.ctx is not None else None
            hint = f" (see `{' '.join(['cqgov', *path])} --help`)" if path is not None else ""
            out(f"cqgov: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.ClickException as exc:
            out(f"cqgov: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except CqgovError as exc:
            fail(exc)
        except (click.Abort, KeyboardInterrupt):
            out("cqgov: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # outside any command's own handling (option parsing, lazy import)
            internal_error(exc)
        sys.exit(rv if isinstance(rv, int) else 0)  # click returns ctx.exit()'s code (e.g. --help's 0)


def _check_utf8(args) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates; refuse them before any command sees them."""
    for arg in args:
        try:
            str(arg).encode("utf-8")
        except UnicodeEncodeError:
            shown = str(arg).encode("utf-8", "backslashreplace").decode("ascii", "replace")[:60]
            raise BadInput(f"argument {shown!r} is not valid UTF-8") from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cqgov")
@click.option("-v", "--verbose", count=True, help="More output on stderr: -v info logs (and tracebacks of "
              "internal errors), -vv debug.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr; only errors.")
def main(verbose: int, quiet: bool) -> None:
    """cqgov — terminal command centre for Chongqing's city operations centres.

    Defaults for --server, --token, --lang and --db come from CQGOV_SERVER, CQGOV_TOKEN, CQGOV_LANG and
    CQGOV_DB, else from the config file (see README: Configuration); a flag always wins."""
    from .common import set_verbosity

    if quiet and verbose:
        raise click.UsageError("give -v or -q, not both")
    set_verbosity(-1 if quiet else verbose)
