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

from ..errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_INTERRUPTED, BadInput
from . import main
from .common import emit_json, field, handle_errors, lang_option, out, progress
from .values import parse_duration


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

    # A flag, $CQGOV_LANG or the config file chose it; otherwise the console's own default.
    explicit = lang is not None
    h = run.hierarchy
    token = h.token(h.city, Role.ADMIN.value, user="console")
    return run_console(server_url=h.city.url, token=token, db_path=os.path.join(data_dir, "console.duckdb"),
                       lang=lang if explicit else None) or 0


@main.command("demo")
@click.option("--headless", is_flag=True, help="No console: run, summarise, exit.")
@click.option("--for", "duration", default="60s", show_default=True, help="How long to run headless (40s, 2m).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False), help="Where the stores go (default: a new temp dir).")
@click.option("--rate", default=None, type=click.FloatRange(0.1, 1000),
              help="Simulated events per second (default: the seeds' ~400 events per district and day, --speed "
                   "times faster).")
@click.option("--speed", default=60.0, show_default=True, type=click.FloatRange(1, 10000),
              help="How much faster than life the seeds' volumes run (60: a district's hour of events a minute).")
@click.option("--districts", default="500108,500112", show_default=True, help="Comma-separated district codes (≥ 2).")
@click.option("--streets-per-district", default=2, show_default=True, type=click.IntRange(1, 10))
@click.option("--seed", default=20261118, show_default=True, type=int)
@lang_option()
@handle_errors
def demo(headless, duration, as_json, data_dir, rate, speed, districts, streets_per_district, seed, lang) -> None:
    """Start an embedded hierarchy of tier servers and a simulator (and the console unless --headless)."""
    from ..geo.registry import get_registry
    from ..sim.demo import DemoRun
    from ..sim.hierarchy import choose

    run_console = None
    if not headless:
        run_console = _console_entry()
        if run_console is None:
            out("cqgov: the console is not available in this build; run `cqgov demo --headless` instead", err=True)
            sys.exit(EXIT_BAD_INPUT)
    seconds = parse_duration(duration, "--for")
    codes = [c.strip() for c in districts.split(",") if c.strip()]
    if len(codes) < 2:
        raise BadInput("the demo needs at least two districts")
    registry = get_registry()
    layout = choose(registry, codes, streets_per_district)
    if data_dir is None:
        import tempfile

        data_dir = tempfile.mkdtemp(prefix="cqgov-demo-")
    if rate is None:
        from ..sim.simulator import seeds_rate

        rate = seeds_rate(len(codes), speed)
    run = DemoRun(data_dir, layout, registry, rate=rate, seed=seed)

    def _terminate(signum, _frame):
        raise KeyboardInterrupt

    # A closed terminal (SIGHUP) stops everything like SIGTERM does. While the console runs, its own
    # handler saves its state first; it puts this one back when it closes.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>`: every thread's stack to stderr, for a demo that seems stuck
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        say = (lambda m: None) if as_json else progress
        say(f"starting {len(run.hierarchy.nodes)} tier servers in {data_dir} …")
        run.start(progress=say)
        if run_console is not None:
            run.start_feed(duty_officer=True)  # directives and 督办 from the city, so the Directives pane lives
            say("opening the console (q quits and stops every server)")
            code = _open_console(run_console, run, data_dir, lang)
            if code in CONSOLE_GONE:
                # No summary: the terminal is gone or the user wants out now. Stop every server at once.
                run.abort()
                progress("cqgov: console closed; all servers stopped")
                sys.exit(code)
            # Draining the sync pumps and stopping every server takes a while: say so at once.
            progress(f"console closed; letting sync settle and stopping {len(run.hierarchy.nodes)} servers …")
            summary = run.finish()
        else:
            summary = run.run_for(seconds, progress=None if as_json else progress)
    except KeyboardInterrupt:
        run.abort()
        progress("cqgov: interrupted; all servers stopped")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        run.abort()
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)
    sys.exit(0 if summary["ok"] else EXIT_CHECK_FAILED)


def _print_summary(s: dict) -> None:
    out(f"ran {s['duration_s']:.0f}s with {s['servers']} servers; data in {field(s['data_dir'])}")
    for tier in ("city", "district", "street"):
        for n in s["tiers"][tier]:
            out(f"  {field(n['node']):<20} events {n.get('events', '-'):>5}  directives {n.get('directives', '-'):>2}  "
                f"receipts {n.get('receipts', '-'):>3}  lag {n.get('sync_lag_s')}  bytes {n.get('bytes_transferred')}")
    for d in s["directives"]:
        out(f"  directive {field(d['number'])}: expected {d['expected']} " +
            " ".join(f"{field(k)} {v}" for k, v in d["counts"].items()))
    out("  checks: " + field(json.dumps(s["checks"], ensure_ascii=False)))
    out("OK" if s["ok"] else "FAILED")
