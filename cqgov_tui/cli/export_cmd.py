"""`cqgov export`: a store's history as Hive-partitioned Parquet, incremental by change-log cursor."""

from __future__ import annotations

import click

from . import main
from .common import db_option, emit_json, handle_errors, json_option, out as say


@main.command("export")
@db_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory of the Parquet dataset.")
@click.option("--format", "fmt", type=click.Choice(["parquet"]), default="parquet", show_default=True)
@json_option
@handle_errors
def export(db_path, out, fmt, as_json) -> None:
    """Append what changed since the last run: events, directives, receipts, audit, readings, indicators
    under OUT/<kind>/tier=…/district=…/date=…/ (run it again: only what is new is added)."""
    from ..standards.export import export_history
    from ..store import open_store

    with open_store(db_path) as store:
        result = export_history(store, out)
    if as_json:
        emit_json(result)
    else:
        rows = "  ".join(f"{k} {v}" for k, v in result["rows"].items())
        say(f"{result['node']} seq {result['from_seq']}→{result['to_seq']}: {rows} ({result['files']} files)")
