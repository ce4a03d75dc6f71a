"""`cqgov serve`: run one tier server (city, district or street) on uvicorn."""

from __future__ import annotations

import os

import click

from ..domain.entities import Tier
from ..errors import BadInput, UnknownCode
from . import main
from .common import handle_errors


def open_or_create(db_path: str, tier: str, code: str):
    """Open the tier's store, creating it on first start; a store of another tier or code is refused."""
    from ..geo.registry import get_registry
    from ..store import init_store, open_store

    j = get_registry().get(code)
    if j.level.value != tier:
        raise UnknownCode(f"{code} ({j.name}) is a {j.level.value}, not a {tier}")
    if not os.path.exists(db_path):
        return init_store(db_path, tier, code)
    store = open_store(db_path)
    if store.tier.value != tier or store.code != code:
        store.close()
        raise BadInput(f"{db_path} is the {store.tier.value} store of {store.code}, not the {tier} store of {code}")
    return store


@main.command("serve")
@click.option("--tier", required=True, type=click.Choice([t.value for t in Tier]), help="Tier this server runs.")
@click.option("--code", required=True, help="Jurisdiction code (500000, a district or a street code).")
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="Store file (created if missing).")
@click.option("--upstream", default=None, help="URL of the tier above (a district's city, a street's district).")
@click.option("--upstream-token", default=None, envvar="CQGOV_UPSTREAM_TOKEN",
              help="Token issued by the tier above for this server (or CQGOV_UPSTREAM_TOKEN).")
@click.option("--secret-file", default=None, type=click.Path(dir_okay=False),
              help="HMAC secret for tokens (default <db>.secret, created 0600 if missing).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.option("--sweep-every", default=5.0, show_default=True, type=click.FloatRange(0.05, 3600),
              help="Seconds between SLA and directive sweeps.")
@click.option("--readings-retention", default=None,
              help="Keep raw sensor readings this long (e.g. 2d, 36h; default 2d, kept in the store); older "
                   "ones are rolled up into buckets.")
@click.option("--rollup-bucket", default=None, help="Roll-up bucket width (e.g. 1h, 5m; default 1h).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@handle_errors
def serve(tier, code, db_path, upstream, upstream_token, secret_file, host, port, sweep_every, readings_retention,
          rollup_bucket, log_level) -> None:
    """Run a tier server owning its DuckDB store (Ctrl-C stops it cleanly)."""
    import uvicorn

    from ..server.app import TierServer, TierUvicorn, create_app
    from ..server.auth import TokenAuthority, load_secret

    if tier == Tier.CITY.value and upstream:
        raise BadInput("the city server has no upstream")
    if tier != Tier.CITY.value and upstream and not upstream_token:
        raise BadInput("--upstream needs --upstream-token (a peer token issued by the tier above)")
    from ..store.sensors import BUCKET_KEY, RETENTION_KEY
    from .store_cmd import parse_age

    settings = {key: parse_age(text) for key, text in ((RETENTION_KEY, readings_retention),
                                                        (BUCKET_KEY, rollup_bucket)) if text is not None}
    store = open_or_create(db_path, tier, code)
    try:
        for key, seconds in settings.items():  # remembered by the store for later starts
            store.set_meta(key, repr(seconds))
        authority = TokenAuthority(load_secret(secret_file or db_path + ".secret"))
        server = TierServer(store, authority, upstream=upstream, upstream_token=upstream_token, sweep_every=sweep_every)
        app = create_app(server)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                timeout_graceful_shutdown=1, access_log=False)
        TierUvicorn(config, server).run()
    finally:
        store.close()
