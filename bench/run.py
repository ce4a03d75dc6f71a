"""Run the benchmarks and print one table.

    python bench/run.py                 # every bench/bench_*.py
    python bench/run.py store lookup    # only these
    python bench/run.py --quick         # smaller n where a module's run() takes quick=
    python bench/run.py --json          # rows as JSON instead of a table

A benchmark module is ``bench/bench_<name>.py`` exposing ``run() -> list[dict]``
(optionally ``run(quick=True)``). Each row has: name, value, unit, baseline,
baseline_name, ratio (value / baseline, both measured in the same run), note,
and optionally target (text such as "≤ 10 ms") and target_ok. Timings are
reported, never asserted: a missed target shows in the table, not the exit code.
A module that raises shows its error as a row; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout, installed or not
    sys.path.insert(0, str(ROOT))


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


@contextlib.contextmanager
def _stdout_to_stderr():
    """Keep stdout for the table/JSON: DuckDB's progress bar and stray prints write to fd 1."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_module(name: str, quick: bool = False) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(f"bench.bench_{name}")
        kwargs = {"quick": True} if quick and "quick" in inspect.signature(mod.run).parameters else {}
        rows = [dict(r, benchmark=name) for r in mod.run(**kwargs)]
    except (Exception, SystemExit) as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
        rows = [{"benchmark": name, "name": "FAILED", "error": f"{type(exc).__name__}: {exc}{where}"}]
    return rows, time.perf_counter() - t0


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if a >= 0.1 else f"{v:.3g}"


def _target(r: dict) -> str:
    t = r.get("target")
    if not t:
        return ""
    ok = r.get("target_ok")
    return t if ok is None else f"{t} {'met' if ok else 'MISSED'}"


def print_table(rows: list[dict], timings: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=shutil.get_terminal_size((200, 24)).columns)
    table = Table(title="cqgov benchmarks — ratio = value / baseline, both measured in this run", title_justify="left")
    for col, justify in (
        ("benchmark", "left"), ("value", "right"), ("unit", "left"), ("baseline", "left"),
        ("baseline value", "right"), ("ratio", "right"), ("target", "left"), ("note", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")
    for r in rows:
        label = f"{r['benchmark']}: {r.get('name', '')}"
        if "error" in r:
            table.add_row(label, "", "", "", "", "", "", f"[red]{r['error']}[/red]")
            continue
        ratio = r.get("ratio")
        table.add_row(
            label, fmt(r.get("value")), r.get("unit", ""), r.get("baseline_name", ""), fmt(r.get("baseline")),
            "" if ratio is None else f"{ratio:.2f}×", _target(r), r.get("note", "") or "",
        )
    console.print(table)
    console.print("  ".join(f"{name}: {secs:.0f}s" for name, secs in timings.items()), style="dim")


def main(argv: list[str] | None = None) -> int:
    have = available()
    parser = argparse.ArgumentParser(description="Run cqgov benchmarks and print one table.")
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run (default: all of {', '.join(have)})")
    parser.add_argument("--quick", action="store_true", help="smaller data where a benchmark supports it")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in have]
    if unknown:
        print(f"error: no benchmark {', '.join(map(repr, unknown))}; have {', '.join(have)}", file=sys.stderr)
        return 2
    rows, timings = [], {}
    for name in args.names or have:
        print(f"running {name}…", file=sys.stderr, flush=True)
        with _stdout_to_stderr():
            got, timings[name] = run_module(name, args.quick)
        rows += got
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print_table(rows, timings)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
