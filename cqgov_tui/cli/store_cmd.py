"""`cqgov store …`: upkeep of a store file — archive old history to Parquet (see ``store.archive``)."""

from __future__ import annotations

import datetime as _dt
import os

import click

from ..errors import BadInput
from . import main
from .common import db_option, emit_json, handle_errors, json_option

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' or plain seconds → seconds (positive)."""
    t = (text or "").strip().lower()
    try:
        value = float(t[:-1]) * _UNITS[t[-1]] if t and t[-1] in _UNITS else float(t)
    except (ValueError, KeyError):
        raise BadInput(f"unreadable duration {text!r} (use 30d, 12h, 90m, 45s or seconds)") from None
    if not value > 0 or value == float("inf"):
        raise BadInput(f"duration {text!r} must be positive")
    return value


def parse_date(text: str) -> float:
    """A local (Asia/Shanghai) date 'YYYY-MM-DD' (its midnight) or ISO date-time → epoch seconds."""
    from ..clock import CST

    try:
        when = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(f"unreadable date {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=CST)
    return when.timestamp()


@main.group("store")
def store_group() -> None:
    """Store upkeep: archive old readings and closed events to Parquet."""


@store_group.command("archive")
@db_option
@click.option("--before", default=None, help="Archive what is older than this local date (YYYY-MM-DD).")
@click.option("--older-than", default=None, help="Archive what is older than this age (e.g. 30d, 12h).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the Parquet files (one subdirectory per kind; created if missing).")
@json_option
@handle_errors
def archive_cmd(db_path, before, older_than, out_dir, as_json) -> None:
    """Export raw readings, roll-ups and closed events older than a cutoff to Parquet, then drop them.

    Open events are never archived, nor closed ones an open event still points
    at. Audit entries of archived events are copied out and kept (the chain
    still verifies). Replicas keep their copies of dropped events; archive the
    owning tier server's store (stopped), never a replica.
    """
    from ..clock import SystemClock, fmt_local
    from ..store import open_store
    from ..store.archive import archive

    if (before is None) == (older_than is None):
        raise BadInput("give exactly one of --before DATE or --older-than AGE")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise BadInput(f"{out_dir}: not a directory")
    cutoff = parse_date(before) if before is not None else SystemClock().now() - parse_age(older_than)
    store = open_store(db_path)
    try:
        if store.node != f"{store.tier.value}-{store.code}":
            # Tier servers are named <tier>-<code>; replicas and consoles carry other names.
            raise BadInput(f"{db_path} is a replica (node {store.node}) of {store.tier.value} {store.code}: "
                           "archive the owning server's store instead")
        result = archive(store, cutoff, out_dir)
    finally:
        store.close()
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"archived what is older than {fmt_local(cutoff, with_date=True)} to {result.out_dir}")
    for kind, n in result.rows.items():
        note = " (copied; kept in the store)" if kind == "audit" and n else ""
        where = f" → {result.files[kind]}" if kind in result.files else ""
        click.echo(f"  {kind:<16} {n:>10,}{note}{where}")
