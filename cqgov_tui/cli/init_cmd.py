"""`cqgov init`: create a tier store."""

from __future__ import annotations

import click

from ..domain.entities import Tier
from ..errors import UnknownCode
from ..store import init_store
from . import main
from .common import emit_json, field, fresh_file, handle_errors, json_option, out


@main.command("init")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Store file to create.")
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]), help="Tier this store serves.")
@click.option("--code", required=True, help="Jurisdiction code (500000 for the city, a district or street code).")
@json_option
@handle_errors
def init(db_path: str, tier: str, code: str, as_json: bool) -> None:
    """Create a new store for one tier centre."""
    from ..geo.registry import get_registry

    reg = get_registry()
    j = reg.get(code)  # raises UnknownCode
    expected = {"city": "city", "district": "district", "street": "street"}[tier]
    if j.level.value != expected:
        raise UnknownCode(f"{code} ({j.name}) is a {j.level.value}, not a {tier}")
    with fresh_file(db_path):  # Ctrl-C part-way leaves no file that would block a re-run
        store = init_store(db_path, tier, code)
        try:
            info = {"db": db_path, "tier": tier, "code": code, "name": j.name, "epoch": store.epoch,
                    "store_schema_version": store.schema_version()}
        finally:
            store.close()
    if as_json:
        emit_json(info)
    else:
        out(f"created {field(db_path)}: {tier} store for {code} {field(j.name)} (epoch {info['epoch']})")
