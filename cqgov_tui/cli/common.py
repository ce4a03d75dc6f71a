"""Shared CLI plumbing: one-line errors, JSON output, store opening."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click

from ..errors import CqgovError


def handle_errors(fn: Callable) -> Callable:
    """Turn core errors into a one-line message and a non-zero exit; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CqgovError as exc:
            click.echo(f"cqgov: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("cqgov: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if not _is_store_error(exc):
                raise
            # a store that broke after it opened (disk full, truncated file)
            click.echo(f"cqgov: store error: {str(exc).splitlines()[0]}", err=True)
            sys.exit(5)

    return wrapper


def _is_store_error(exc: BaseException) -> bool:
    """A ``duckdb.Error``, without importing duckdb here: a command that never opened a store cannot
    raise one, and `cqgov tui` opens its store on the launcher's thread while Textual imports (a
    module-level ``import duckdb`` put its ~0.15 s on the main thread before that thread started)."""
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(exc, duckdb.Error)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_default))


def _default(obj):
    import dataclasses
    import enum

    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
db_option = click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Path of the DuckDB store.")
