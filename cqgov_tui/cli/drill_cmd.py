"""`cqgov drill run/list`: replay a fixture scenario on the simulated clock and report its mechanism."""

from __future__ import annotations

import sys

import click

from . import main
from ..errors import EXIT_CHECK_FAILED
from .common import emit_json, field, fresh_file, handle_errors, json_option, out, progress


@main.group("drill")
def drill() -> None:
    """Drills (演练): scripted scenarios on a simulated clock."""


@drill.command("list")
@json_option
@handle_errors
def list_drills(as_json: bool) -> None:
    """List the shipped scenarios."""
    from ..sim.drills import load_scenario, scenario_names

    rows = []
    for name in scenario_names():
        sc = load_scenario(name)
        rows.append({"name": name, "title": sc.title, "tier": sc.tier.value, "code": sc.code,
                     "steps": len(sc.steps), "checks": len(sc.checks)})
    if as_json:
        emit_json({"drills": rows})
        return
    for r in rows:
        out(f"{field(r['name']):16} {field(r['tier']):8} {field(r['code']):10} {field(r['title'])}")


@drill.command("run")
@click.argument("scenario")
@click.option("--db", "db_path", default=None, type=click.Path(dir_okay=False),
              help="Fresh store to run in (kept afterwards); default: a temporary store.")
@click.option("--headless", is_flag=True, help="Run without the console (drills always run on the simulated clock).")
@json_option
@handle_errors
def run(scenario: str, db_path: str | None, headless: bool, as_json: bool) -> None:
    """Run SCENARIO (a name from `cqgov drill list`, or a path to a scenario file).

    Exits 0 when every mechanism check passed and the audit chain verifies, 1 otherwise."""
    from ..sim.drills import run_drill

    with fresh_file(db_path):  # Ctrl-C mid-drill leaves no half-made store to block a re-run
        report = run_drill(scenario, db_path, progress=None if as_json else out)
    if as_json:
        emit_json(report)
    else:
        _print(report)
    if not report["ok"]:
        sys.exit(EXIT_CHECK_FAILED)


def _print(r: dict) -> None:
    out("")
    out(f"drill {field(r['scenario'])}: {field(r['title'])}")
    out(f"  store {r['store']['tier']} {r['store']['code']}, started {r['started']}, "
        f"{r['sim_minutes']:g} simulated minutes, {r['sweeps']} sweeps")
    keys = ("events", "closed", "auto_dispatched", "merged", "inhibited", "escalated", "subtasks",
            "max_close_minutes", "refused", "audit_ok")
    out("  " + "  ".join(f"{k}={r[k]}" for k in keys))
    for c in r["mechanism"]["checks"]:
        detail = {k: v for k, v in c.items() if k not in ("check", "ok")}
        out(f"  [{'ok' if c['ok'] else 'FAIL'}] {field(c['check'])}: {field(_brief(detail))}")
    out(f"  result: {'PASS' if r['ok'] else 'FAIL'}")


def _brief(d: dict) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, list) and len(v) > 4:
            v = f"[{len(v)} items]"
        parts.append(f"{k}={v}")
    return ", ".join(parts)
