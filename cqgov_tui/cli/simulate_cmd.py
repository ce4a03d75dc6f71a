"""`cqgov simulate`: feed a tier server with realistic events."""

from __future__ import annotations

import click

from . import main
from .common import emit_json, handle_errors, json_option, out, server_option, token_option


@main.command("simulate")
@server_option()
@token_option()
@click.option("--rate", default=2.0, show_default=True, type=click.FloatRange(0, 10_000), help="Mean new events per second.")
@click.option("--for", "duration", default=None, help="Stop after this long (30s, 5m); default: until Ctrl-C.")
@click.option("--code", default=None, help="Place events inside this jurisdiction (default: the server's own).")
@click.option("--seed", default=None, type=int, help="Random seed for a repeatable feed.")
@json_option
@handle_errors
def simulate(server, token, rate, duration, code, seed, as_json) -> None:
    """Citizen reports, grid patrols and sensor alarms with a city's daily rhythm."""
    from dataclasses import asdict

    from ..catalogue.loader import load_catalogue
    from ..clock import SystemClock
    from ..geo.registry import get_registry
    from ..server.remote import Remote
    from ..sim.simulator import Simulator, Target
    from .values import parse_duration

    seconds = parse_duration(duration, "--for") if duration else None
    remote = Remote(server, token)
    try:
        place = code or remote.health()["code"]
        registry = get_registry()
        registry.get(place)
        sim = Simulator([Target(server, token, place, remote)], load_catalogue(), registry, SystemClock(), rate, seed=seed)
        try:
            stats = sim.run(seconds)
        except KeyboardInterrupt:
            sim.stop()
            stats = sim.stats
    finally:
        remote.close()
    if as_json:
        emit_json(asdict(stats))
    else:
        out(f"reported {stats.accepted} events ({stats.rejected} refused, {stats.failures} undelivered), "
                   f"{stats.actions} loop actions")
