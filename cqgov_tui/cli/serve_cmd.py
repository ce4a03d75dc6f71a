"""`cqgov serve`: run one tier server (city, district or street) on uvicorn."""

from __future__ import annotations

import logging
import os
import signal
import socket

import click

from ..domain.entities import Tier
from ..errors import BadInput, CannotStart, UnknownCode
from . import main
from ..catalogue.cached import META_KEY as CATALOGUE_KEY
from .common import catalogue_option, check_secret_file, handle_errors, log_to, use_catalogue, verbosity

log = logging.getLogger("cqgov.serve")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is created: a busy port is refused in one line and
    leaves no store or secret behind. uvicorn serves on this very socket (no window for another process)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CannotStart(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def open_or_create(db_path: str, tier: str, code: str):
    """Open the tier's store, creating it on first start; a store of another tier or code is refused."""
    from ..store import init_store, open_store

    check_tier_code(tier, code)
    if not os.path.exists(db_path):
        return init_store(db_path, tier, code)
    store = open_store(db_path)
    if store.is_replica:
        from ..sync.identity import check_tier_store

        try:
            check_tier_store(store)
        finally:
            store.close()
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
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="What goes to the log (start, stop, upstream trouble at info; -vv is debug).")
@click.option("--log-file", default=None, type=click.Path(dir_okay=False),
              help="Append the log here instead of stderr.")
@click.option("--notify-config", default=None, type=click.Path(dir_okay=False),
              help="TOML: [email] smtp_host/smtp_port/sender, [webhook] url, [[route]] roles/priorities/channels, "
                   "[escalation] ack_after (README: Notifications).")
@click.option("--grid-tasks", is_flag=True, help="Generate this jurisdiction's periodic grid tasks each day.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a client has to send a request's headers; slower connections are closed.")
@click.option("--body-timeout", default=150.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds a client has to send a request's body (a 1 MiB batch at 64 kbit/s takes ~130 s).")
@click.option("--denial-limit", default=120, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Refused requests a caller may make in a minute; past it the caller is answered 429 until "
                   "the minute ends.")
@catalogue_option
@handle_errors
def serve(tier, code, db_path, upstream, upstream_token, secret_file, host, port, sweep_every, readings_retention,
          rollup_bucket, log_level, log_file, notify_config, grid_tasks, header_timeout, body_timeout,
          denial_limit, catalogue_dir) -> None:
    """Run a tier server owning its DuckDB store (Ctrl-C stops it cleanly)."""
    from ..store.sensors import BUCKET_KEY, RETENTION_KEY
    from .values import parse_duration

    # Everything that can be refused is checked before anything is created: flags, code, port, secret.
    if tier == Tier.CITY.value and upstream:
        raise BadInput("the city server has no upstream")
    if tier != Tier.CITY.value and upstream and not upstream_token:
        raise BadInput("--upstream needs --upstream-token (a peer token issued by the tier above)")
    settings = {key: parse_duration(text, what) for key, text, what in (
        (RETENTION_KEY, readings_retention, "--readings-retention"), (BUCKET_KEY, rollup_bucket, "--rollup-bucket"))
        if text is not None}
    check_tier_code(tier, code)
    use_catalogue(catalogue_dir or _recorded_catalogue(db_path))  # a district's plans, categories, 特色子跑道
    people = {"grid_tasks": grid_tasks}
    if notify_config:
        from ..notify.config import load_config

        people["notify_config"] = load_config(notify_config)
    secret_path = secret_file or db_path + ".secret"
    check_secret_file(secret_path)
    sock = bind(host, port)
    try:
        log_to(log_file, "debug" if verbosity() >= 2 else log_level)
        _run(sock, tier, code, db_path, secret_path, settings, upstream, upstream_token, sweep_every, log_level, people,
             timeouts={"header_timeout": header_timeout, "body_timeout": body_timeout}, denial_limit=denial_limit)
    finally:
        sock.close()


def _run(sock, tier, code, db_path, secret_path, settings, upstream, upstream_token, sweep_every, log_level,
         people=None, timeouts=None, denial_limit=120) -> None:
    from ..server.app import TierServer, TierUvicorn, create_app
    from ..server.http import server_config
    from ..server.auth import TokenAuthority, load_secret

    # uvicorn stops on SIGTERM and then raises it again to the handler it found; the default one would end
    # the process there, before the store is closed. This one ends it through the finally below.
    previous = signal.signal(signal.SIGTERM, _stop)
    store = open_or_create(db_path, tier, code)
    try:
        for key, seconds in settings.items():  # remembered by the store for later starts
            store.set_meta(key, repr(seconds))
        authority = TokenAuthority(load_secret(secret_path))
        host, port = sock.getsockname()[:2]
        server = TierServer(store, authority, upstream=upstream, upstream_token=upstream_token, sweep_every=sweep_every,
                            public_url=f"http://{host}:{port}", denial_limit=denial_limit, **(people or {}))
        app = create_app(server)
        # log_config=None: uvicorn's loggers go through ours (the --log-file, or stderr made safe).
        # server_config: uvicorn with header and body read timeouts (a slow-loris client is cut off).
        config = server_config(app, host=host, port=port, log_level=log_level, log_config=None, **(timeouts or {}))
        log.info("%s server for %s %s on http://%s:%s, store %s (node %s, epoch %s)%s", tier, code,
                 get_name(code), host, port, db_path, store.node, store.epoch,
                 f", upstream {upstream}" if upstream else "")
        from ..server.collector import tune_for_serving

        tune_for_serving()
        TierUvicorn(config, server).run(sockets=[sock])
    finally:
        log.info("stopped; closing the store")
        store.close()
        signal.signal(signal.SIGTERM, previous)


def _recorded_catalogue(db_path: str) -> str | None:
    """The catalogue ``init --catalogue`` recorded in an existing store (None: none, or no store yet)."""
    import os

    if not os.path.exists(db_path):
        return None
    from ..store import open_store

    try:
        with open_store(db_path, read_only=True) as store:
            return store.meta(CATALOGUE_KEY)
    except Exception:  # opened (and its problem named) again below
        return None


def _stop(signum, frame) -> None:
    raise SystemExit(0)


def get_name(code: str) -> str:
    from ..geo.registry import get_registry

    return get_registry().get(code).name


def check_tier_code(tier: str, code: str) -> None:
    """The code exists and is a jurisdiction of this tier."""
    from ..geo.registry import get_registry

    j = get_registry().get(code)
    if j.level.value != tier:
        raise UnknownCode(f"{code} ({j.name}) is a {j.level.value}, not a {tier}")
