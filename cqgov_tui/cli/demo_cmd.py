"""`cqgov demo`: a city, districts and streets on loopback, a simulator feeding them, and the console.

Headless (``--headless --for 40s --json``) it runs for the duration, sends
directives from the city and lets the streets answer them, stops every
server, checks the stores (the city holds events from at least two
districts, each once, each also in its district's store) and prints a
summary per tier. Exit status 0 means those checks passed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import os
import signal
import sys

import click

from ..errors import BadInput
from . import main
from .common import emit_json, handle_errors


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    t = (text or "").strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except (ValueError, KeyError):
        raise BadInput(f"unreadable duration {text!r} (use 40s, 2m or seconds)") from None
    if value <= 0:
        raise BadInput("duration must be positive")
    return value


def _console_entry():
    """The console launcher registered by the UI package (entry point), else None."""
    from ..console_entry import find_console

    return find_console()


# The console's exit codes when the terminal hung up or the user pressed Ctrl-C (128 + signal number).
CONSOLE_GONE = (128 + signal.SIGHUP, 128 + signal.SIGINT)


def _open_console(run_console, run, data_dir: str, lang: str) -> int:
    """The console on the city server, through its own replica in ``data_dir``.

    The demo's one seat acts as the city's admin, so a single person can walk an event through
    every stage (field stages included) and send directives. ``--lang`` wins when given on the
    command line; otherwise the console follows ``$CQGOV_LANG`` (default Chinese).
    """
    from ..domain.entities import Role

    explicit = click.get_current_context().get_parameter_source("lang") is not click.core.ParameterSource.DEFAULT
    h = run.hierarchy
    token = h.token(h.city, Role.ADMIN.value, user="console")
    return run_console(server_url=h.city.url, token=token, db_path=os.path.join(data_dir, "console.duckdb"),
                       lang=lang if explicit else None) or 0


@main.command("demo")
@click.option("--headless", is_flag=True, help="No console: run, summarise, exit.")
@click.option("--for", "duration", default="60s", show_default=True, help="How long to run headless (40s, 2m).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Where the stores go (default: a new temp dir).")
@click.option("--rate", default=4.0, show_default=True, type=click.FloatRange(0.1, 1000), help="Simulated events per second.")
@click.option("--districts", default="500108,500112", show_default=True, help="Comma-separated district codes (≥ 2).")
@click.option("--streets-per-district", default=2, show_default=True, type=click.IntRange(1, 10))
@click.option("--seed", default=20261118, show_default=True, type=int)
@click.option("--lang", default="zh", show_default=True, type=click.Choice(["zh", "en"]), help="Console language.")
@handle_errors
def demo(headless, duration, as_json, data_dir, rate, districts, streets_per_district, seed, lang) -> None:
    """Start an embedded hierarchy of tier servers and a simulator (and the console unless --headless)."""
    from ..geo.registry import get_registry
    from ..sim.demo import DemoRun
    from ..sim.hierarchy import choose

    run_console = None
    if not headless:
        run_console = _console_entry()
        if run_console is None:
            click.echo("cqgov: the console is not available in this build; run `cqgov demo --headless` instead", err=True)
            sys.exit(2)
    seconds = parse_duration(duration)
    codes = [c.strip() for c in districts.split(",") if c.strip()]
    if len(codes) < 2:
        raise BadInput("the demo needs at least two districts")
    registry = get_registry()
    layout = choose(registry, codes, streets_per_district)
    if data_dir is None:
        import tempfile

        data_dir = tempfile.mkdtemp(prefix="cqgov-demo-")
    run = DemoRun(data_dir, layout, registry, rate=rate, seed=seed)

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    # A closed terminal (SIGHUP) stops everything like SIGTERM does. While the console runs, its own
    # handler saves its state first; it puts this one back when it closes.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's stack to stderr, for a demo that seems stuck
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        if not as_json:
            click.echo(f"starting {len(run.hierarchy.nodes)} tier servers in {data_dir} …", err=True)
        run.start()
        if run_console is not None:
            run.start_feed()
            code = _open_console(run_console, run, data_dir, lang)
            if code in CONSOLE_GONE:
                # No summary: the terminal is gone or the user wants out now. Stop every server at once.
                run.abort()
                with contextlib.suppress(OSError):
                    click.echo("cqgov: console closed; all servers stopped", err=True)
                sys.exit(code)
            summary = run.finish()
        else:
            summary = run.run_for(seconds, progress=None if as_json else lambda m: click.echo(m, err=True))
    except KeyboardInterrupt:
        run.abort()
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            click.echo("cqgov: interrupted; all servers stopped", err=True)
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        run.abort()
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)
    sys.exit(0 if summary["ok"] else 1)


def _print_summary(s: dict) -> None:
    click.echo(f"ran {s['duration_s']:.0f}s with {s['servers']} servers; data in {s['data_dir']}")
    for tier in ("city", "district", "street"):
        for n in s["tiers"][tier]:
            click.echo(f"  {n['node']:<20} events {n['events']:>5}  directives {n['directives']:>2}  receipts "
                       f"{n['receipts']:>3}  lag {n.get('sync_lag_s')}  bytes {n.get('bytes_transferred')}")
    for d in s["directives"]:
        click.echo(f"  directive {d['number']}: expected {d['expected']} " +
                   " ".join(f"{k} {v}" for k, v in d["counts"].items()))
    click.echo("  checks: " + json.dumps(s["checks"], ensure_ascii=False))
    click.echo("OK" if s["ok"] else "FAILED")
