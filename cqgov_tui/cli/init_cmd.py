"""`cqgov init`: create a tier store."""

from __future__ import annotations

import click

from ..domain.entities import Tier
from ..errors import UnknownCode
from ..store import init_store
from . import main
from .common import catalogue_option, emit_json, field, fresh_file, handle_errors, json_option, out, use_catalogue


@main.command("init")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Store file to create.")
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]), help="Tier this store serves.")
@click.option("--code", required=True, help="Jurisdiction code (500000 for the city, a district or street code).")
@catalogue_option
@json_option
@handle_errors
def init(db_path: str, tier: str, code: str, catalogue_dir: str | None, as_json: bool) -> None:
    """Create a new store for one tier centre (with --catalogue: the district's own catalogue, validated and
    recorded in the store, so `serve` on it uses the catalogue without being told again)."""
    from ..catalogue.cached import META_KEY
    from ..geo.registry import get_registry

    reg = get_registry()
    j = reg.get(code)  # raises UnknownCode
    expected = {"city": "city", "district": "district", "street": "street"}[tier]
    if j.level.value != expected:
        raise UnknownCode(f"{code} ({j.name}) is a {j.level.value}, not a {tier}")
    catalogue = use_catalogue(catalogue_dir, export=False)  # refused before any file is made
    with fresh_file(db_path):  # Ctrl-C part-way leaves no file that would block a re-run
        store = init_store(db_path, tier, code)
        try:
            if catalogue:
                store.set_meta(META_KEY, catalogue)
            info = {"db": db_path, "tier": tier, "code": code, "name": j.name, "epoch": store.epoch,
                    "store_schema_version": store.schema_version(), "catalogue": catalogue}
        finally:
            store.close()
    if as_json:
        emit_json(info)
    else:
        out(f"created {field(db_path)}: {tier} store for {code} {field(j.name)} (epoch {info['epoch']})")
