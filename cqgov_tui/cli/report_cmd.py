"""`cqgov report ledger/ledgers`: 一表通 ledgers from a store, as CSV, XLSX or Parquet."""

from __future__ import annotations

import click

from . import main
from .common import db_option, emit_json, handle_errors, json_option, out as say


@main.group("report")
def report() -> None:
    """一表通: ledgers drawn from the system (definitions in the catalogue's ledgers.yaml)."""


@report.command("ledgers")
@json_option
@handle_errors
def ledgers(as_json) -> None:
    """List the ledgers: code, name, source and whether they take a period."""
    from ..catalogue.ledgers import load_ledgers

    found = load_ledgers()
    if as_json:
        emit_json([{"code": x.code, "name": x.name, "source": x.source, "period": x.period,
                    "grouped": x.grouped} for x in found.values()])
        return
    for x in found.values():
        say(f"{x.code:20} {x.name}  ({x.source}{', by ' + x.period if x.period else ', snapshot'})")


@report.command("ledger")
@click.argument("name")
@db_option
@click.option("--period", default=None, help="A month (2026-11) or a day (2026-11-24), China Standard Time.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "parquet"]), default="csv", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write (replaced atomically).")
@json_option
@handle_errors
def ledger(name, db_path, period, fmt, out, as_json) -> None:
    """Write ledger NAME (code or name, e.g. event_disposal or 事件处置台账) for a period."""
    from ..standards.ledgers import export
    from ..store import open_store

    with open_store(db_path, read_only=True) as store:
        result = export(store, name, period=period, fmt=fmt, out=out)
    if as_json:
        emit_json(result)
    else:
        totals = "".join(f"  {k} {v}" for k, v in result["totals"].items())
        say(f"{result['name']} {result['period'] or ''} → {out}: {result['rows']} rows{totals}")
